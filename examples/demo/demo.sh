#!/bin/sh
# The `make run` demonstration: a program that pokes at its surroundings.
# Run it under `sbx run --profile default` and see what the sandbox allows
# (reading system files and the current directory, writing its scratch
# directory and its own /tmp) and refuses (secrets, home directories,
# writing outside scratch, the network, other processes).
#
# Each line says what happened, and "(expected: ...)" when that is not
# what the default profile promises. Outside a sandbox most "refused"
# lines are allowed, which is the point.
total=0
unexpected=0
try() {
    expect=$1 what=$2
    shift 2
    total=$((total + 1))
    if out=$("$@" 2>&1); then got=allowed; else got=refused; fi
    detail=
    [ "$got" = refused ] && detail=$(printf '%s' "$out" | tail -n1)
    note=
    if [ "$got" != "$expect" ]; then
        unexpected=$((unexpected + 1))
        note="  (expected: $expect)"
    fi
    printf '  %-8s %-36s %s%s\n' "$got" "$what" "$detail" "$note"
}

echo "demo: running as uid $(id -u) in $(pwd), $(ls /proc | grep -c '^[0-9]') processes visible"
try allowed "read /etc/hostname"              cat /etc/hostname
try allowed "list /usr/bin"                   ls /usr/bin
try allowed "read this script (current dir)"  cat "$0"
try refused "read /etc/shadow"                cat /etc/shadow
try refused "list /root"                      ls /root
try refused "list /home"                      ls /home
try allowed "write \$SBX_SCRATCH/out.txt"     sh -c 'echo hello > "${SBX_SCRATCH:-/nonexistent}/out.txt"'
try refused "write ./demo-output.txt"         sh -c 'echo hello > ./demo-output.txt'
try allowed "write /tmp/x (private /tmp)"     sh -c 'echo hello > /tmp/x'
try refused "connect to 127.0.0.1:22"         python3 -c 'import socket; socket.create_connection(("127.0.0.1", 22), 1)'
try refused "see the host's processes (> 20)"  sh -c '[ "$(ls /proc | grep -c "^[0-9]")" -gt 20 ]'
echo "demo: $((total - unexpected)) of $total as the default profile promises"
exit 0
