#!/usr/bin/python3
"""Writes a realistic, reproducible mailbox into a Maildir.

Messages go straight into cur/ with S= (file size) and W= (RFC822.SIZE)
in their names, and each file's mtime is the message date, which Dovecot
reports as INTERNALDATE. Content depends only on --seed (derived from the
user name by default) and on how many messages the folder already holds,
so a second run appends different messages; dates are relative to --now.

Mix, by message number: 1 in 10 has an attachment (multipart/mixed with a
small PDF or PNG in base64), 1 in 10 is non-ASCII (RFC 2047 subject and
sender name, UTF-8 quoted-printable body), 2 in 10 are
multipart/alternative, the rest plain 7-bit text. Older mail is mostly
\\Seen, recent mail mostly not; about 1 in 15 is \\Flagged.

The COUNT window messages are dated between 2 minutes and DAYS-1 days ago
(one day of margin so that IMAP SINCE, which compares whole dates, puts
them all inside a DAYS-day window); the OLD ones are dated from DAYS+2
days back, three days apart.

--manifest writes a JSON description of every generated message (file,
Message-ID, date, decoded subject, flags, sizes, kind) for tests.
"""

import argparse
import base64
import datetime
import email.header
import email.utils
import hashlib
import html
import json
import os
import pwd
import grp
import quopri
import random
import struct
import textwrap
import time
import zlib

DAY = 86400

SENDERS = [
    ("Dana Whitfield", "dana.whitfield@example.com"),
    ("Marcus Lee", "marcus.lee@example.net"),
    ("Priya Raman", "priya.raman@example.org"),
    ("Tom Becker", "tom.becker@example.com"),
    ("Build Server", "ci@build.example.com"),
    ("Travel Desk", "travel@corp.example.com"),
    ("Product Updates", "news@updates.example.net"),
    ("Helen Ortiz", "h.ortiz@example.org"),
    ("Sam Novak", "sam.novak@example.com"),
    ("IT Service Desk", "servicedesk@corp.example.com"),
    ("Grace Kim", "grace.kim@example.net"),
    ("Olusegun Adeyemi", "o.adeyemi@example.org"),
    ("Finance Team", "finance@corp.example.com"),
    ("Ravi Shah", "ravi.shah@example.com"),
]

SUBJECTS = [
    "Quarterly report Q{q}",
    "Meeting notes {day}",
    "Invoice #{num}",
    "[dev] Build #{num} failed on main",
    "Lunch on {weekday}?",
    "Your itinerary for {city}",
    "Project status update",
    "Reminder: timesheets due {weekday}",
    "Re: draft proposal v{v}",
    "Password expiry notice",
    "Weekly digest #{num}",
    "Question about the contract",
    "Slides for {weekday}'s review",
    "Fwd: conference schedule",
    "Re: budget for {city} office",
    "Room booking confirmed",
    "Re: Re: holiday rota",
    "Customer feedback summary",
]

SENTENCES = [
    "Thanks for sending the figures so quickly.",
    "I have attached my comments to the shared document.",
    "Could we move the call to the afternoon?",
    "The numbers for last month look better than expected.",
    "Please review the open items before the meeting.",
    "Let me know if anything is unclear.",
    "We still need a decision on the vendor shortlist.",
    "The build on the release branch is green again.",
    "I will be out of the office on Friday.",
    "Here is the summary we discussed yesterday.",
    "The customer asked for a revised quote.",
    "Can you confirm the delivery address?",
    "The new schedule starts next week.",
    "I booked the large meeting room for two hours.",
    "Our travel policy changed at the start of the month.",
    "Nothing urgent, just keeping you in the loop.",
]

