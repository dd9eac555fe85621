# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kamshub_global_optspecs
    string join \n config= o/output= v/verbose data-dir= h/help V/version
end

function __fish_kamshub_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kamshub_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kamshub_using_subcommand
    set -l cmd (__fish_kamshub_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kamshub -n "__fish_kamshub_needs_command" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_needs_command" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_needs_command" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_needs_command" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_needs_command" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "serve" -d 'Run the daemon: HTTP (webhooks, API, health) and the pipeline loops'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "bootstrap" -d 'Create the first platform admin (tenant `platform`). Fails once one exists'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "tenant" -d 'Create, list and show tenants'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "user" -d 'Invite and list users'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "channel" -d 'Connect and manage Telegram bots and Messenger pages'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "conversation" -d 'List and show a tenant\'s conversations'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "message" -d 'Queue replies'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "outbox" -d 'Inspect, show and retry outbox items'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "dlq" -d 'Dead-letter queues: list depths, peek at what is stuck and why, redrive it'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "webhook" -d 'Outgoing webhooks: register endpoints, see their health and deliveries, replay events'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "queues" -d 'Create the SQS queues and their redrive policies (embedded queues need none)'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "doctor" -d 'Check the deployment: configuration, store, queues, identity, master key, providers; OK/WARN/FAIL with the fix for each; exit 1 on any FAIL'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "man" -d 'Write man pages (kamshub.1 and one per subcommand) into a directory'
complete -c kamshub -n "__fish_kamshub_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand serve" -l roles -d 'Roles to run, comma-separated (default: all), so roles can run on separate hosts' -r -f -a "http\t'HTTP: webhooks, API, health'
processor\t'The inbound processor loop'
relay\t'The outbox relay loop (outbox → send and deliveries queues), and the pruning of expired events'
sender\t'The sender loops (send queue → providers; deliveries queue → webhook endpoints)'"
complete -c kamshub -n "__fish_kamshub_using_subcommand serve" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand serve" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand serve" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand serve" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand serve" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand bootstrap" -l email -d 'The platform admin\'s email (sign-in name)' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand bootstrap" -l password -d 'A permanent password (`-` reads it from stdin). Without it a temporary password is generated, shown once, and must be replaced at first sign-in' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand bootstrap" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand bootstrap" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand bootstrap" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand bootstrap" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand bootstrap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand bootstrap" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -f -a "create" -d 'Create a tenant and its first tenant admin (temporary password, shown once)'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -f -a "list" -d 'List every tenant'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -f -a "show" -d 'Show one tenant'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and not __fish_seen_subcommand_from create list show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from create" -l name -d 'The company\'s name; unique ignoring case' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from create" -l admin-email -d 'Email of the tenant\'s first admin' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from create" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from create" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from create" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from create" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from list" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from show" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from show" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a tenant and its first tenant admin (temporary password, shown once)'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "list" -d 'List every tenant'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one tenant'
complete -c kamshub -n "__fish_kamshub_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and not __fish_seen_subcommand_from invite list help" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and not __fish_seen_subcommand_from invite list help" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and not __fish_seen_subcommand_from invite list help" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and not __fish_seen_subcommand_from invite list help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and not __fish_seen_subcommand_from invite list help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and not __fish_seen_subcommand_from invite list help" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and not __fish_seen_subcommand_from invite list help" -f -a "invite" -d 'Invite a user into a tenant (temporary password, shown once)'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and not __fish_seen_subcommand_from invite list help" -f -a "list" -d 'List the users of a tenant'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and not __fish_seen_subcommand_from invite list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from invite" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from invite" -l email -d 'The user\'s email (sign-in name)' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from invite" -l role -d 'platform_admin, tenant_admin or tenant_manager' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from invite" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from invite" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from invite" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from invite" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from invite" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from invite" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from list" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from list" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "invite" -d 'Invite a user into a tenant (temporary password, shown once)'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the users of a tenant'
complete -c kamshub -n "__fish_kamshub_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "add" -d 'Connect a Telegram bot (--token) or a Messenger page (--page-id with --page-token or --user-token)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "pages" -d 'List the Messenger pages a Facebook user token manages (to connect one with --user-token)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "list" -d 'List a tenant\'s channels'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "rename" -d 'Rename a channel'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "activate" -d 'Activate a channel (show it in the inbox again)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "deactivate" -d 'Deactivate a channel (it keeps ingesting, hidden from the inbox)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "auto-reply" -d 'Set (--text) or turn off (--off) the greeting sent on a new conversation\'s first message'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "rotate-credentials" -d 'Replace a channel\'s token, keeping its history (`-` reads the token from stdin)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "set-webhook" -d 'Register a Telegram channel\'s webhook (after --no-webhook, or a new public URL)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and not __fish_seen_subcommand_from add pages list rename activate deactivate auto-reply rotate-credentials set-webhook help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l type -d 'telegram or messenger' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l display-name -d 'Name shown to staff' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l token -d 'Telegram bot token (`-` reads it from stdin)' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l page-id -d 'Messenger page id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l page-token -d 'Messenger page access token (`-` reads it from stdin)' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l user-token -d 'A Facebook user access token that manages the page: its page token is taken from `/me/accounts` (`-` reads it from stdin; see `channel pages`)' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -l no-webhook -d 'Skip setWebhook (register later with `channel set-webhook`)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from pages" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from pages" -l user-token -d 'A Facebook user access token (`-` reads it from stdin)' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from pages" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from pages" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from pages" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from pages" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from pages" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from pages" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from list" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from list" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rename" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rename" -l name -d 'New display name' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rename" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rename" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rename" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rename" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rename" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rename" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from activate" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from activate" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from activate" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from activate" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from activate" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from activate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from activate" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from deactivate" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from deactivate" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from deactivate" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from deactivate" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from deactivate" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from deactivate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from deactivate" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from auto-reply" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from auto-reply" -l text -d 'The greeting' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from auto-reply" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from auto-reply" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from auto-reply" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from auto-reply" -l off -d 'Turn the greeting off'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from auto-reply" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from auto-reply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from auto-reply" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rotate-credentials" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rotate-credentials" -l token -d 'New Telegram bot token' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rotate-credentials" -l page-token -d 'New Messenger page access token' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rotate-credentials" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rotate-credentials" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rotate-credentials" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rotate-credentials" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rotate-credentials" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from rotate-credentials" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from set-webhook" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from set-webhook" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from set-webhook" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from set-webhook" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from set-webhook" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from set-webhook" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from set-webhook" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "add" -d 'Connect a Telegram bot (--token) or a Messenger page (--page-id with --page-token or --user-token)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "pages" -d 'List the Messenger pages a Facebook user token manages (to connect one with --user-token)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "list" -d 'List a tenant\'s channels'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "rename" -d 'Rename a channel'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "activate" -d 'Activate a channel (show it in the inbox again)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "deactivate" -d 'Deactivate a channel (it keeps ingesting, hidden from the inbox)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "auto-reply" -d 'Set (--text) or turn off (--off) the greeting sent on a new conversation\'s first message'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "rotate-credentials" -d 'Replace a channel\'s token, keeping its history (`-` reads the token from stdin)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "set-webhook" -d 'Register a Telegram channel\'s webhook (after --no-webhook, or a new public URL)'
complete -c kamshub -n "__fish_kamshub_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and not __fish_seen_subcommand_from list show help" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and not __fish_seen_subcommand_from list show help" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and not __fish_seen_subcommand_from list show help" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and not __fish_seen_subcommand_from list show help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and not __fish_seen_subcommand_from list show help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and not __fish_seen_subcommand_from list show help" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and not __fish_seen_subcommand_from list show help" -f -a "list" -d 'List a tenant\'s conversations, most recent first'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and not __fish_seen_subcommand_from list show help" -f -a "show" -d 'Show a conversation with its messages in provider order'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and not __fish_seen_subcommand_from list show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -l channel -d 'Only this channel\'s conversations' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -l limit -d 'At most this many' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -l include-inactive -d 'Also the conversations of inactive channels'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from show" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from show" -l limit -d 'At most this many of the newest messages' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from show" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from show" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from help" -f -a "list" -d 'List a tenant\'s conversations, most recent first'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a conversation with its messages in provider order'
complete -c kamshub -n "__fish_kamshub_using_subcommand conversation; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and not __fish_seen_subcommand_from send help" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and not __fish_seen_subcommand_from send help" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and not __fish_seen_subcommand_from send help" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and not __fish_seen_subcommand_from send help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and not __fish_seen_subcommand_from send help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and not __fish_seen_subcommand_from send help" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and not __fish_seen_subcommand_from send help" -f -a "send" -d 'Queue a reply in a conversation (sent by `kamshub serve`\'s relay and sender)'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and not __fish_seen_subcommand_from send help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -l conversation -d 'Conversation id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -l text -d 'The text (split into parts if longer than the provider allows)' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -l idempotency-key -d 'Makes the send idempotent: the same key and text never send twice. Keys starting with `kamshub:` are reserved for kamshub\'s own' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from send" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from help" -f -a "send" -d 'Queue a reply in a conversation (sent by `kamshub serve`\'s relay and sender)'
complete -c kamshub -n "__fish_kamshub_using_subcommand message; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -f -a "inspect" -d 'List outbox items, newest first'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -f -a "show" -d 'Show one item in full'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -f -a "retry" -d 'Send a FAILED or UNKNOWN item again (audited; for UNKNOWN this accepts a possible duplicate)'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and not __fish_seen_subcommand_from inspect show retry help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from inspect" -l tenant -d 'Only this tenant\'s items' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from inspect" -l status -d 'Only items in this status (PENDING, ENQUEUED, SENDING, SENT, FAILED, UNKNOWN)' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from inspect" -l limit -d 'At most this many' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from inspect" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from inspect" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from inspect" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from inspect" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from inspect" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from show" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from show" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from show" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'List outbox items, newest first'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one item in full'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Send a FAILED or UNKNOWN item again (audited; for UNKNOWN this accepts a possible duplicate)'
complete -c kamshub -n "__fish_kamshub_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -f -a "list" -d 'Each queue and its DLQ: messages waiting and in flight (approximate on SQS) and the oldest message\'s age (embedded queues; SQS tells it only through CloudWatch)'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -f -a "peek" -d 'Show DLQ messages with their tenant, channel, group, key, receive count, the reason their last attempt failed, and age, without taking them'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -f -a "redrive" -d 'Move DLQ messages back to their source queue, in order within each conversation, keeping their group (audited). Asks first unless --yes; refuses while another redrive of the same queue runs'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and not __fish_seen_subcommand_from list peek redrive help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from list" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from peek" -l limit -d 'At most this many messages' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from peek" -l tenant -d 'Only this tenant\'s messages' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from peek" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from peek" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from peek" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from peek" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from peek" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from peek" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -l tenant -d 'Only this tenant\'s messages' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -l max -d 'Move at most this many' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -l rate -d 'At most this many messages per second' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -l dry-run -d 'Count what would move, per tenant and reason; move nothing'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -l yes -d 'Do not ask for confirmation'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from redrive" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from help" -f -a "list" -d 'Each queue and its DLQ: messages waiting and in flight (approximate on SQS) and the oldest message\'s age (embedded queues; SQS tells it only through CloudWatch)'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from help" -f -a "peek" -d 'Show DLQ messages with their tenant, channel, group, key, receive count, the reason their last attempt failed, and age, without taking them'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from help" -f -a "redrive" -d 'Move DLQ messages back to their source queue, in order within each conversation, keeping their group (audited). Asks first unless --yes; refuses while another redrive of the same queue runs'
complete -c kamshub -n "__fish_kamshub_using_subcommand dlq; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -f -a "add" -d 'Register an endpoint; prints its signing secret, this once'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -f -a "list" -d 'List a tenant\'s endpoints with their health'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -f -a "show" -d 'Show one endpoint with its health'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -f -a "enable" -d 'Turn deliveries back on (clears the failure count; replay what it missed)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -f -a "disable" -d 'Turn deliveries off'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -f -a "remove" -d 'Remove an endpoint (its deliveries stay listed; pending ones are not made)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -f -a "deliveries" -d 'List an endpoint\'s deliveries, newest first: status, attempts, last error or answer'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -f -a "replay" -d 'Deliver events again, as new deliveries: one delivery\'s event, or every event from an id on'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and not __fish_seen_subcommand_from add list show enable disable remove deliveries replay help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -l url -d 'Where deliveries go: an https URL on a public address' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -l event -d 'An event type to deliver (repeat for several; none: every type), e.g. `--event message.received --event reply.failed`' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -l description -d 'What you call it' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from list" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from list" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from show" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from show" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from show" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from enable" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from enable" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from enable" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from enable" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from enable" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from enable" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from enable" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from disable" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from disable" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from disable" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from disable" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from disable" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from disable" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from disable" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from remove" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from remove" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from remove" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from remove" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from remove" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from deliveries" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from deliveries" -l status -d 'Only deliveries in this status (PENDING, ENQUEUED, SENDING, SENT, FAILED)' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from deliveries" -l limit -d 'At most this many' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from deliveries" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from deliveries" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from deliveries" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from deliveries" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from deliveries" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from deliveries" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from replay" -l tenant -d 'Tenant id' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from replay" -l delivery -d 'Replay this delivery\'s event' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from replay" -l from-event -d 'Replay every event from this id on that the endpoint asks for' -r
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from replay" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from replay" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from replay" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from replay" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from replay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from replay" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "add" -d 'Register an endpoint; prints its signing secret, this once'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "list" -d 'List a tenant\'s endpoints with their health'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one endpoint with its health'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "enable" -d 'Turn deliveries back on (clears the failure count; replay what it missed)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "disable" -d 'Turn deliveries off'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove an endpoint (its deliveries stay listed; pending ones are not made)'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "deliveries" -d 'List an endpoint\'s deliveries, newest first: status, attempts, last error or answer'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "replay" -d 'Deliver events again, as new deliveries: one delivery\'s event, or every event from an id on'
complete -c kamshub -n "__fish_kamshub_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and not __fish_seen_subcommand_from init help" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and not __fish_seen_subcommand_from init help" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and not __fish_seen_subcommand_from init help" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and not __fish_seen_subcommand_from init help" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and not __fish_seen_subcommand_from init help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and not __fish_seen_subcommand_from init help" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and not __fish_seen_subcommand_from init help" -f -a "init" -d 'Create the six FIFO queues (incoming, send, deliveries and a DLQ for each, each DLQ before its source) with the configured redrive policy and visibility timeout, or update existing ones to match. Safe to run again'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and not __fish_seen_subcommand_from init help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and __fish_seen_subcommand_from init" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and __fish_seen_subcommand_from init" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and __fish_seen_subcommand_from init" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and __fish_seen_subcommand_from init" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and __fish_seen_subcommand_from init" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and __fish_seen_subcommand_from help" -f -a "init" -d 'Create the six FIFO queues (incoming, send, deliveries and a DLQ for each, each DLQ before its source) with the configured redrive policy and visibility timeout, or update existing ones to match. Safe to run again'
complete -c kamshub -n "__fish_kamshub_using_subcommand queues; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand doctor" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand doctor" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand doctor" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand doctor" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand completions" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand completions" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand completions" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand completions" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand completions" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand man" -l out-dir -d 'Where to write the pages' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand man" -l config -d 'Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand man" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'JSON for scripts'"
complete -c kamshub -n "__fish_kamshub_using_subcommand man" -l data-dir -d 'Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR)' -r -F
complete -c kamshub -n "__fish_kamshub_using_subcommand man" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug)'
complete -c kamshub -n "__fish_kamshub_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kamshub -n "__fish_kamshub_using_subcommand man" -s V -l version -d 'Print version'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "serve" -d 'Run the daemon: HTTP (webhooks, API, health) and the pipeline loops'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "bootstrap" -d 'Create the first platform admin (tenant `platform`). Fails once one exists'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "tenant" -d 'Create, list and show tenants'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "user" -d 'Invite and list users'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "channel" -d 'Connect and manage Telegram bots and Messenger pages'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "conversation" -d 'List and show a tenant\'s conversations'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "message" -d 'Queue replies'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "outbox" -d 'Inspect, show and retry outbox items'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "dlq" -d 'Dead-letter queues: list depths, peek at what is stuck and why, redrive it'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "webhook" -d 'Outgoing webhooks: register endpoints, see their health and deliveries, replay events'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "queues" -d 'Create the SQS queues and their redrive policies (embedded queues need none)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "doctor" -d 'Check the deployment: configuration, store, queues, identity, master key, providers; OK/WARN/FAIL with the fix for each; exit 1 on any FAIL'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "completions" -d 'Print a shell completion script'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "man" -d 'Write man pages (kamshub.1 and one per subcommand) into a directory'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and not __fish_seen_subcommand_from serve bootstrap tenant user channel conversation message outbox dlq webhook queues doctor completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "create" -d 'Create a tenant and its first tenant admin (temporary password, shown once)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "list" -d 'List every tenant'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "show" -d 'Show one tenant'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "invite" -d 'Invite a user into a tenant (temporary password, shown once)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "list" -d 'List the users of a tenant'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "add" -d 'Connect a Telegram bot (--token) or a Messenger page (--page-id with --page-token or --user-token)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "pages" -d 'List the Messenger pages a Facebook user token manages (to connect one with --user-token)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "list" -d 'List a tenant\'s channels'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "rename" -d 'Rename a channel'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "activate" -d 'Activate a channel (show it in the inbox again)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "deactivate" -d 'Deactivate a channel (it keeps ingesting, hidden from the inbox)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "auto-reply" -d 'Set (--text) or turn off (--off) the greeting sent on a new conversation\'s first message'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "rotate-credentials" -d 'Replace a channel\'s token, keeping its history (`-` reads the token from stdin)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "set-webhook" -d 'Register a Telegram channel\'s webhook (after --no-webhook, or a new public URL)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from conversation" -f -a "list" -d 'List a tenant\'s conversations, most recent first'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from conversation" -f -a "show" -d 'Show a conversation with its messages in provider order'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from message" -f -a "send" -d 'Queue a reply in a conversation (sent by `kamshub serve`\'s relay and sender)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "inspect" -d 'List outbox items, newest first'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "show" -d 'Show one item in full'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "retry" -d 'Send a FAILED or UNKNOWN item again (audited; for UNKNOWN this accepts a possible duplicate)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from dlq" -f -a "list" -d 'Each queue and its DLQ: messages waiting and in flight (approximate on SQS) and the oldest message\'s age (embedded queues; SQS tells it only through CloudWatch)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from dlq" -f -a "peek" -d 'Show DLQ messages with their tenant, channel, group, key, receive count, the reason their last attempt failed, and age, without taking them'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from dlq" -f -a "redrive" -d 'Move DLQ messages back to their source queue, in order within each conversation, keeping their group (audited). Asks first unless --yes; refuses while another redrive of the same queue runs'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from webhook" -f -a "add" -d 'Register an endpoint; prints its signing secret, this once'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from webhook" -f -a "list" -d 'List a tenant\'s endpoints with their health'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from webhook" -f -a "show" -d 'Show one endpoint with its health'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from webhook" -f -a "enable" -d 'Turn deliveries back on (clears the failure count; replay what it missed)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from webhook" -f -a "disable" -d 'Turn deliveries off'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from webhook" -f -a "remove" -d 'Remove an endpoint (its deliveries stay listed; pending ones are not made)'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from webhook" -f -a "deliveries" -d 'List an endpoint\'s deliveries, newest first: status, attempts, last error or answer'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from webhook" -f -a "replay" -d 'Deliver events again, as new deliveries: one delivery\'s event, or every event from an id on'
complete -c kamshub -n "__fish_kamshub_using_subcommand help; and __fish_seen_subcommand_from queues" -f -a "init" -d 'Create the six FIFO queues (incoming, send, deliveries and a DLQ for each, each DLQ before its source) with the configured redrive policy and visibility timeout, or update existing ones to match. Safe to run again'
