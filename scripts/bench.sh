#!/bin/bash
# Benchmark of mod_dme (`make bench`; not part of `make test`).
#
# Starts its own Dovecot, memcached and Apache with mod_dme on free
# loopback ports, all under one state folder, and measures:
#
#  1. per mailbox size (1,000, 10,000 and 50,000 generated mails, one user
#     each): after a full import, ROUNDS alternating pairs of
#       (a) one new mail, a push note, the background pre-cache build,
#           then one timed sync: served from the pre-cache;
#       (b) one new mail, no note, one timed sync: read from the mail
#           system;
#     medians of both, their ratio and the IMAP commands each sync sent;
#  2. a sync of an unchanged folder under load (wrk) next to a trivial
#     static file on the same server: the replayed answer (same key again)
#     and the STATUS path (advancing keys), plus a sequential STATUS loop.
#
# Prints a table at the end and keeps it, with the raw wrk output, in the
# state folder. Everything started is stopped on exit.
#
# Environment:
#   DME_BENCH_DIR      state folder (default /tmp/dmebench; wiped first)
#   DME_BENCH_SIZES    mailbox sizes (default "1000 10000 50000")
#   DME_BENCH_ROUNDS   timed pairs per size (default: 31 up to 1,000
#                      mails, 21 up to 10,000, else 11)
#   DME_BENCH_SECS     seconds per load run (default 10)
#   DME_BENCH_MODULE   mod_dme.so to load (default: this tree's build)
set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=services.sh
. "$REPO/scripts/services.sh"

DIR=${DME_BENCH_DIR:-/tmp/dmebench}
SIZES=${DME_BENCH_SIZES:-1000 10000 50000}
ROUNDS=${DME_BENCH_ROUNDS:-}
SECS=${DME_BENCH_SECS:-10}
HTTPD=/usr/sbin/apache2
MODULES_DIR=/usr/lib/apache2/modules
MOD_SO=${DME_BENCH_MODULE:-$REPO/mod_dme/.libs/mod_dme.so}
WORKER=www-data
DRIVER=$REPO/scripts/bench/sync-bench.pl
# Days the generated mail spans; DMESyncWindow (at most 365) covers them.
MAIL_DAYS=300
WINDOW_DAYS=365
# wrk: connections and threads of the trivial and replay runs; the STATUS
# run needs one thread per connection (each drives one client).
WRK_CONNS=20
WRK_THREADS=2
IDLE_USER=benchidle
IDLE_MAILS=200
BENCH_PASSWORD=bench-secret
ADMIN=benchadmin

die() {
    echo "bench.sh: $*" >&2
    exit 1
}

log() {
    printf '[%s] %s\n' "$(date +%T)" "$*"
}

rounds_for() {
    if [ -n "$ROUNDS" ]; then
        echo "$ROUNDS"
    elif [ "$1" -le 1000 ]; then
        echo 31
    elif [ "$1" -le 10000 ]; then
        echo 21
    else
        echo 11
    fi
}

httpd_pid() {
    pid_from_file "$DIR/httpd.pid" "$DIR/httpd.conf"
}

stop_all() {
    local pid i
    if pid=$(httpd_pid); then
        kill -TERM "$pid"
        for ((i = 0; i < 200; i++)); do
            proc_alive "$pid" || break
            sleep 0.1
        done
    fi
    rm -f "$DIR/httpd.pid"
    memcached_stop "$DIR"
    [ -f "$(dovecot_conf "$DIR")" ] && dovecot_stop "$DIR"
    return 0
}

