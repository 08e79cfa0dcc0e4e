#!/bin/bash
# The real services mod_dme talks to, run privately on loopback: Dovecot
# (IMAP), memcached (pre-cache store) and an SMTP sink (relay stand-in).
# Shared by scripts/run.sh (demo server) and t/run-apache-tests.sh (tests).
#
# Every service keeps its configuration, pid file, data and log under one
# state directory DIR, so several instances can run side by side and
# nothing under /etc or /var is touched.
#
# Usage: services.sh COMMAND ARGS...     (or source it for the functions)
#   dovecot-setup DIR IMAP_PORT [PUSH_URL]
#                                  write DIR/dovecot/dovecot.conf + users
#                                  (env DOVECOT_AUTH_FAILURE_DELAY, e.g. 0;
#                                  DOVECOT_USERNAME_CHARS, if set, the
#                                  characters a user name may hold, empty
#                                  for any);
#                                  with PUSH_URL, delivery PUTs a JSON note
#                                  there for users with push enabled (env
#                                  DOVECOT_PUSH_CA_FILE: PEM file trusted
#                                  for an https PUSH_URL)
#   dovecot-start DIR | dovecot-stop DIR
#   user-add DIR USER PASSWORD     one more mailbox user (any UTF-8 name
#                                  DOVECOT_USERNAME_CHARS lets in)
#   deliver DIR USER FILE          deliver a mail file into USER's INBOX
#   push-enable DIR USER           let delivery to USER notify PUSH_URL
#   memcached-start DIR PORT | memcached-stop DIR
#   smtp-start DIR PORT [USER PASSWORD] | smtp-stop DIR
#   mailbox-fill DIR USER COUNT DAYS [OLD]
#   free-port                      print a free TCP port on 127.0.0.1
#   status DIR                     one line per service: running or stopped

SERVICES_SH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=/usr/bin/python3
# Demo and test accounts; the technical (master) user reaches every mailbox.
DME_IMAP_USERS="alice:alice-secret bob:bob-secret carol:carol-secret"
DME_MASTER_USER=dmemaster
DME_MASTER_PASSWORD=master-secret
# Mail files belong to an unprivileged uid, never to root.
MAIL_USER=nobody
MAIL_GROUP=nogroup
START_TIMEOUT=${DME_START_TIMEOUT:-15}
# Dovecot delays its answer to a failed login by this much (its default).
DOVECOT_AUTH_FAILURE_DELAY=${DOVECOT_AUTH_FAILURE_DELAY:-2 secs}
# Dovecot's own default refuses spaces and non-ASCII in user names; when
# DOVECOT_USERNAME_CHARS is set (empty: any character), it applies instead.
# Certificates Dovecot trusts when it pushes to an https URL: a self-signed
# server certificate itself will do. Empty: the system's CAs.
DOVECOT_PUSH_CA_FILE=${DOVECOT_PUSH_CA_FILE:-}

svc_die() {
    echo "services.sh: $*" >&2
    exit 1
}

svc_abs() {
    mkdir -p "$1" && (cd "$1" && pwd)
}

# Like svc_abs for stop commands: fails, creating nothing, if DIR is absent.
svc_existing() {
    [ -d "$1" ] && (cd "$1" && pwd)
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_is_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Who listens on PORT (any address), for error messages.
port_holder() {
    ss -Hltnp "sport = :$1" 2>/dev/null | awk '{print $4, $6}' | head -n 3
}

# Fails with a clear message when PORT is taken by anyone.
port_require_free() {
    local port=$1 what=$2 holder
    holder=$(port_holder "$port")
    if [ -n "$holder" ] || port_is_open "$port"; then
        svc_die "cannot start $what: port $port is already in use" \
            "(${holder:-unknown listener}); stop it or pick another port"
    fi
}

wait_port_open() {
    local port=$1 what=$2 pid=$3 log=$4 i
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        port_is_open "$port" && return 0
        if [ -n "$pid" ] && ! proc_alive "$pid"; then
            break
        fi
        sleep 0.1
    done
    echo "services.sh: $what did not start listening on 127.0.0.1:$port" \
        "within ${START_TIMEOUT}s" >&2
    [ -n "$log" ] && [ -f "$log" ] && tail -n 15 "$log" | sed 's/^/  | /' >&2
    return 1
}

wait_port_free() {
    local port=$1 i
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        [ -z "$(port_holder "$port")" ] && return 0
        sleep 0.1
    done
    echo "services.sh: port $port still in use after ${START_TIMEOUT}s" >&2
    return 1
}

# True while PID runs. A zombie counts as gone: daemons are reparented to
# init, which may reap them only seconds after they exit.
proc_alive() {
    local state
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "${state%% *}" != Z ]
}

