#!/bin/bash
# Bash completion (tools/sbx/completion/sbx.bash): it loads, completes the
# commands, and offers every option that `sbx help run` documents.
set -u
sbx=$1
script=$2
fail=0
# shellcheck disable=SC1090
source "$script" || { echo "completion: cannot source $script"; exit 1; }

complete_words() { # words... ; the last word is the one being completed
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMPREPLY=()
    _sbx
    echo "${COMPREPLY[*]}"
}

expect() { # description, got, wanted word
    case " $2 " in
        *" $3 "*) ;;
        *) echo "completion: $1: '$3' not in '$2'"; fail=1 ;;
    esac
}

expect "commands" "$(complete_words sbx '')" run
expect "commands" "$(complete_words sbx '')" check
expect "commands" "$(complete_words sbx '')" policy
expect "commands" "$(complete_words sbx '')" learn
expect "learn options" "$(complete_words sbx learn '')" --output
expect "learn options" "$(complete_words sbx learn '')" --memory
expect "learn options" "$(complete_words sbx learn '')" --env
expect "learn options" "$(complete_words sbx learn -o x '')" --log
case " $(complete_words sbx learn '') " in
    *" --policy "*|*" --backend "*) echo "completion: learn offers run-only options"; fail=1 ;;
esac
expect "policy subcommands" "$(complete_words sbx policy '')" compile
expect "profiles" "$(complete_words sbx policy show '')" strict
expect "check operations" "$(complete_words sbx check --profile default '')" rename
expect "check flags" "$(complete_words sbx check read /x '')" dir
expect "--backend" "$(complete_words sbx run --backend '')" notify

run_opts=$(complete_words sbx run --)
for opt in $("$sbx" help run | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    expect "run option from 'sbx help run'" "$run_opts" "$opt"
done
check_opts=$(complete_words sbx check -)
for opt in $("$sbx" help check | grep -oE -- '--(policy|profile|deny|allow-[a-z]+)' | sort -u); do
    expect "check option" "$check_opts" "$opt"
done
[ $fail -eq 0 ] && echo "completion: ok"
exit $fail