# The state folder must be private to the benchmark: never the tests'.
check_dir() {
    case $DIR in
    /) die "refusing DME_BENCH_DIR=/" ;;
    "$REPO"/t | "$REPO"/t/* | "$REPO"/run | "$REPO"/run/*)
        die "DME_BENCH_DIR must not be under t/ or run/ of the repository" ;;
    esac
}

check_tools() {
    [ -f "$MOD_SO" ] || die "$MOD_SO is missing: run 'make' first"
    command -v wrk >/dev/null || die "wrk is not installed: run 'make deps'"
    [ "$(id -u)" = 0 ] || die "run as root (Dovecot and Apache switch users)"
}

# Users of this run: one per mailbox size and one for the load runs, in
# Dovecot (plain password) and in Apache (SHA-1, so that checking the
# password costs microseconds and the load runs measure the module).
make_users() {
    local size u users=()
    for size in $SIZES; do
        users+=("bench$size")
    done
    users+=("$IDLE_USER")
    for u in "${users[@]}"; do
        echo "$u:{PLAIN}$BENCH_PASSWORD::::::" >>"$DIR/dovecot/users"
    done
    : >"$DIR/users.htpasswd"
    for u in "${users[@]}" "$ADMIN"; do
        htpasswd -bs "$DIR/users.htpasswd" "$u" "$BENCH_PASSWORD" \
            2>/dev/null || die "htpasswd failed"
    done
    chown "root:$WORKER" "$DIR/users.htpasswd"
    chmod 0640 "$DIR/users.htpasswd"
    install -m 0600 -o "$WORKER" -g "$WORKER" /dev/null "$DIR/master.pass"
    printf '%s\n' "$DME_MASTER_PASSWORD" >"$DIR/master.pass"
    install -d -m 0700 -o "$WORKER" -g "$WORKER" "$DIR/state"
    mkdir -p "$DIR/htdocs" "$DIR/logs"
    printf 'ok\n' >"$DIR/htdocs/trivial.txt"
}

load_module_line() {
    if [ -f "$MODULES_DIR/mod_$1.so" ]; then
        echo "LoadModule ${1}_module $MODULES_DIR/mod_$1.so"
    elif ! "$HTTPD" -l | grep -qx "  mod_$1.c"; then
        die "Apache module mod_$1 not found in $MODULES_DIR"
    fi
}

write_httpd_conf() {
    local m
    {
        cat <<EOF
# mod_dme benchmark server (written by scripts/bench.sh). Loopback only.
ServerRoot "$DIR"
PidFile "$DIR/httpd.pid"
DefaultRuntimeDir "$DIR/logs"
ErrorLog "$DIR/logs/error.log"
LogLevel warn
Listen 127.0.0.1:$HTTP_PORT
ServerName 127.0.0.1:$HTTP_PORT
User $WORKER
Group $WORKER
EOF
        for m in mpm_event authn_core authn_file authz_core authz_user \
            auth_basic dbd mime log_config unixd watchdog alias; do
            load_module_line "$m"
        done
        cat <<EOF
LoadModule dme_module $MOD_SO

<IfModule mpm_event_module>
    StartServers 2
    ServerLimit 4
    ThreadsPerChild 25
    MaxRequestWorkers 100
    MinSpareThreads 10
    MaxSpareThreads 50
</IfModule>
# Connections stay open: the load runs measure requests, not handshakes.
KeepAlive On
MaxKeepAliveRequests 0
LogFormat "%h %u %t \"%r\" %>s %b %D" timed
CustomLog "$DIR/logs/access.log" timed
TypesConfig /etc/mime.types
TraceEnable off
DocumentRoot "$DIR/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "$DIR/htdocs">
    Require all granted
</Directory>

DBDriver sqlite3
DBDParams "$DIR/state/dme.sqlite"
DMEPasswordKeyFile "$DIR/state/dme-password.key"

DMEPrecache On
DMETechnicalWarningAccepted On
DMEMemcached "--SERVER=127.0.0.1:$MC_PORT"
# No STATUS poll: only the notes the benchmark sends start builds.
DMEPollInterval 0

# The module's directives sit in this Location (as in conf/dme.conf): the
# handler takes its base path from the section that configures it. Builds
# started by a note to /dme/push use these settings too.
<Location /dme>
    SetHandler dme
    AuthType Basic
    AuthName "mod_dme bench"
    AuthBasicProvider file
    AuthUserFile "$DIR/users.htpasswd"
    Require valid-user
    DMEMailServer imap://127.0.0.1:$IMAP_PORT
    DMEMailAccess technical
    DMETechnicalUser $DME_MASTER_USER
    DMETechnicalPasswordFile "$DIR/master.pass"
    DMESyncWindow $WINDOW_DAYS
    DMESyncPageSize 10000
    DMEMailTimeout 60
</Location>
<Location /dme/push>
    Require user $ADMIN
</Location>
<Location /dme/admin>
    Require user $ADMIN
</Location>

# The baseline of the load runs: a 3-byte static file behind the same
# authentication as the module.
Alias /trivial "$DIR/htdocs/trivial.txt"
<Location /trivial>
    SetHandler none
    AuthType Basic
    AuthName "mod_dme bench"
    AuthBasicProvider file
    AuthUserFile "$DIR/users.htpasswd"
    Require valid-user
</Location>
EOF
    } >"$DIR/httpd.conf"
}

start_httpd() {
    local out pid
    out=$("$HTTPD" -f "$DIR/httpd.conf" -t 2>&1) ||
        die "Apache configuration test failed: $out"
    port_require_free "$HTTP_PORT" apache
    "$HTTPD" -f "$DIR/httpd.conf" -k start ||
        die "Apache did not start, see $DIR/logs/error.log"
    sleep 0.2
    pid=$(httpd_pid) || die "Apache exited, see $DIR/logs/error.log"
    wait_port_open "$HTTP_PORT" apache "$pid" "$DIR/logs/error.log" || exit 1
}

start_services() {
    local size
    rm -rf "$DIR"
    mkdir -p "$DIR"
    chmod 0755 "$DIR"
    IMAP_PORT=$(free_port)
    dovecot_setup "$DIR" "$IMAP_PORT" >/dev/null
    make_users
    dovecot_start "$DIR"
    MC_PORT=$(free_port)
    memcached_start "$DIR" "$MC_PORT"
    HTTP_PORT=$(free_port)
    write_httpd_conf
    start_httpd
    log "Dovecot 127.0.0.1:$IMAP_PORT, memcached 127.0.0.1:$MC_PORT," \
        "Apache http://127.0.0.1:$HTTP_PORT"
    for size in $SIZES; do
        log "filling bench$size with $size mails"
        mailbox_fill "$DIR" "bench$size" "$size" "$MAIL_DAYS" >/dev/null
    done
    mailbox_fill "$DIR" "$IDLE_USER" "$IDLE_MAILS" "$MAIL_DAYS" >/dev/null
}

run_sizes() {
    local size n
    : >"$DIR/sizes.tsv"
    for size in $SIZES; do
        n=$(rounds_for "$size")
        log "bench$size: import, then $n rounds of (a) pre-cache, (b) mail system"
        "$DRIVER" sizes "bench$size" "$n" >>"$DIR/sizes.tsv" ||
            die "the run for $size mails failed"
    done
}

# Runs wrk; its report goes to DIR/wrk-NAME.txt, requests/s to stdout.
run_wrk() {
    local name=$1 out
    shift
    out=$DIR/wrk-$name.txt
    wrk --latency -d "${SECS}s" "$@" >"$out" 2>&1 || {
        cat "$out" >&2
        die "wrk ($name) failed"
    }
    if grep -q 'Non-2xx' "$out"; then
        cat "$out" >&2
        die "wrk ($name): some answers were not 2xx"
    fi
    awk '/^Requests\/sec:/ { print $2 }' "$out"
}

# A latency percentile (50, 75, 90 or 99) of a wrk run.
wrk_pct() {
    awk -v p="$2%" '$1 == p { print $2 }' "$DIR/wrk-$1.txt"
}

run_load() {
    local auth url pairs=() client key prev replay_client='' replay_key='' seq
    local check
    auth="Basic $(printf '%s:%s' "$IDLE_USER" "$BENCH_PASSWORD" | base64 -w0)"
    url=http://127.0.0.1:$HTTP_PORT
    log "load: enrolling and importing $WRK_CONNS clients of $IDLE_USER"
    while read -r client key prev; do
        pairs+=("$client:$key")
        replay_client=$client replay_key=$prev
    done < <("$DRIVER" clients "$IDLE_USER" "$WRK_CONNS") ||
        die "enrolling the load clients failed"
    [ ${#pairs[@]} -eq "$WRK_CONNS" ] || die "enrolling the load clients failed"

    log "load: trivial file, ${SECS}s"
    RPS_TRIVIAL=$(run_wrk trivial -t"$WRK_THREADS" -c"$WRK_CONNS" \
        -H "Authorization: $auth" "$url/trivial") || exit 1
    log "load: replayed sync answer, ${SECS}s"
    RPS_REPLAY=$(run_wrk replay -t"$WRK_THREADS" -c"$WRK_CONNS" \
        -s "$REPO/scripts/bench/wrk-replay.lua" "$url/dme/sync" \
        -- "$replay_client" "$replay_key" "$auth") || exit 1
    log "load: STATUS path, advancing keys, ${SECS}s"
    RPS_STATUS=$(run_wrk status -t"$WRK_CONNS" -c"$WRK_CONNS" \
        -s "$REPO/scripts/bench/wrk-status.lua" "$url/dme/sync" \
        -- "$auth" "${pairs[@]}") || exit 1
    check=$(grep '^STATUS-CHECK' "$DIR/wrk-status.txt")
    STATUS_CHECK=${check#STATUS-CHECK }
    case $STATUS_CHECK in
    *" other=0 failed=0") ;;
    *) die "wrk (status): not every answer came from STATUS: $STATUS_CHECK" ;;
    esac
    log "load: sequential STATUS syncs, ${SECS}s"
    seq=$("$DRIVER" seq "$IDLE_USER" "$SECS") || die "sequential run failed"
    read -r _ SEQ_N SEQ_RPS SEQ_P50 SEQ_CMDS SEQ_SRC _ <<<"$seq"
}

# The team's targets, each with the numbers it was judged on.
print_targets() {
    local r10 cmds
    r10=$(awk -F'\t' '$2 == "bench10000" { print $8 }' "$DIR/sizes.tsv")
    cmds=$(awk -F'\t' '/^RESULT/ { print $9 }' "$DIR/sizes.tsv" | sort -u |
        paste -sd' ')
    echo "Targets:"
    if [ -n "$r10" ]; then
        echo "- pre-cached sync >= 10x faster at 10,000 mails: ${r10}x," \
            "$(verdict "$r10 >= 10")"
    fi
    echo "- IMAP commands of the pre-cached sync independent of size:" \
        "$cmds, $(verdict "$(wc -w <<<"$cmds") == 1")"
    echo "- unchanged-folder sync >= 30% of the trivial request:" \
        "replayed answer $(pct "$RPS_REPLAY" "$RPS_TRIVIAL")," \
        "$(verdict "$RPS_REPLAY >= 0.3 * $RPS_TRIVIAL");" \
        "STATUS path $(pct "$RPS_STATUS" "$RPS_TRIVIAL")," \
        "$(verdict "$RPS_STATUS >= 0.3 * $RPS_TRIVIAL")"
}

verdict() {
    awk "BEGIN { exit !($1) }" && echo met || echo "NOT met"
}

print_report() {
    local mails rounds imp ma mb ratio ca cb build bad failures
    local cpu mem
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    {
        echo
        echo "mod_dme benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')," \
            "$(nproc) CPUs ($cpu), $mem RAM, module $MOD_SO" \
            "(tree at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null))"
        echo "Load average at the start: $LOAD_START; at the end:" \
            "$(cut -d' ' -f1-3 /proc/loadavg)"
        echo
        echo "One new mail per sync; times are medians of the timed syncs."
        echo
        echo "| mails | rounds | import s | (a) pre-cache ms | (b) mail system ms" \
            "| (b)/(a) | IMAP cmds (a) | IMAP cmds (b) | build s | bad |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        while IFS=$'\t' read -r _ _ mails rounds imp ma mb ratio ca cb \
            build bad; do
            echo "| $mails | $rounds | $imp | $ma | $mb | ${ratio}x | $ca" \
                "| $cb | $build | $bad |"
        done < <(grep '^RESULT' "$DIR/sizes.tsv")
        echo
        echo "Unchanged folder under load (wrk, ${SECS}s each, loopback):"
        echo
        echo "| request | wrk threads/conns | requests/s | p50 latency" \
            "| p99 latency | vs trivial |"
        echo "|---|---:|---:|---:|---:|---:|"
        echo "| trivial static file | $WRK_THREADS/$WRK_CONNS" \
            "| $RPS_TRIVIAL | $(wrk_pct trivial 50) | $(wrk_pct trivial 99)" \
            "| 100% |"
        echo "| sync, replayed answer (same key) | $WRK_THREADS/$WRK_CONNS" \
            "| $RPS_REPLAY | $(wrk_pct replay 50) | $(wrk_pct replay 99)" \
            "| $(pct "$RPS_REPLAY" "$RPS_TRIVIAL") |"
        echo "| sync, STATUS path (advancing keys) | $WRK_CONNS/$WRK_CONNS" \
            "| $RPS_STATUS | $(wrk_pct status 50) | $(wrk_pct status 99)" \
            "| $(pct "$RPS_STATUS" "$RPS_TRIVIAL") |"
        echo "| sync, STATUS path, one client in sequence | 1/1" \
            "| $SEQ_RPS | ${SEQ_P50}ms | - | $(pct "$SEQ_RPS" "$RPS_TRIVIAL") |"
        echo
        echo "STATUS-path answers under wrk: $STATUS_CHECK;" \
            "sequential: $SEQ_N syncs ($SEQ_SRC), $SEQ_CMDS IMAP commands each."
        echo
        print_targets
    } | tee "$DIR/report.md"
    failures=$(awk -F'\t' '/^RESULT/ { n += $12 } END { print n + 0 }' \
        "$DIR/sizes.tsv")
    [ "$failures" -eq 0 ] ||
        die "$failures timed syncs did not come from the expected source"
}

pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'
}

main() {
    local t0=$SECONDS
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    check_dir
    check_tools
    [ -d "$DIR" ] && stop_all
    trap stop_all EXIT
    trap 'exit 130' INT TERM
    start_services
    export BENCH_URL=http://127.0.0.1:$HTTP_PORT BENCH_IMAP_PORT=$IMAP_PORT
    export BENCH_PASSWORD BENCH_ADMIN=$ADMIN
    export BENCH_ADMIN_PASSWORD=$BENCH_PASSWORD
    run_sizes
    run_load
    print_report
    log "done in $((SECONDS - t0)) s; report and raw output in $DIR"
}

# Sourced (to run single steps by hand), it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
