#!/bin/sh
# `make run`: the main demonstration. make has built sbx; this runs
#   sbx run --profile default --log AUDIT -- sh examples/demo/demo.sh
# from the repository directory, then summarises the audit log: how many
# filesystem decisions were allowed (brokered) and denied, and which
# paths were denied. Builds nothing itself.
set -eu
build=${1:-build}
repo=$(pwd)
case $build in
/*) ;;
*) build=$repo/$build ;;
esac
sbx=$build/tools/sbx/sbx
if [ ! -x "$sbx" ]; then
    echo "run-demo: $sbx is not built (run 'make' first)" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sbx-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
chmod 755 "$tmp"
log=$tmp/audit.jsonl
script=examples/demo/demo.sh

# The default profile shows the current directory read-only, but never a
# home directory (/root, /home/...): a checkout there is denied, and so is
# the demo script in it. Then the demo runs from a copy in a neutral one.
workdir=$repo
if ! "$sbx" check --profile default read "$repo/$script" >/dev/null 2>&1; then
    workdir=$tmp/work
    mkdir -p "$workdir/examples/demo"
    cp "$script" "$workdir/examples/demo/"
    chmod -R a+rX "$workdir"
    echo "note: $repo is a home directory, which the default profile denies;"
    echo "      the demo runs from a copy in $workdir"
fi

echo "\$ sbx run --profile default --log $log -- sh $script"
status=0
(cd "$workdir" && "$sbx" run --profile default --log "$log" -- sh "$script") || status=$?
echo "sbx run exited with status $status"
echo

if [ ! -s "$log" ]; then
    echo "run-demo: the audit log $log is empty" >&2
    exit 1
fi
python3 - "$log" <<'PY'
import collections, json, sys
decisions = collections.Counter()
denied = collections.Counter()
events = []
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    if o["type"] == "decision":
        decisions[o["decision"]] += 1
        if o["decision"] == "denied":
            p = o["path"] or "?"
            if o.get("path2"):
                p += " -> " + o["path2"]
            denied[p] += 1
    else:
        e = o["event"]
        if e == "exited":
            e += " (code %d)" % o["code"]
        elif e in ("killed", "violation"):
            e += " (signal %s)" % o.get("signal_name", o.get("signal"))
        elif e == "limit":
            e += " (%s)" % o["limit"]
        events.append(e)
failed = collections.Counter()
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    if o["type"] == "decision" and o["decision"] == "brokered" and o["errno"]:
        failed[o["errno_name"] or str(o["errno"])] += 1
print("audit log summary")
print("  events:    " + ", ".join(events))
print("  decisions: %d allowed (performed by the broker%s), %d denied" %
      (decisions["brokered"],
       "; %d of them failed: %s" % (sum(failed.values()),
                                    ", ".join("%d %s" % (v, k) for k, v in sorted(failed.items())))
       if failed else "", decisions["denied"]))
other = {k: v for k, v in decisions.items() if k not in ("brokered", "denied")}
if other:
    print("             " + ", ".join("%d %s" % (v, k) for k, v in sorted(other.items())))
print("             (calls served by the native view, like /usr/bin, need no broker")
print("              and are not logged)")
if denied:
    print("  denied paths:")
    for p, n in sorted(denied.items()):
        print("    %s%s" % (p, "" if n == 1 else "  (x%d)" % n))
PY