# Non-ASCII mail: sender, subject, greeting and text in one language.
INTL = [
    ("Jürgen Müller", "j.mueller@example.de", "Grüße aus München", "Hallo",
     "anbei die Unterlagen für das Treffen in Köln. Die Präsentation ist "
     "noch nicht ganz fertig, aber die Übersicht stimmt schon."),
    ("Birgit Schäfer", "b.schaefer@example.at",
     "Überweisung bestätigt: Rechnung {num}", "Liebe",
     "die Zahlung ist heute eingegangen. Vielen Dank für die schnelle "
     "Erledigung und schöne Grüße nach Zürich."),
    ("Zoë Lefèvre", "zoe.lefevre@example.fr",
     "Réunion d'équipe – ordre du jour", "Bonjour",
     "voici le compte rendu de la réunion. Nous avons décidé de reporter "
     "la livraison à la semaine prochaine, à cause des congés."),
    ("José Álvarez", "jose.alvarez@example.es", "¿Nos vemos el {weekday}?",
     "Hola", "te envío el presupuesto revisado. ¿Podrías confirmarlo antes "
     "del viernes? Gracias por tu ayuda con la señalización."),
    ("Søren Kjærgård", "soren@example.dk", "Smørrebrød på fredag", "Hej",
     "tak for i går. Vi ses på mødet i Århus næste uge."),
    ("李雷", "li.lei@example.cn", "会议通知：{q}月例会", "你好",
     "附件是本月的销售数据，请查收。如有问题请随时联系我。"),
    ("山田 太郎", "yamada@example.jp", "お見積りのご依頼 #{num}", "こんにちは",
     "お世話になっております。来週の打ち合わせの件でご連絡しました。"),
    ("Łukasz Wiśniewski", "lukasz@example.pl", "Zażółć gęślą jaźń – {num}",
     "Cześć", "dziękuję za szybką odpowiedź. Spotkanie odbędzie się w środę."),
    ("Ångström Labs", "info@angstrom.example.se", "Ny prislista för Q{q}",
     "Hej", "vi har uppdaterat prislistan för nästa kvartal. Hör av dig om "
     "något är oklart."),
]

