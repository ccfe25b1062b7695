#!/bin/sh
# `make run`: the main job. Until `sbx run` lands (the CLI issue), this
# shows the built tool and says what `make run` will run.
set -eu
build=$1
"$build/tools/sbx/sbx" --version
cat <<'MSG'
make run will run: sbx run --profile default -- sh examples/demo/demo.sh
  (a script that tries to read, write and connect to a few things, then a
   summary of the audit log of what the sandbox allowed and refused).
`sbx run` is not built yet; see `issues` for its progress.
MSG
