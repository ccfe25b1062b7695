#!/usr/bin/env python3
"""Sum up `meson test` results of one or more build dirs into the closing
line `N passed, N failed`. A Criterion suite counts each of its cases (from
its "Synthesis" line); any other test counts once. Exits 1 if anything
failed or if no test ran at all."""
import json
import re
import sys

SYNTH = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")

def main(dirs):
    passed = failed = 0
    for d in dirs:
        p = f = 0
        bad = []
        try:
            lines = open(f"{d}/meson-logs/testlog.json").read().splitlines()
        except OSError as e:
            print(f"test-summary: {d}: no test log ({e.strerror})")
            failed += 1
            continue
        for line in lines:
            t = json.loads(line)
            out = (t.get("stdout") or "") + (t.get("stderr") or "")
            m = None
            for m in SYNTH.finditer(out):
                pass
            ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
            if m:
                tp, tf = int(m.group(2)), int(m.group(3)) + int(m.group(4))
                if not ok and tf == 0:
                    tf = 1  # the suite failed outside any case (e.g. a leak report)
                p += tp
                f += tf
            else:
                if ok:
                    p += 1
                else:
                    f += 1
            if not ok:
                bad.append(t.get("name"))
        print(f"test-summary: {d}: {p} passed, {f} failed" + (f"  (failing: {', '.join(bad)})" if bad else ""))
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
