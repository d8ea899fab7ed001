"""DATA and BDAT framing: line endings, dot-stuffing, and SMTP smuggling."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailout.smtp._protocol import encode_bdat, encode_data, normalize_newlines

CASES = [
    # content, DATA wire bytes, BDAT payload
    (b"", b".\r\n", b""),
    (b"a", b"a\r\n.\r\n", b"a\r\n"),
    (b"a\r\n", b"a\r\n.\r\n", b"a\r\n"),
    (b"a\nb\n", b"a\r\nb\r\n.\r\n", b"a\r\nb\r\n"),
    (b"a\rb", b"a\r\nb\r\n.\r\n", b"a\r\nb\r\n"),
    (b".", b"..\r\n.\r\n", b".\r\n"),
    (b".a\r\n.\r\n..\r\n", b"..a\r\n..\r\n...\r\n.\r\n", b".a\r\n.\r\n..\r\n"),
    (b"a\r\n.b", b"a\r\n..b\r\n.\r\n", b"a\r\n.b\r\n"),
    (b"a.b\r\n", b"a.b\r\n.\r\n", b"a.b\r\n"),
    # SMTP smuggling: bare-LF and bare-CR end-of-data look-alikes must be neutralised.
    (b"x\n.\r\nMAIL FROM:<evil>", b"x\r\n..\r\nMAIL FROM:<evil>\r\n.\r\n", None),
    (b"x\r\n.\nRCPT", b"x\r\n..\r\nRCPT\r\n.\r\n", None),
    (b"x\r.\r\nQUIT", b"x\r\n..\r\nQUIT\r\n.\r\n", None),
    (b"x\n.\n", b"x\r\n..\r\n.\r\n", None),
    (b"\r\n\r\n", b"\r\n\r\n.\r\n", b"\r\n\r\n"),
    (b"\n\r", b"\r\n\r\n.\r\n", b"\r\n\r\n"),
]


@pytest.mark.parametrize(("content", "wire", "bdat"), CASES)
def test_data_framing(content: bytes, wire: bytes, bdat: bytes | None) -> None:
    assert encode_data(content) == wire
    if bdat is not None:
        assert encode_bdat(content) == bdat


def _ends_early(wire: bytes) -> bool:
    """True if a server scanning for CRLF.CRLF (or lax variants) would stop before the end."""
    body = b"\r\n" + wire  # the DATA line's own CRLF precedes the content
    for terminator in (b"\r\n.\r\n", b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n"):
        at = body.find(terminator)
        if at != -1 and at + len(terminator) != len(body):
            return True
    return False


def unstuff(wire: bytes) -> bytes:
    """A plain reference receiver (RFC 5321 §4.5.2): read lines up to a lone "."."""
    lines = wire.split(b"\r\n")
    assert lines[-1] == b"", "data must end with CRLF"
    out = []
    for line in lines[:-1]:
        if line == b".":
            break
        out.append(line[1:] if line.startswith(b".") else line)
    else:
        raise AssertionError("no end of data")
    return b"".join(part + b"\r\n" for part in out)


messages = st.lists(
    st.sampled_from([b".", b"..", b"\r", b"\n", b"\r\n", b"a", b" ", b"\x00", b"\xff", b"QUIT"]),
    max_size=40,
).map(b"".join) | st.binary(max_size=200)


@given(messages)
def test_dot_stuffing_round_trips(content: bytes) -> None:
    wire = encode_data(content)
    assert not _ends_early(wire)
    assert wire.endswith(b".\r\n")
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", wire) is None  # no bare CR or LF on the wire
    expected = normalize_newlines(content)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert unstuff(wire) == expected
    assert encode_bdat(content) == expected


@given(messages)
def test_normalize_is_idempotent(content: bytes) -> None:
    once = normalize_newlines(content)
    assert normalize_newlines(once) == once
    assert once.replace(b"\r\n", b"").count(b"\r") == 0
    assert once.replace(b"\r\n", b"").count(b"\n") == 0
