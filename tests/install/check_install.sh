#!/bin/sh
# Install into a scratch DESTDIR and build examples/hello.c against the
# installed tree with nothing but `pkg-config --cflags --libs sbx`.
set -eu
build=$1
src=$2
dest=$(mktemp -d "${TMPDIR:-/tmp}/sbx-install-XXXXXX")
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null

prefix=$(meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
pcdir=$(find "$dest$prefix" -name sbx.pc -printf '%h\n' | head -n1)
[ -n "$pcdir" ] || { echo "install: no sbx.pc installed"; exit 1; }
for f in include/sbx/sbx.h include/sbx/error.h bin/sbx share/man/man1/sbx.1; do
    [ -e "$dest$prefix/$f" ] || { echo "install: missing $prefix/$f"; exit 1; }
done
ls "$dest$prefix"/lib*/*/libsbx.a "$dest$prefix"/lib*/libsbx.a 2>/dev/null | grep -q . ||
    { echo "install: missing static libsbx.a"; exit 1; }

export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$dest"
flags=$(pkg-config --cflags --libs sbx)
# shellcheck disable=SC2086
cc -std=c17 -Wall -Werror -o "$dest/hello" "$src/examples/hello.c" $flags
libdir=$(pkg-config --variable=libdir sbx)  # already under the sysroot
out=$(LD_LIBRARY_PATH="$libdir" "$dest/hello")
echo "$out"
case "$out" in
    "hello from sbx "*) ;;
    *) echo "install: examples/hello printed something unexpected"; exit 1 ;;
esac
# The shared library exports only the sbx_ API.
bad=$(nm -D --defined-only "$libdir/libsbx.so" | awk '$2 ~ /[TDBR]/ && $3 !~ /^sbx_/ {print $3}')
[ -z "$bad" ] || { echo "install: libsbx.so exports non-API symbols: $bad"; exit 1; }
echo "install: ok"
