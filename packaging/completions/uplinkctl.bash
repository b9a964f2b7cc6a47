# bash completion for uplinkctl(1), the control tool of uplinkd.      -*- shell-script -*-
# Installed as /usr/share/bash-completion/completions/uplinkctl.
#
# Completes commands, flags, configuration files and, for drain and undrain, the names of the
# uplinks, which it asks the running daemon for (`uplinkctl __complete-uplinks` prints nothing
# when the socket cannot be read).

_uplinkctl_uplinks() {
    # $1: the command as typed; $2: the --socket given on the command line, if any
    if [[ -n $2 ]]; then
        "$1" --socket "$2" __complete-uplinks 2>/dev/null
    else
        "$1" __complete-uplinks 2>/dev/null
    fi
}

_uplinkctl() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="status events drain undrain reload standby active check-config version help"
    local socket="" cmd="" i w
    COMPREPLY=()

    # Find the command and a --socket before it.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
            --socket | -socket)
                ((i++))
                socket=${COMP_WORDS[i]}
                ;;
            --socket=* | -socket=*) socket=${w#*=} ;;
            -*) ;;
            *)
                cmd=$w
                break
                ;;
        esac
    done

    if [[ -z $cmd ]]; then
        case $prev in
            --socket | -socket)
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                return 0
                ;;
        esac
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "--socket --version --help" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
        fi
        return 0
    fi

    case $cmd in
        status)
            [[ $prev == -n ]] && return 0 # an interval: nothing to complete
            mapfile -t COMPREPLY < <(compgen -W "--json --watch -n --help" -- "$cur")
            ;;
        events)
            mapfile -t COMPREPLY < <(compgen -W "--json --help" -- "$cur")
            ;;
        drain | undrain)
            if [[ $cur == -* ]]; then
                local flags="--help"
                [[ $cmd == drain ]] && flags="--now --help"
                mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
            else
                mapfile -t COMPREPLY < <(compgen -W "$(_uplinkctl_uplinks "${COMP_WORDS[0]}" "$socket")" -- "$cur")
            fi
            ;;
        check-config)
            if [[ $cur == -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "--help" -- "$cur")
            else
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            fi
            ;;
        help)
            mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
            ;;
        *)
            mapfile -t COMPREPLY < <(compgen -W "--help" -- "$cur")
            ;;
    esac
    return 0
}

complete -F _uplinkctl uplinkctl
