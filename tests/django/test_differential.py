"""The same Django messages through Django's smtp backend and mailout.django.EmailBackend, to a
real SMTP server (aiosmtpd): what arrives must be the same, decoded, part by part.

Compared: the envelope, every header field decoded (addresses as display name, local part and
domain), the MIME tree with its parameters (boundaries aside), file names, and each decoded
payload; Date and Message-ID by presence unless the message pins them (tests/wire/compare.py).
Django writes a MIME-Version field into every part, where only the top level needs one
(RFC 2045 §4), and mailout writes it there alone: inner MIME-Version fields are left out of the
comparison. Under Django 5.2, whose email.mime classes write 8bit text up to 998 octets a line
where mailout (as Django 6 and the standard library) switches to quoted-printable past 78, the
transfer encoding is left out too: it says how the same text travels, not what it is (under
Django 6 it is compared); so are the line ends of decoded text, which base64 carries in
canonical CRLF form (RFC 2045 §6.8) and 8bit text as the receiver's own line ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import mail

from mailout import wire
from mailout.django import EmailBackend
from tests.conftest import SMTPServer
from tests.django.helpers import MODERN, STYLES, mail_settings, reference_backend
from tests.django.messages import CASES, Case
from tests.wire.compare import _excuse_stdlib_address_bugs, check_wire, describe


def delivered(data: bytes, message: Any) -> list[object]:
    pinned = frozenset(name.lower() for name in message.extra_headers)
    tree = []
    for depth, (fields, *rest) in enumerate(describe(data, pinned=pinned)):  # type: ignore[misc]
        kept = [
            field
            for field in fields
            if not (field[0] == "mime-version" and depth)
            and not (field[0] == "content-transfer-encoding" and not MODERN)
        ]
        if not MODERN and len(rest) == 2 and isinstance(rest[1], str):
            rest = [rest[0], rest[1].replace("\r\n", "\n")]
        tree.append([kept, *rest])
    return tree


def assert_same(ours: list[object], djangos: list[object], message: Any = None) -> None:
    """Equal, but for two known bugs.

    Django 6 sends a multipart message whose body is empty without a top-level MIME-Version
    (RFC 2045 §4 requires it), which mailout writes. And the standard library's parser, reading
    Django's bytes, can change an address field or the subject that was written correctly (it
    reads a space into a display name between two encoded words, which RFC 2047 §6.2 says to
    drop): such a field is judged by what the caller asked for (tests/wire/compare.py).
    """
    if message is not None and ours != djangos:
        _excuse_stdlib_address_bugs(message, djangos, ours)
    top: Any = ours[0]
    theirs: Any = djangos[0]
    missing = all(field[0] != "mime-version" for field in theirs[0])
    if MODERN and missing and ("mime-version", "1.0") in top[0]:
        ours = [[[f for f in top[0] if f[0] != "mime-version"], *top[1:]], *ours[1:]]
    assert ours == djangos


def send_both(smtp_server: SMTPServer, case: Case, tmp_path: Path) -> tuple[Any, Any]:
    """Send ``case`` with Django's backend, then with mailout's; return what arrived of each."""
    reference = case.build(tmp_path)
    assert reference_backend(smtp_server.host, smtp_server.port).send_messages([reference]) == 1
    ours = case.build(tmp_path)
    before = wire.stats.fast
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    assert backend.send_messages([ours]) == 1
    took_fast_path = wire.stats.fast - before == 1
    assert took_fast_path == case.fast, wire.stats.reasons
    django_copy, mailout_copy = smtp_server.received
    return (django_copy, reference), (mailout_copy, ours)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_what_arrives_is_what_django_delivers(
    smtp_server: SMTPServer, case: Case, tmp_path: Path
) -> None:
    (django_copy, reference), (mailout_copy, ours) = send_both(smtp_server, case, tmp_path)
    assert mailout_copy.mail_from == django_copy.mail_from
    assert mailout_copy.rcpt_tos == django_copy.rcpt_tos
    assert_same(
        delivered(mailout_copy.data, ours), delivered(django_copy.data, reference), reference
    )
    check_wire(mailout_copy.data, smtputf8=False)


def test_the_cases_cover_both_paths() -> None:
    assert {c.fast for c in CASES} == {True, False}


@pytest.mark.parametrize("style", STYLES)
def test_through_djangos_api_in_both_configuration_styles(
    smtp_server: SMTPServer, style: str, tmp_path: Path
) -> None:
    """send_mail() and message.send() with the backend named in EMAIL_BACKEND or MAILERS."""
    with mail_settings(style, smtp_server.host, smtp_server.port):
        assert mail.send_mail("Hi", TEXT_BODY, None, ["ana@example.com"], html_message="<p>Hi</p>")
        sent = [case.build(tmp_path) for case in CASES]
        for message in sent:
            assert message.send() == 1
    with mail_settings(style, smtp_server.host, smtp_server.port, backend=DJANGO_SMTP):
        mail.send_mail("Hi", TEXT_BODY, None, ["ana@example.com"], html_message="<p>Hi</p>")
        expected = [case.build(tmp_path) for case in CASES]
        for message in expected:
            message.send()
    received = smtp_server.received
    half = len(received) // 2
    assert half == len(CASES) + 1
    for (ours, theirs), message in zip(
        zip(received[:half], received[half:], strict=True), [None, *sent], strict=True
    ):
        pinned = message if message is not None else mail.EmailMessage()
        assert (ours.mail_from, ours.rcpt_tos) == (theirs.mail_from, theirs.rcpt_tos)
        assert_same(delivered(ours.data, pinned), delivered(theirs.data, pinned))


TEXT_BODY = "Hello from the shop.\n"
DJANGO_SMTP = "django.core.mail.backends.smtp.EmailBackend"