CITIES = ["Berlin", "Lisbon", "Toronto", "Osaka", "Nairobi", "Denver"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
TZ_OFFSETS = [0, 60, 120, -300, 540, 330, -480]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("maildir")
    p.add_argument("--user", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--old", type=int, default=0,
                   help="extra messages dated before the DAYS window")
    p.add_argument("--seed", type=int,
                   help="default: derived from --user")
    p.add_argument("--now", type=float, help="epoch seconds (default: now)")
    p.add_argument("--owner", help="user:group owning the files")
    p.add_argument("--manifest", help="write a JSON description here")
    a = p.parse_args()
    if a.count < 0 or a.old < 0 or a.days < 1:
        p.error("--count/--old must be >= 0 and --days >= 1")
    if a.seed is None:
        a.seed = zlib.crc32(a.user.encode())
    if a.now is None:
        a.now = time.time()
    return a


def encode_header(value, name):
    if value.isascii():
        return value
    return email.header.Header(value, "utf-8", header_name=name).encode()


def format_addr(name, addr):
    return email.utils.formataddr((name, addr), charset="utf-8")


def wrap(paragraphs):
    return "\n\n".join(textwrap.fill(p, 72) for p in paragraphs) + "\n"


def png_bytes(rng):
    """A small valid PNG: 16x16 RGB, a two-colour pattern."""
    c1 = bytes(rng.randrange(256) for _ in range(3))
    c2 = bytes(rng.randrange(256) for _ in range(3))
    rows = b"".join(b"\0" + b"".join(c1 if (x // 4 + y // 4) % 2 else c2
                                     for x in range(16))
                    for y in range(16))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def pdf_bytes(rng, title):
    """A small document in PDF syntax (one page of text)."""
    lines = [rng.choice(SENTENCES) for _ in range(rng.randrange(5, 15))]
    text = " ".join("(%s) Tj T*" % s.replace("(", "").replace(")", "")
                    for s in [title] + lines)
    stream = "BT /F1 11 Tf 14 TL 72 720 Td %s ET" % text
    return ("%%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            "2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
            "3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R "
            "/MediaBox [0 0 612 792] >> endobj\n"
            "4 0 obj << /Length %d >>\nstream\n%s\nendstream endobj\n"
            "trailer << /Root 1 0 R >>\n%%%%EOF\n"
            % (len(stream), stream)).encode()


def text_part(body):
    if body.isascii():
        return ("Content-Type: text/plain; charset=us-ascii\n"
                "Content-Transfer-Encoding: 7bit\n\n" + body)
    qp = quopri.encodestring(body.encode("utf-8")).decode("ascii")
    return ("Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n\n" + qp)


def html_part(paragraphs):
    body = "".join("<p>%s</p>\n" % html.escape(p) for p in paragraphs)
    doc = ("<html><head><meta charset=\"us-ascii\"></head><body>\n"
           + body + "</body></html>\n")
    return ("Content-Type: text/html; charset=us-ascii\n"
            "Content-Transfer-Encoding: 7bit\n\n" + doc)


def multipart(subtype, boundary, parts):
    out = "Content-Type: multipart/%s; boundary=\"%s\"\n\n" % (subtype,
                                                            boundary)
    out += "This is a multi-part message in MIME format.\n"
    for p in parts:
        out += "\n--%s\n%s" % (boundary, p)
    return out + "\n--%s--\n" % boundary


def attachment_part(rng, num, subject):
    if rng.random() < 0.5:
        name, ctype, data = ("report-%d.pdf" % num, "application/pdf",
                             pdf_bytes(rng, subject))
    else:
        name, ctype, data = "chart-%d.png" % num, "image/png", png_bytes(rng)
    b64 = base64.encodebytes(data).decode("ascii")
    part = ("Content-Type: %s; name=\"%s\"\n"
            "Content-Disposition: attachment; filename=\"%s\"\n"
            "Content-Transfer-Encoding: base64\n\n%s"
            % (ctype, name, name, b64))
    info = {"filename": name, "content_type": ctype, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}
    return part, info


def kind_of(num):
    k = num % 10
    if k == 3:
        return "attachment"
    if k == 7:
        return "intl"
    if k in (1, 5):
        return "alternative"
    return "plain"


def fill(template, rng, num):
    return template.format(
        q=rng.randrange(1, 5), num=1000 + num * 7 + rng.randrange(7),
        day=rng.randrange(1, 29), weekday=rng.choice(WEEKDAYS),
        city=rng.choice(CITIES), v=rng.randrange(2, 6))


def compose(rng, num, user, when, msgid, earlier):
    """Returns (message text with LF line ends, manifest entry)."""
    kind = kind_of(num)
    if kind == "intl":
        name, addr, subject, hello, text = rng.choice(INTL)
        subject = fill(subject, rng, num)
        body = ("%s %s,\n\n" % (hello, user.capitalize()) + wrap([text])
                + "\n-- \n" + name + "\n")
    else:
        name, addr = rng.choice(SENDERS)
        subject = fill(rng.choice(SUBJECTS), rng, num)
        paras = [" ".join(rng.choice(SENTENCES)
                          for _ in range(rng.randrange(2, 5)))
                 for _ in range(rng.randrange(1, 4))]
        body = "Hi %s,\n\n%s\nBest,\n%s\n" % (user.capitalize(), wrap(paras),
                                              name.split()[0])
    tz = datetime.timezone(datetime.timedelta(minutes=rng.choice(TZ_OFFSETS)))
    date = datetime.datetime.fromtimestamp(when, tz)
    head = [
        "Return-Path: <%s>" % addr,
        "Date: %s" % email.utils.format_datetime(date),
        "From: %s" % format_addr(name, addr),
        "To: %s" % format_addr(user.capitalize() + " Example",
                               "%s@example.org" % user),
    ]
    if rng.random() < 0.2:
        head.append("Cc: %s" % format_addr(*rng.choice(SENDERS)))
    head.append("Subject: %s" % encode_header(subject, "Subject"))
    head.append("Message-ID: %s" % msgid)
    if subject.startswith("Re:") and earlier:
        parent = rng.choice(earlier)
        head += ["In-Reply-To: %s" % parent, "References: %s" % parent]
    head.append("MIME-Version: 1.0")

    boundary = "=_dme_%d_%08x" % (num, rng.getrandbits(32))
    attachment = None
    if kind == "attachment":
        att, attachment = attachment_part(rng, num, subject)
        content = multipart("mixed", boundary, [text_part(body), att])
    elif kind == "alternative":
        content = multipart("alternative", boundary,
                            [text_part(body), html_part(body.split("\n\n"))])
    else:
        content = text_part(body)
    entry = {"message_id": msgid, "from": addr, "subject": subject,
             "kind": kind, "attachment": attachment}
    return "\n".join(head) + "\n" + content, entry


def message_times(args, rng):
    window = (args.days - 1) * DAY if args.days > 1 else DAY // 2
    ages = sorted((rng.uniform(120, window) for _ in range(args.count)),
                  reverse=True)
    old = [args.days * DAY + 2 * DAY + k * 3 * DAY + rng.uniform(0, 3600)
           for k in range(args.old)]
    times, last = [], None
    for age in sorted(old, reverse=True) + ages:
        t = int(args.now - age)
        if last is not None and t <= last:
            t = last + 1  # distinct seconds keep the UID order stable
        times.append(t)
        last = t
    return times


def flags_for(rng, num, age):
    flags = set()
    if rng.random() < (0.85 if age > 2 * DAY else 0.35):
        flags.add("S")
        if rng.random() < 0.1:
            flags.add("R")
    if num % 15 == 4:
        flags.add("F")
    return "".join(sorted(flags))


def ensure_dirs(root, owner):
    for d in (root, root + "/cur", root + "/new", root + "/tmp"):
        os.makedirs(d, mode=0o700, exist_ok=True)
        if owner:
            os.chown(d, *owner)


def main():
    args = parse_args()
    owner = None
    if args.owner:
        u, g = args.owner.split(":")
        owner = (pwd.getpwnam(u).pw_uid, grp.getgrnam(g).gr_gid)
    root = args.maildir.rstrip("/")
    ensure_dirs(root, owner)
    offset = len(os.listdir(root + "/cur")) + len(os.listdir(root + "/new"))
    rng = random.Random(args.seed * 1000003 + offset)
    entries, earlier = [], []
    for i, when in enumerate(message_times(args, rng)):
        num = offset + i
        msgid = "<%08x.%05d@mail.example.org>" % (args.seed, num)
        text, entry = compose(rng, num, args.user, when, msgid, earlier)
        data = text.encode("utf-8")
        flags = flags_for(rng, num, args.now - when)
        vsize = len(data) + data.count(b"\n")
        name = "%d.M%06dP%d.dmegen,S=%d,W=%d:2,%s" % (
            when, num, args.seed % 100000, len(data), vsize, flags)
        tmp = os.path.join(root, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        if owner:
            os.chown(tmp, *owner)
        os.utime(tmp, (when, when))
        os.rename(tmp, os.path.join(root, "cur", name))
        earlier.append(msgid)
        entry.update(file=name, internaldate=when, size=vsize,
                     date=datetime.datetime.fromtimestamp(
                         when, datetime.timezone.utc).isoformat(),
                     flags=["\\" + {"S": "Seen", "F": "Flagged",
                                    "R": "Answered"}[c] for c in flags],
                     old=(args.now - when) > args.days * DAY)
        entries.append(entry)
    if args.manifest:
        prev = []
        if offset and os.path.exists(args.manifest):
            with open(args.manifest) as f:
                prev = json.load(f)["messages"]
        with open(args.manifest, "w") as f:
            json.dump({"user": args.user, "maildir": root,
                       "messages": prev + entries}, f, indent=1,
                      ensure_ascii=False)
            f.write("\n")
    print("%s: wrote %d messages (%d older than %d days) into %s"
          % (args.user, len(entries), args.old, args.days, root))


if __name__ == "__main__":
    main()
