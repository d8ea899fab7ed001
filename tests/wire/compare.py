"""Compare the fast path with the standard-library path, and check raw wire bytes by hand."""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage as StdMessage
from typing import Any

from mailout import wire
from mailout._wire.headers import Fallback
from mailout.address import parse_address, parse_address_list
from mailout.message import EmailMessage
from mailout.wireform import build, serialize

_FIELD_NAME = re.compile(rb"[!-9;-~]+")  # RFC 5322 §2.2
_ADDRESS_FIELDS = {"from", "to", "cc", "reply-to", "sender", "bcc"}
_VOLATILE = {"date", "message-id"}  # compared by presence only (unless pinned in headers=)
STDLIB_BUGS: Counter[str] = Counter()  # fields where the stdlib path lost what was asked


def parse(data: bytes) -> StdMessage:
    # "\n" line ends, as the other backends write them, so that decoded contents compare.
    msg = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert isinstance(msg, StdMessage)
    return msg


def _header(name: str, value: Any) -> object:
    if name in _ADDRESS_FIELDS:
        return tuple((a.display_name, a.username, a.domain) for a in value.addresses)
    # The stdlib folds a first word too long for the line right after "Name:", and reads the
    # folding whitespace back as part of the value; leading whitespace carries no meaning.
    return str(value).lstrip(" ")


def _cte_class(cte: str) -> str:
    # 7bit and 8bit must agree; quoted-printable and base64 only matter decoded.
    return cte if cte in ("7bit", "8bit") else "encoded"


def describe(data: bytes, *, pinned: frozenset[str] = frozenset()) -> list[object]:
    """Everything a receiver sees: fields decoded, the MIME tree, parameters, decoded payloads."""
    tree: list[object] = []
    for depth, part in enumerate(parse(data).walk()):
        fields = []
        for name, value in part.items():
            key = name.lower()
            if key in _VOLATILE and key not in pinned and depth == 0:
                fields.append((key, "<present>"))
            elif key == "content-type":
                params = {k: v for k, v in part.get_params(failobj=[])[1:] if k != "boundary"}
                fields.append((key, part.get_content_type(), sorted(params.items())))
            elif key == "content-transfer-encoding":
                fields.append((key, _cte_class(str(value).lower())))
            elif key == "content-disposition":
                fields.append((key, part.get_content_disposition(), part.get_filename()))
            else:
                fields.append((key, _header(key, value)))
        entry: list[object] = [sorted(fields, key=repr), sorted(map(repr, part.defects))]
        if not part.is_multipart():
            entry.append(part.get_content())
        tree.append(entry)
    return tree


def check_wire(data: bytes, *, smtputf8: bool) -> None:
    """Raw checks, with no stdlib leniency: what _check_wire_form promises, and more."""
    crlf = data.count(b"\r\n")
    assert data.count(b"\r") == crlf, "bare CR"
    assert data.count(b"\n") == crlf, "bare LF"
    lines = data.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines), "line over 998 octets"
    head, sep, _ = data.partition(b"\r\n\r\n")
    assert sep
    assert b"\0" not in head
    if not smtputf8:
        assert head.isascii(), "8-bit byte in the header block"
    names = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            assert names, "continuation line before any field"
            assert line.strip(), "whitespace-only continuation line"
            continue
        name, colon, _ = line.partition(b":")
        assert colon, f"not a header field: {line!r}"
        assert _FIELD_NAME.fullmatch(name), f"not a field name: {line!r}"
        names.append(name.decode().lower())
    if not data.isascii() and not smtputf8:
        declared = re.findall(rb"(?im)^content-transfer-encoding: *8bit\r$", data)
        assert declared, "8-bit bytes but no part is declared 8bit"
    check_canonical_text(data)


def check_canonical_text(data: bytes) -> None:
    """Text in base64 is in canonical form: every line break CRLF (RFC 2045 §6.8)."""
    for part in email.message_from_bytes(data, policy=email.policy.SMTP).walk():
        cte = str(part.get("Content-Transfer-Encoding", "")).lower()
        if part.get_content_maintype() == "text" and cte == "base64":
            decoded = part.get_payload(decode=True)
            assert decoded.count(b"\n") == decoded.count(b"\r\n") == decoded.count(b"\r"), (
                "base64 text whose line breaks are not CRLF"
            )


@dataclass
class Outcome:
    kind: str  # "fast", "fallback" or "refused"
    detail: str = ""


