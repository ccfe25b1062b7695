#!/bin/sh
# The `make run` demonstration: a program that pokes at its surroundings.
# Run it under `sbx run --profile default` and see what the sandbox allows
# (reading system files, writing its scratch directory) and refuses
# (secrets, the home directory, writing outside scratch, the network).
try() {
    what=$1; shift
    if out=$("$@" 2>&1); then
        printf '  allowed  %-44s\n' "$what"
    else
        printf '  refused  %-44s %s\n' "$what" "$(printf '%s' "$out" | tail -n1)"
    fi
}

echo "demo: running as uid $(id -u) in $(pwd)"
try "read /etc/hostname"               cat /etc/hostname
try "list /usr/bin"                    ls /usr/bin
try "read /etc/shadow"                 cat /etc/shadow
try "list /root"                       ls /root
try "list /home"                       ls /home
try "write \$SBX_SCRATCH/out.txt"      sh -c 'echo hello > "${SBX_SCRATCH:-/nonexistent}/out.txt"'
try "write ./demo-output.txt"          sh -c 'echo hello > ./demo-output.txt'
try "write /tmp/x (private /tmp)"      sh -c 'echo hello > /tmp/x'
try "connect to 127.0.0.1:22"          python3 -c 'import socket; socket.create_connection(("127.0.0.1", 22), 1)'
try "see more than 5 other processes"  sh -c '[ "$(ls /proc | grep -c "^[0-9]")" -gt 5 ]'
rm -f ./demo-output.txt 2>/dev/null
