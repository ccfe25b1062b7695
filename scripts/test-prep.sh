#!/bin/sh
# Sandbox tests run programs from the build tree inside targets whose user
# is unprivileged (65534): every directory above the checkout must be
# searchable by others, or the target cannot reach its own program (the
# known limit "program under a 0700 directory", see the closing notes).
# A checkout made with `mktemp -d` sits in a 0700 directory: grant others
# search (x, never read or write) on such ancestors, and say so.
set -eu
p=$(cd "${1:-.}" && pwd -P)
while [ "$p" != "/" ]; do
    if [ -z "$(find "$p" -maxdepth 0 -perm -o+x)" ]; then
        if chmod o+x "$p" 2>/dev/null; then
            echo "test-prep: made $p searchable by others (o+x) so sandboxed tests can reach the build tree" >&2
        else
            echo "test-prep: warning: $p is not searchable by others; sandbox tests will fail (chmod o+x it)" >&2
        fi
    fi
    p=$(dirname "$p")
done
