"""Header injection stays impossible on the fast path: hostile input is refused or inert.

Every header-bearing input is fed line breaks (CR, LF, NUL, U+2028, U+0085, …) and encoded
words that decode to them (``=?utf-8?q?x=0D=0ABcc:_evil?=``). ``render()`` must either raise a
MailoutError (a ValueError or TypeError) or write exactly the expected header fields.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mailout import MailoutError, wire
from mailout.message import EmailMessage
from tests.wire.compare import check_wire, parse

EVIL = "evil@attacker.example"
PAYLOADS = [
    "\r", "\n", "\r\n", "\x00", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
    "\u2029", f"\nBcc: {EVIL}", f"\r\nTo: {EVIL}", f"\u2028Bcc: {EVIL}", "\r\n\r\nbody",
    f", {EVIL}", f"<{EVIL}>", '"', "\\", ":", ";", "=?utf-8?q?X=0D=0ABcc=3A_evil?=",
    "=?utf-8?b?" + base64.b64encode(b"\r\nBcc: evil").decode() + "?=", "é", " ", "\t",
]  # fmt: skip
hostile = st.lists(
    st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=6)), min_size=1, max_size=5
).map("".join)
FIELDS = ["subject", "display_name", "to_name", "header_value", "header_name", "filename"]


def build(field: str, value: str) -> EmailMessage:
    kwargs: dict[str, Any] = {
        "subject": "s",
        "body": "b",
        "from_email": "a@example.com",
        "to": ["b@example.com"],
    }
    if field == "subject":
        kwargs["subject"] = value
    elif field == "display_name":
        kwargs["from_email"] = f'"{value}" <a@example.com>'
    elif field == "to_name":
        kwargs["to"] = [(value, "b@example.com")]
    elif field == "header_value":
        kwargs["headers"] = {"X-Custom": value}
    elif field == "header_name":
        kwargs["headers"] = {value: "v"}
    message = EmailMessage(**kwargs)
    if field == "filename":
        message.attachments.append((value, b"data", "application/octet-stream"))
    return message


def expected_names(message: EmailMessage) -> list[str]:
    names = ["subject", "from", "to", "date", "message-id", "mime-version", "content-type"]
    if not message.attachments:
        names.append("content-transfer-encoding")
    names.extend(k.lower() for k in message.extra_headers if k.lower() not in names)
    return sorted(names)


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(FIELDS), value=hostile, smtputf8=st.booleans())
def test_hostile_input_is_refused_or_inert(field: str, value: str, smtputf8: bool) -> None:
    try:
        message = build(field, value)
        data = wire.render(message, smtputf8=smtputf8)
    except (ValueError, TypeError):  # MailoutErrors are both; a raw file name gets the
        return  # stdlib's own ValueError, exactly as on the slow path
    check_wire(data, smtputf8=smtputf8)
    parsed = parse(data)
    assert sorted(k.lower() for k in parsed) == expected_names(message)
    assert [str(a.addr_spec) for a in parsed["To"].addresses] == ["b@example.com"]
    assert "Bcc" not in parsed
    for part in parsed.walk():
        assert not part.defects or field in ("filename",), part.defects


def test_smuggled_encoded_word_never_reaches_the_wire() -> None:
    for field in FIELDS:
        message = build(field, "x =?utf-8?q?x=0D=0ABcc:_evil?= y")
        try:
            data = wire.render(message)
        except MailoutError:
            continue
        assert b"Bcc" not in data.partition(b"\r\n\r\n")[0].replace(b"\r\n ", b"")


def test_bcc_never_in_headers() -> None:
    message = EmailMessage("s", "b", "a@example.com", ["b@example.com"], bcc=[EVIL])
    data = wire.render(message)
    assert EVIL.encode() not in data
    assert b"bcc" not in data.lower()