def compare(message: EmailMessage, *, smtputf8: bool = False, seed: int | None = 7) -> Outcome:
    """Render with both paths; they must agree on bytes-as-decoded, or both refuse alike."""
    try:
        # What Django's smtp backend sends: the message built with policy.SMTP (CRLF canonical
        # form inside base64 text), not message()'s default policy.
        slow: bytes | None = serialize(build(message, smtputf8=smtputf8), smtputf8=smtputf8)
        slow_error: Exception | None = None
    except Exception as exc:
        slow, slow_error = None, exc
    try:
        fast: bytes | None = wire._render(message, smtputf8, seed)
        fast_error: Exception | None = None
    except Fallback as exc:
        fast, fast_error = None, None
        reason = exc.reason
    except Exception as exc:
        fast, fast_error = None, exc
    # The public entry point: the same bytes-as-decoded or the same exception type.
    public_error: Exception | None = None
    try:
        public = wire.render(message, smtputf8=smtputf8, boundary_seed=seed)
    except Exception as exc:
        public_error = exc
    if public_error is not None:
        assert slow_error is not None, f"render() raised {public_error!r}; stdlib did not"
        assert type(public_error) is type(slow_error), f"{public_error!r} != {slow_error!r}"
        assert fast is None, "the fast path accepted what the stdlib path refuses"
        return Outcome("refused", type(slow_error).__name__)
    assert slow_error is None, f"stdlib refused ({slow_error!r}) but render() did not"
    assert slow is not None
    pinned = frozenset(k.lower() for k in message.extra_headers)
    try:
        expected = describe(slow, pinned=pinned)
    except Exception:
        # Python 3.11 can write a field its own parser cannot read back (a display name such as
        # ". aaa…" folded unquoted): judge the fast path's fields by what the caller asked for.
        if fast is None:  # fell back, so the stdlib's bytes are what is sent: a known limit
            STDLIB_BUGS["unparseable-fallback"] += 1
            return Outcome("fallback", reason)
        got = describe(public, pinned=pinned)
        fields = {entry[0]: entry[1] for entry in got[0][0]}  # type: ignore[index]
        for key, wanted in intended_addresses(message).items():
            if key in fields:
                assert fields[key] == wanted, (key, fields[key], wanted)
        STDLIB_BUGS["unparseable"] += 1
        expected = got
    got = describe(public, pinned=pinned)
    if got != expected and fast is not None:
        _excuse_stdlib_address_bugs(message, expected, got)
    assert got == expected
    if fast_error is not None:
        raise AssertionError(f"fast path refused what the stdlib path accepts: {fast_error!r}")
    if fast is None:
        return Outcome("fallback", reason)
    check_wire(fast, smtputf8=smtputf8)
    # The same header fields, as _check_wire_form checks them.
    from mailout.wireform import _check_wire_form

    _check_wire_form(fast, [k.lower() for k in parse(slow)])
    return Outcome("fast")


def intended_addresses(message: EmailMessage) -> dict[str, object]:
    """What each address field should hold: the input, parsed as both paths parse it."""
    fields = {
        "from": [parse_address(message.from_email, field="from_email")],
        "to": parse_address_list(message.to, field="to"),
        "cc": parse_address_list(message.cc, field="cc"),
        "reply-to": parse_address_list(message.reply_to, field="reply_to"),
    }
    return {
        key: tuple((a.display_name, a.local_part, a.domain) for a in found)
        for key, found in fields.items()
    }


def _excuse_stdlib_address_bugs(
    message: EmailMessage, expected: list[object], got: list[object]
) -> None:
    """Where the stdlib's own output loses or changes a recipient, judge by the input instead.

    Python 3.11's folder can put the comma between two mailboxes inside an encoded word
    (``=?utf-8?q?=2C?=``), which merges them and drops one from the field; a right answer
    cannot equal that, so such a field is compared with what the caller asked for.
    """
    intent: dict[str, object] = dict(intended_addresses(message))
    fields = expected[0][0]  # type: ignore[index]
    for index, entry in enumerate(fields):
        key, value = entry[0], entry[1]
        if key not in intent:
            continue
        # Raw UTF-8 header bytes (SMTPUTF8) come back from the byte parser as surrogate
        # escapes, RFC 2047 words as text: the caller's value may appear in either form.
        for wanted in (intent[key], _as_parsed(intent[key])):
            if value != wanted and (key, wanted) in got[0][0]:  # type: ignore[index]
                fields[index] = (key, wanted)
                STDLIB_BUGS[key] += 1
                break


def _as_parsed(value: object) -> object:
    """``value`` as the byte parser returns raw UTF-8 text: non-ASCII as surrogate escapes."""
    if isinstance(value, str):
        return value.encode("utf-8").decode("ascii", "surrogateescape")
    if isinstance(value, tuple):
        return tuple(_as_parsed(item) for item in value)
    return value
