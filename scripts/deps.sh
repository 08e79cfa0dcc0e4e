#!/bin/sh
# Installs every Debian package mod_dme needs to build, run and test.
# Idempotent: packages already present are skipped by apt-get. Daemons that
# a package would start on its default port are kept from starting (and
# stopped if an earlier install started them): the project runs its own
# copies on loopback with private configurations.
set -eu

PKGS="build-essential pkg-config clang-format
apache2 apache2-dev libapr1-dev libaprutil1-dev libaprutil1-dbd-sqlite3
libcurl4-openssl-dev libssl-dev libxml2-dev libmemcached-dev libgmime-3.0-dev
libjansson-dev
dovecot-core dovecot-imapd memcached python3 python3-aiosmtpd
libapache2-mod-perl2 libwww-perl liblwp-protocol-https-perl
libio-socket-ssl-perl libmail-imapclient-perl
sqlite3 openssl curl ca-certificates procps iproute2 wrk"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    # Keep package scripts from starting services on their default ports.
    policy=/usr/sbin/policy-rc.d
    own_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        own_policy=yes
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends $missing
    [ "$own_policy" = yes ] && $SUDO rm -f "$policy"
fi

# Stop system daemons a package may have started before this script ran.
for svc in apache2 dovecot memcached postfix; do
    if command -v service >/dev/null 2>&1; then
        service "$svc" stop >/dev/null 2>&1 || true
    fi
done
for name in apache2 dovecot memcached; do
    pids=$(pgrep -x "$name" -u root 2>/dev/null || true)
    for pid in $pids; do
        # Only the system's copies (started from /etc), never ours under run/.
        if ! tr '\0' ' ' </proc/"$pid"/cmdline | grep -q -- '/run/\|/t/'; then
            kill "$pid" 2>/dev/null || true
        fi
    done
done
echo "deps: all packages present"
