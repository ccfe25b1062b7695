# bash completion for sbx(1). Installed as
# $datadir/bash-completion/completions/sbx; source it by hand otherwise.
# shellcheck disable=SC2207  # COMPREPLY=($(compgen ...)) is the completion idiom

_sbx_profiles="default strict learn"

_sbx()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="run learn check policy help"
    local policy_opts="--policy --profile --allow-read --allow-write --allow-query --deny"
    local shared_opts="--memory --processes --cpu --files --net --cwd --env --log --quiet
                       --verbose --tty --keep-scratch --help"
    local run_opts="$policy_opts $shared_opts --backend"
    local learn_opts="-o --output $shared_opts"
    local check_ops="read write create stat rename unlink mkdir exec"
    local check_flags="dir trunc append rdwr"

    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi

    # After "run ... --" (or "learn ... --") the program and its arguments: commands, then files.
    local i
    for ((i = 2; i < cword; i++)); do
        if [[ (${words[1]} == run || ${words[1]} == learn) && ${words[i]} == -- ]]; then
            if [[ $i -eq $((cword - 1)) ]]; then
                COMPREPLY=($(compgen -c -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            return
        fi
    done

    case $prev in
        --policy|--log|-o|--output)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --profile)
            COMPREPLY=($(compgen -W "$_sbx_profiles" -- "$cur")); return ;;
        --net)
            COMPREPLY=($(compgen -W "none loopback" -- "$cur")); return ;;
        --backend)
            COMPREPLY=($(compgen -W "auto notify trap" -- "$cur")); return ;;
        --cwd)
            COMPREPLY=($(compgen -d -- "$cur") $(compgen -W "scratch" -- "$cur")); return ;;
        --env)
            COMPREPLY=($(compgen -e -- "$cur")); return ;;
        --allow-read|--allow-write|--allow-query|--deny)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --memory|--processes|--cpu|--files)
            return ;;
    esac

    case ${words[1]} in
        run)
            COMPREPLY=($(compgen -W "$run_opts --" -- "$cur")) ;;
        learn)
            COMPREPLY=($(compgen -W "$learn_opts --" -- "$cur")) ;;
        check)
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$policy_opts --help" -- "$cur"))
                return
            fi
            # the first word that is not an option (or its value) is the operation
            local op="" j
            for ((j = 2; j < cword; j++)); do
                case ${words[j]} in
                    --policy|--profile|--allow-read|--allow-write|--allow-query|--deny) ((j++)) ;;
                    -*) ;;
                    *) op=${words[j]}; break ;;
                esac
            done
            if [[ -z $op ]]; then
                COMPREPLY=($(compgen -W "$check_ops" -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "$check_flags" -- "$cur"))
            fi ;;
        policy)
            if [[ $cword -eq 2 ]]; then
                COMPREPLY=($(compgen -W "show list compile dump" -- "$cur"))
            elif [[ $cword -eq 3 ]]; then
                case ${words[2]} in
                    show) COMPREPLY=($(compgen -W "$_sbx_profiles" -- "$cur")) ;;
                    compile|dump) COMPREPLY=($(compgen -f -- "$cur")) ;;
                esac
            fi ;;
        help)
            [[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "run learn check policy help" -- "$cur")) ;;
    esac
}

complete -F _sbx sbx