# Prints the pid recorded in PIDFILE if that process is alive and its
# command line contains MARK (guards against a recycled pid).
pid_from_file() {
    local pidfile=$1 mark=$2 pid
    [ -f "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && proc_alive "$pid" || return 1
    if [ -n "$mark" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
        grep -qF -- "$mark"; then
        return 1
    fi
    echo "$pid"
}

# Sends TERM to the process in PIDFILE, waits for it to exit (KILL after
# the timeout) and removes the pid file. Quiet when nothing runs.
stop_by_pidfile() {
    local pidfile=$1 mark=$2 what=$3 pid i
    if ! pid=$(pid_from_file "$pidfile" "$mark"); then
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        proc_alive "$pid" || break
        sleep 0.1
    done
    if proc_alive "$pid"; then
        echo "services.sh: $what (pid $pid) ignored TERM, killing it" >&2
        kill -KILL "$pid" 2>/dev/null
        sleep 0.2
    fi
    rm -f "$pidfile"
}

# Runs a command that daemonises itself with stdin from /dev/null and
# stdout/stderr into LOG: a daemon that kept the caller's pipes would keep
# a test harness waiting for their end forever. On failure LOG is shown.
daemon_start() {
    local log=$1 what=$2
    shift 2
    if ! "$@" </dev/null >>"$log" 2>&1; then
        tail -n 15 "$log" | sed 's/^/  | /' >&2
        svc_die "$what failed to start (log: $log)"
    fi
}

# TERM, then after a grace period KILL, to the given pids still alive.
stop_pids() {
    local pid live i
    for ((i = 0; i < 30; i++)); do
        live=
        for pid in "$@"; do
            proc_alive "$pid" && live="$live $pid"
        done
        [ -z "$live" ] && return 0
        # shellcheck disable=SC2086
        [ "$i" -eq 0 ] && kill -TERM $live 2>/dev/null
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $live 2>/dev/null
}

free_port() {
    "$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# ---- Dovecot ---------------------------------------------------------------

dovecot_conf() { echo "$1/dovecot/dovecot.conf"; }
dovecot_pidfile() { echo "$1/dovecot/run/master.pid"; }
dovecot_port() { cat "$1/dovecot/imap.port" 2>/dev/null; }

dovecot_setup() {
    local dir port push_url d u
    [ $# -eq 2 ] || [ $# -eq 3 ] ||
        svc_die "usage: dovecot-setup DIR IMAP_PORT [PUSH_URL]"
    dir=$(svc_abs "$1") port=$2 push_url=${3:-}
    d=$dir/dovecot
    mkdir -p "$d/run" "$d/state" "$d/attributes" "$dir/mail"
    chown "$MAIL_USER:$MAIL_GROUP" "$d/attributes" "$dir/mail"
    chmod 0700 "$d/attributes"

    : >"$d/users"
    for u in $DME_IMAP_USERS; do
        echo "${u%%:*}:{PLAIN}${u#*:}::::::" >>"$d/users"
    done
    echo "$DME_MASTER_USER:{PLAIN}$DME_MASTER_PASSWORD" >"$d/masters"
    # The auth process runs as the dovecot user; nobody else reads these.
    chown root:dovecot "$d/users" "$d/masters"
    chmod 0640 "$d/users" "$d/masters"
    echo "$port" >"$d/imap.port"

    cat >"$d/dovecot.conf" <<EOF
# Private Dovecot for mod_dme (generated by scripts/services.sh; do not
# edit). Loopback only, plaintext IMAP: nothing here leaves the machine.
base_dir = $d/run
state_dir = $d/state
instance_name = dme-dovecot
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
log_path = $d/dovecot.log
auth_verbose = yes
verbose_proctitle = yes

default_internal_user = dovecot
default_login_user = dovenull

mail_location = maildir:$dir/mail/%u
mail_uid = $MAIL_USER
mail_gid = $MAIL_GROUP
# The module opens several sessions per user (sync, pre-cache, downloads).
mail_max_userip_connections = 100

imap_metadata = yes
mail_attribute_dict = file:$d/attributes/%u

auth_mechanisms = plain login
# Dovecot slows every login from an address after a failed one there (2 to
# 15 s). All of the module's logins come from its own address, so one
# user's typo would stall everyone. Dovecot's documented switch turns that
# penalty off: its anvil socket made unusable.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
auth_failure_delay = $DOVECOT_AUTH_FAILURE_DELAY
$(dovecot_username_chars_conf)
# "alice*dmemaster" with the master password opens alice's mailbox; SASL
# PLAIN with authzid alice and authcid dmemaster does the same.
auth_master_user_separator = *
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $d/masters
  master = yes
  # Also look the target user up, so masters cannot open unknown users.
  pass = yes
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $d/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $d/users
  default_fields = home=$dir/mail/%u
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
EOF
    if [ -n "$push_url" ]; then
        dovecot_push_conf "$push_url" >>"$d/dovecot.conf"
        # The URL carries a password: only root and Dovecot read it.
        chown root:dovecot "$d/dovecot.conf"
        chmod 0640 "$d/dovecot.conf"
    fi
    doveconf -c "$d/dovecot.conf" -n >/dev/null ||
        svc_die "generated $d/dovecot.conf is not valid"
}

# Configuration for change notifications: Dovecot's push_notification
# plugin with its OX driver PUTs a small JSON document to URL for each
# message delivered into an INBOX whose owner has the METADATA key that
# push-enable sets; the key's "user=" value is the user named in the note.
# Only delivery (dovecot-lda) notifies: IMAP APPENDs and moves do not.
# Dovecot refuses a server certificate it cannot verify; the delivering
# process, already running as mail_uid, reads DOVECOT_PUSH_CA_FILE.
dovecot_push_conf() {
    local ca=
    [ -z "$DOVECOT_PUSH_CA_FILE" ] ||
        ca="  ssl_client_ca_file = $DOVECOT_PUSH_CA_FILE"
    cat <<EOF

# Delivery notifies mod_dme (generated by dovecot-setup with PUSH_URL).
postmaster_address = postmaster@localhost
lda_mailbox_autocreate = yes
protocol lda {
  mail_plugins = \$mail_plugins notify push_notification
$ca
}
plugin {
  push_notification_driver = ox:url=$1 user_from_metadata
}
EOF
}

dovecot_username_chars_conf() {
    [ -z "${DOVECOT_USERNAME_CHARS+set}" ] ||
        echo "auth_username_chars = $DOVECOT_USERNAME_CHARS"
}

# Adds USER to the passwd-file of DIR's Dovecot (which rereads it at the
# next login). Dovecot lower-cases the ASCII letters of every login name
# before it looks the name up (auth_username_format %Lu), so the line
# holds the name that way; logins and mail deliveries may spell it as they
# like.
dovecot_user_add() {
    local dir user pw name
    [ $# -eq 3 ] || svc_die "usage: user-add DIR USER PASSWORD"
    dir=$(svc_abs "$1") user=$2 pw=$3
    case $user$pw in
    *:* | *$'\n'* | *'*'*) svc_die "user-add: no ':', '*' or newline, please" ;;
    esac
    [ -n "$user" ] || svc_die "user-add: empty user name"
    [ -f "$dir/dovecot/users" ] || svc_die "user-add: run dovecot-setup first"
    name=$(printf '%s' "$user" | LC_ALL=C tr '[:upper:]' '[:lower:]')
    printf '%s:{PLAIN}%s::::::\n' "$name" "$pw" >>"$dir/dovecot/users"
}

dovecot_start() {
    local dir conf port pid
    [ $# -eq 1 ] || svc_die "usage: dovecot-start DIR"
    dir=$(svc_abs "$1")
    conf=$(dovecot_conf "$dir")
    [ -f "$conf" ] || svc_die "no $conf: run dovecot-setup first"
    port=$(dovecot_port "$dir")
    if pid=$(pid_from_file "$(dovecot_pidfile "$dir")" "$conf"); then
        echo "dovecot already running (pid $pid) on 127.0.0.1:$port"
        return 0
    fi
    rm -f "$(dovecot_pidfile "$dir")"
    port_require_free "$port" dovecot
    daemon_start "$dir/dovecot/start.log" dovecot dovecot -c "$conf"
    pid=$(pid_from_file "$(dovecot_pidfile "$dir")" "$conf")
    wait_port_open "$port" dovecot "$pid" "$dir/dovecot/dovecot.log" || exit 1
}

dovecot_stop() {
    local dir conf port pid kids
    [ $# -eq 1 ] || svc_die "usage: dovecot-stop DIR"
    dir=$(svc_existing "$1") || return 0
    conf=$(dovecot_conf "$dir")
    port=$(dovecot_port "$dir")
    if pid=$(pid_from_file "$(dovecot_pidfile "$dir")" "$conf"); then
        # Logged-in imap processes outlive the master while their client
        # stays connected; an outage must end them too.
        read -r -a kids <<<"$(pgrep -P "$pid" | tr '\n' ' ')"
        stop_by_pidfile "$(dovecot_pidfile "$dir")" "$conf" dovecot
        stop_pids "${kids[@]}"
    fi
    rm -f "$(dovecot_pidfile "$dir")"
    [ -z "$port" ] || wait_port_free "$port"
}

# Writes COUNT generated messages (plus OLD ones dated before the window)
# into USER's Maildir and lets Dovecot index them once.
mailbox_fill() {
    local dir user count days old conf
    [ $# -ge 4 ] || svc_die "usage: mailbox-fill DIR USER COUNT DAYS [OLD]"
    dir=$(svc_abs "$1") user=$2 count=$3 days=$4 old=${5:-0}
    conf=$(dovecot_conf "$dir")
    "$PYTHON" "$SERVICES_SH_DIR/gen-mailbox.py" --user "$user" \
        --count "$count" --days "$days" --old "$old" \
        --owner "$MAIL_USER:$MAIL_GROUP" \
        --manifest "$dir/mailbox-$user.json" "$dir/mail/$user" ||
        svc_die "generating the mailbox of $user failed"
    # Dovecot indexes the new files now rather than at the first FETCH.
    if pid_from_file "$(dovecot_pidfile "$dir")" "$conf" >/dev/null; then
        doveadm -c "$conf" mailbox status -u "$user" messages INBOX ||
            svc_die "doveadm could not index the mailbox of $user"
    else
        echo "services.sh: dovecot not running, $user's mailbox is" \
            "indexed at first access" >&2
    fi
}

# Fails unless the Dovecot of DIR runs: delivery and doveadm look users up
# through its auth service.
dovecot_require_running() {
    local dir=$1 what=$2
    pid_from_file "$(dovecot_pidfile "$dir")" "$(dovecot_conf "$dir")" \
        >/dev/null || svc_die "$what: dovecot of $dir is not running"
}

# Delivers the message in FILE into USER's INBOX the way an MTA would, so
# that Dovecot's delivery plugins (push notification) run. dovecot-lda,
# started as root with -d, switches to mail_uid itself.
dovecot_deliver() {
    local dir user file rc
    [ $# -eq 3 ] || svc_die "usage: deliver DIR USER FILE"
    dir=$(svc_abs "$1") user=$2 file=$3
    [ -r "$file" ] || svc_die "deliver: cannot read $file"
    dovecot_require_running "$dir" deliver
    /usr/lib/dovecot/dovecot-lda -c "$(dovecot_conf "$dir")" -d "$user" \
        -e <"$file"
    rc=$?
    [ "$rc" -eq 0 ] ||
        svc_die "deliver: dovecot-lda failed for $user (exit $rc)," \
            "see $dir/dovecot/dovecot.log"
}

# Sets the server METADATA entry the OX push driver looks for in USER's
# mailbox; without it delivery to USER sends nothing.
dovecot_push_enable() {
    local dir user
    [ $# -eq 2 ] || svc_die "usage: push-enable DIR USER"
    dir=$(svc_abs "$1") user=$2
    dovecot_require_running "$dir" push-enable
    doveadm -c "$(dovecot_conf "$dir")" mailbox metadata set -u "$user" \
        -s "" /private/vendor/vendor.dovecot/http-notify "user=$user" ||
        svc_die "push-enable: doveadm could not set the key for $user"
}

# ---- memcached -------------------------------------------------------------

memcached_start() {
    local dir port pidfile pid
    [ $# -eq 2 ] || svc_die "usage: memcached-start DIR PORT"
    dir=$(svc_abs "$1") port=$2
    pidfile=$dir/memcached/memcached.pid
    mkdir -p "$dir/memcached"
    # memcached writes (and at exit removes) its pid file as that user.
    chown nobody "$dir/memcached"
    if pid=$(pid_from_file "$pidfile" memcached); then
        echo "memcached already running (pid $pid)" \
            "on 127.0.0.1:$(cat "$dir/memcached/port")"
        return 0
    fi
    rm -f "$pidfile"
    port_require_free "$port" memcached
    echo "$port" >"$dir/memcached/port"
    daemon_start "$dir/memcached/memcached.log" memcached \
        memcached -l 127.0.0.1 -p "$port" -U 0 -u nobody -m 64 -d -P "$pidfile"
    wait_port_open "$port" memcached "" "$dir/memcached/memcached.log" || exit 1
}

memcached_stop() {
    local dir
    [ $# -eq 1 ] || svc_die "usage: memcached-stop DIR"
    dir=$(svc_existing "$1") || return 0
    stop_by_pidfile "$dir/memcached/memcached.pid" memcached memcached
    if [ -f "$dir/memcached/port" ]; then
        wait_port_free "$(cat "$dir/memcached/port")"
    fi
    return 0
}

# ---- SMTP sink -------------------------------------------------------------

smtp_start() {
    local dir port pidfile pid
    [ $# -eq 2 ] || [ $# -eq 4 ] ||
        svc_die "usage: smtp-start DIR PORT [USER PASSWORD]"
    dir=$(svc_abs "$1") port=$2
    pidfile=$dir/smtp/sink.pid
    mkdir -p "$dir/smtp"
    if pid=$(pid_from_file "$pidfile" smtp-sink.py); then
        echo "smtp sink already running (pid $pid)" \
            "on 127.0.0.1:$(cat "$dir/smtp/port")"
        return 0
    fi
    rm -f "$pidfile"
    port_require_free "$port" "smtp sink"
    echo "$port" >"$dir/smtp/port"
    # The sink reports readiness (or its error) before the parent returns.
    daemon_start "$dir/smtp/start.log" "smtp sink" \
        "$PYTHON" "$SERVICES_SH_DIR/smtp-sink.py" --port "$port" \
        --dir "$dir/smtp" --pidfile "$pidfile" --log "$dir/smtp/sink.log" \
        --daemon ${3:+--auth-user "$3" --auth-password "$4"}
    wait_port_open "$port" "smtp sink" "" "$dir/smtp/sink.log" || exit 1
}

smtp_stop() {
    local dir
    [ $# -eq 1 ] || svc_die "usage: smtp-stop DIR"
    dir=$(svc_existing "$1") || return 0
    stop_by_pidfile "$dir/smtp/sink.pid" smtp-sink.py "smtp sink"
    [ -f "$dir/smtp/port" ] && wait_port_free "$(cat "$dir/smtp/port")"
    return 0
}

services_status() {
    local dir pid
    dir=$(svc_existing "$1") || {
        echo "no services in $1"
        return 0
    }
    if pid=$(pid_from_file "$(dovecot_pidfile "$dir")" \
        "$(dovecot_conf "$dir")"); then
        echo "dovecot   running pid $pid port $(dovecot_port "$dir")"
    else
        echo "dovecot   stopped"
    fi
    if pid=$(pid_from_file "$dir/memcached/memcached.pid" memcached); then
        echo "memcached running pid $pid port $(cat "$dir/memcached/port")"
    else
        echo "memcached stopped"
    fi
    if pid=$(pid_from_file "$dir/smtp/sink.pid" smtp-sink.py); then
        echo "smtp sink running pid $pid port $(cat "$dir/smtp/port")"
    else
        echo "smtp sink stopped"
    fi
}

services_main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    case $cmd in
    dovecot-setup) dovecot_setup "$@" ;;
    dovecot-start) dovecot_start "$@" ;;
    dovecot-stop) dovecot_stop "$@" ;;
    memcached-start) memcached_start "$@" ;;
    memcached-stop) memcached_stop "$@" ;;
    smtp-start) smtp_start "$@" ;;
    smtp-stop) smtp_stop "$@" ;;
    mailbox-fill) mailbox_fill "$@" ;;
    deliver) dovecot_deliver "$@" ;;
    push-enable) dovecot_push_enable "$@" ;;
    user-add) dovecot_user_add "$@" ;;
    free-port) free_port ;;
    status) [ $# -eq 1 ] || svc_die "usage: status DIR"; services_status "$1" ;;
    *)
        sed -n '/^# Usage/,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
        exit 2
        ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    services_main "$@"
fi
