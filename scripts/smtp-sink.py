#!/usr/bin/python3
"""SMTP sink on loopback: accepts every message and stores it for tests.

Each accepted message becomes two files in --dir, numbered from 1:
  <n>.eml  the DATA payload byte for byte as received (CRLF line ends kept,
           only the SMTP dot-stuffing undone)
  <n>.env  JSON: mail_from, rcpt_tos, mail_options, rcpt_options, auth_user,
           peer, received (UTC, ISO 8601), size
The .env file is written first and both appear by rename, so a reader that
sees <n>.eml can read both complete.

With --auth-user/--auth-password the sink offers AUTH PLAIN and LOGIN
without TLS (loopback only) and accepts only that pair; with
--auth-required it refuses MAIL before a successful AUTH. Without them AUTH
is not offered at all.
"""

import argparse
import asyncio
import datetime
import hmac
import ipaddress
import json
import os
import signal
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1",
                   help="loopback address to listen on")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True, help="where messages are stored")
    p.add_argument("--pidfile")
    p.add_argument("--log", help="log file (daemon mode)")
    p.add_argument("--daemon", action="store_true",
                   help="detach once listening; exit 1 if binding fails")
    p.add_argument("--auth-user")
    p.add_argument("--auth-password")
    p.add_argument("--auth-required", action="store_true")
    a = p.parse_args()
    if not ipaddress.ip_address(a.host).is_loopback:
        p.error("refusing to listen on a non-loopback address: " + a.host)
    if (a.auth_user is None) != (a.auth_password is None):
        p.error("--auth-user and --auth-password go together")
    if a.auth_required and a.auth_user is None:
        p.error("--auth-required needs --auth-user")
    return a


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class Store:
    """Numbers and writes the accepted messages."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        taken = [int(n.split(".")[0]) for n in os.listdir(directory)
                 if n.endswith(".eml") and n.split(".")[0].isdigit()]
        self.next = max(taken, default=0) + 1

    async def handle_DATA(self, server, session, envelope):
        n = self.next
        self.next += 1
        data = envelope.original_content or b""
        env = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "auth_user": session.auth_data if session.authenticated else None,
            "peer": list(session.peer)[:2] if session.peer else None,
            "received": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds"),
            "size": len(data),
        }
        base = os.path.join(self.dir, str(n))
        write_atomic(base + ".env",
                     (json.dumps(env, indent=1) + "\n").encode())
        write_atomic(base + ".eml", data)
        print("stored message %d: %d bytes from %s to %s"
              % (n, len(data), envelope.mail_from, envelope.rcpt_tos),
              flush=True)
        return "250 2.0.0 OK stored as %d" % n


def make_authenticator(user, password):
    want_user = user.encode()
    want_pass = password.encode()

    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (hmac.compare_digest(auth_data.login, want_user)
              and hmac.compare_digest(auth_data.password, want_pass))
        return AuthResult(success=ok, handled=False,
                          auth_data=user if ok else None)

    return check


def smtp_factory(args, store):
    kw = dict(hostname="smtp-sink.localhost", enable_SMTPUTF8=True,
              decode_data=False)
    if args.auth_user is not None:
        kw.update(authenticator=make_authenticator(args.auth_user,
                                                   args.auth_password),
                  auth_require_tls=False,
                  auth_required=args.auth_required)
    # Without credentials AUTH stays unadvertised: aiosmtpd only offers it
    # over TLS then, and this sink never speaks TLS.
    return lambda: SMTP(store, **kw)


def detach(log_path):
    """Forks; the parent waits for the child's readiness report."""
    rfd, wfd = os.pipe()
    if os.fork() > 0:
        os.close(wfd)
        with os.fdopen(rfd) as r:
            msg = r.read()
        if msg.startswith("ok"):
            os._exit(0)
        sys.stderr.write("smtp-sink: " + (msg or "failed to start") + "\n")
        os._exit(1)
    os.close(rfd)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    out = os.open(log_path or os.devnull,
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    return os.fdopen(wfd, "w")


def main():
    args = parse_args()
    report = detach(args.log) if args.daemon else None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    store = Store(args.dir)
    try:
        server = loop.run_until_complete(loop.create_server(
            smtp_factory(args, store), host=args.host, port=args.port))
    except OSError as e:
        if report:
            report.write("cannot listen on %s:%d: %s"
                         % (args.host, args.port, e))
            report.close()
        else:
            print("cannot listen: %s" % e, file=sys.stderr)
        return 1
    if args.pidfile:
        write_atomic(args.pidfile, b"%d\n" % os.getpid())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print("listening on %s:%d, storing into %s"
          % (args.host, args.port, args.dir), flush=True)
    if report:
        report.write("ok")
        report.close()
    try:
        loop.run_forever()
    finally:
        server.close()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
