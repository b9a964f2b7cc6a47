# fish completion for uplinkctl(1), the control tool of uplinkd.
# Installed as /usr/share/fish/vendor_completions.d/uplinkctl.fish.
#
# Completes commands, flags, configuration files and, for drain and undrain, the names of the
# uplinks, which it asks the running daemon for (`uplinkctl __complete-uplinks` prints nothing
# when the socket cannot be read).

set -l uplinkctl_commands status events drain undrain reload standby active check-config version help

function __uplinkctl_uplinks
    set -l tokens (commandline -opc)
    set -l sock
    for i in (seq 2 (count $tokens))
        switch $tokens[$i]
            case --socket -socket
                set -l j (math $i + 1)
                if test $j -le (count $tokens)
                    set sock --socket $tokens[$j]
                end
            case '--socket=*' '-socket=*'
                set sock --socket (string replace -r '^-?-socket=' '' -- $tokens[$i])
        end
    end
    $tokens[1] $sock __complete-uplinks 2>/dev/null
end

complete -c uplinkctl -f

# Global flags, before the command.
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -l socket -r -F -d 'Control socket of uplinkd'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -l version -d 'Print the version'
complete -c uplinkctl -s h -l help -d 'Print the usage'

# Commands.
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a status -d 'Show every uplink and whether traffic flows'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a events -d 'Follow decisions as they happen'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a drain -d 'Take an uplink out of service'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a undrain -d 'Put a drained uplink back into service'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a reload -d 'Make uplinkd read its configuration again'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a standby -d 'Gateway pair: hand the virtual addresses to the peer'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a active -d 'Gateway pair: compete for the virtual addresses again'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a check-config -d 'Validate a configuration file'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a version -d 'Print the version'
complete -c uplinkctl -n "not __fish_seen_subcommand_from $uplinkctl_commands" -a help -d 'Print the usage of uplinkctl or of a command'

# Arguments of the commands.
complete -c uplinkctl -n '__fish_seen_subcommand_from status events' -l json -d 'Print JSON'
complete -c uplinkctl -n '__fish_seen_subcommand_from status' -l watch -d 'Show it again every interval until Ctrl-C'
complete -c uplinkctl -n '__fish_seen_subcommand_from status' -s n -x -d 'Interval of --watch (e.g. 1s)'
complete -c uplinkctl -n '__fish_seen_subcommand_from drain' -l now -d 'Also move its existing connections now'
complete -c uplinkctl -n '__fish_seen_subcommand_from drain undrain' -a '(__uplinkctl_uplinks)' -d 'Uplink'
complete -c uplinkctl -n '__fish_seen_subcommand_from check-config' -F -d 'Configuration file'
complete -c uplinkctl -n '__fish_seen_subcommand_from help' -a "$uplinkctl_commands"
