"""A table of edge cases, and messages built from it, shared by the corpus and SMTP tests."""

from __future__ import annotations

import itertools
from typing import Any

from mailout.message import EmailMessage, EmailMultiAlternatives

SUBJECTS = [
    "",
    "Hello",
    "Héllo wörld",
    "日本語の件名です",
    "\U0001f4e7 new mail \U0001f4e7",
    "a" * 77,
    "word " * 30 + "end",
    "é" * 200,
    "x" * 300,
    "mixed ascii and ünïcödé words " * 5,
    'quotes "and" \\ backslashes',
    "a  double  space",
    " leading",
    "trailing ",
    "=?utf-8?q?smuggled?=",
    "tab\there",
    "a\u00a0nbsp",
    "z" * 990,
    "Re: [list] Fwd: a long subject line that surely needs folding somewhere in the middle",
]
ADDRESSES = [
    "plain@example.com",
    "Ann <ann@example.com>",
    '"Doe, John" <john@example.com>',
    "Jöhn Dœ <jd@example.com>",
    "=?utf-8?q?J=C3=B6?= <encoded@example.com>",
    "bücher <info@bücher.example>",
    ("Name, With Comma", "comma@example.com"),
    ('Quote " and \\ backslash', "q@example.com"),
    ("", "emptyname@example.com"),
    ("a  b", "doublespace@example.com"),
    ("日本 太郎", "taro@example.jp"),
    ("x" * 90, "longname@example.com"),
    ("É" * 60, "longutf@example.com"),
    ('"odd".local', "odd@example.com"),
    '"quoted local"@example.com',
]
UTF8_ADDRESSES = ["jürgen@example.de", "Jürgen <jürgen@bücher.example>"]
BODIES = [
    "",
    "Body.",
    "line one\nline two\n",
    "crlf\r\nlines\r\n",
    "bare\rcr",
    "no final newline",
    "ünïcödé body\n",
    "x" * 200,
    "é" * 120,
    "short\n" + "long " * 40 + "\n" * 3 + "end",
    ("some html <b>" * 20 + "\n") * 15,
    "trailing spaces   \nand tabs\t\n",
    ".\n..\nFrom here\n",
    "--=_boundary-looking\n",
    "\x00\x01 control\n",
    "日本語 " * 40,
]
ATTACHMENTS: list[tuple[Any, Any, Any]] = [
    ("report.pdf", b"%PDF-1.4 binary \x00\xff" * 50, "application/pdf"),
    ("naïve café.txt", "text attachment ünï\n", "text/plain"),
    ("data.json", '{"a": 1}', "application/json"),
    (None, b"\x00\x01\x02", "application/octet-stream"),
    ("", b"empty name", "application/octet-stream"),
    ("empty.bin", b"", "application/octet-stream"),
    ('we"ird\\name.bin', b"x", "application/octet-stream"),
    ("a" * 150 + ".txt", b"long name", "application/octet-stream"),
    ("日本語のファイル名" * 8 + ".txt", b"long utf-8 name", "application/octet-stream"),
    ("long.txt", "long line " * 100, "text/plain"),
    ("mail.eml", "Subject: hi\n\nbody\n", "message/rfc822"),
    ("page.html", "<p>hi</p>\n", "text/html"),
    ("image.png", bytes(range(256)) * 40, "image/png"),
]
EXTRA_HEADERS: list[dict[str, Any]] = [
    {},
    {"X-Mailer": "mailout"},
    {"In-Reply-To": "<a@example.com>", "References": "<a@example.com> <b@example.com>"},
    {"Message-ID": "<pinned.id@example.com>"},
    {"Subject": "Overridden ünï"},
    {"Date": "Tue, 1 Jan 2030 00:00:00 +0000"},
    {"Reply-To": "other@example.com"},
    {"X-Number": 42},
    {"X-Long": "value " * 50 + "end"},
    {"X-Utf8": "ünïcödé value"},
    {"Content-Language": "fr"},
    {"x-lower": "a", "X-LOWER": "b"},
]


def make(kind: str = "plain", **kwargs: Any) -> EmailMessage:
    fields: dict[str, Any] = {
        "subject": "Hello",
        "body": "Body.\n",
        "from_email": "sender@example.com",
        "to": ["rcpt@example.com"],
    }
    alternatives = kwargs.pop("alternatives", None)
    fields.update(kwargs)
    if kind == "alternatives" or alternatives:
        message = EmailMultiAlternatives(**fields)
        for content, mimetype in alternatives or [("<p>HTML</p>", "text/html")]:
            message.attach_alternative(content, mimetype)
        return message
    return EmailMessage(**fields)


def corpus() -> list[tuple[str, EmailMessage, bool]]:
    """(id, message, smtputf8) for a few hundred messages covering every row of every table."""
    out: list[tuple[str, EmailMessage, bool]] = []
    for i, subject in enumerate(SUBJECTS):
        for utf8 in (False, True):
            out.append((f"subject{i}-{utf8}", make(subject=subject), utf8))
    for i, address in enumerate(ADDRESSES):
        for utf8 in (False, True):
            out.append((f"to{i}-{utf8}", make(to=[address], cc=[address, "x@example.com"]), utf8))
            out.append((f"from{i}-{utf8}", make(from_email=address, reply_to=[address]), utf8))
    for i, address in enumerate(UTF8_ADDRESSES):
        for utf8 in (False, True):
            out.append((f"utf8addr{i}-{utf8}", make(to=[address]), utf8))
    many = [f"User {n} <user{n}@example.com>" for n in range(60)]
    out.append(("many", make(to=many, cc=many[:10], bcc=many[10:20]), False))
    for i, body in enumerate(BODIES):
        for kind in ("plain", "alternatives"):
            out.append((f"body{i}-{kind}", make(kind, body=body), False))
            html = [(body, "text/html"), (body.encode("utf-8"), "application/x-bin")]
            out.append((f"alt{i}-{kind}", make(body="b", alternatives=html), False))
    for i, attachment in enumerate(ATTACHMENTS):
        for kind in ("plain", "alternatives"):
            message = make(kind)
            message.attachments.append(attachment)
            out.append((f"att{i}-{kind}", message, False))
    both = make("alternatives", subject="Everything ünï", to=ADDRESSES[:6])
    both.attachments.extend(ATTACHMENTS[:4])
    out.append(("everything", both, False))
    for i, headers in enumerate(EXTRA_HEADERS):
        for utf8 in (False, True):
            out.append((f"headers{i}-{utf8}", make(headers=headers), utf8))
    for i, (subject, body) in enumerate(itertools.product(SUBJECTS[:8], BODIES[:10])):
        message = make("alternatives", subject=subject, body=body)
        message.attachments.append(ATTACHMENTS[i % 4])
        out.append((f"combo{i}", message, False))
    subtypes = make(subject="subtypes")
    subtypes.content_subtype = "html"
    subtypes.mixed_subtype = "related"
    subtypes.attachments.append(ATTACHMENTS[0])
    out.append(("subtypes", subtypes, False))
    latin = make(subject="latin-1")
    latin.encoding = "iso-8859-1"
    out.append(("latin1", latin, False))
    ascii_ = make(subject="us-ascii")
    ascii_.encoding = "us-ascii"
    out.append(("ascii", ascii_, False))
    return out
