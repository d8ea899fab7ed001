"""The reply parser, fed whole, byte by byte and with trailing bytes; plus hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailout.exceptions import SMTPProtocolError
from mailout.smtp._protocol import Reply, ReplyParser


def parse_all(data: bytes, *, enhanced: bool = False, step: int | None = None) -> list[Reply]:
    parser = ReplyParser()
    parser.enhanced_status_codes = enhanced
    replies: list[Reply] = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        parser.feed(chunk)
        while (reply := parser.next_reply()) is not None:
            replies.append(reply)
    return replies


# (wire bytes, ENHANCEDSTATUSCODES advertised, expected replies)
VALID = [
    (b"220 ready\r\n", False, [Reply(220, "ready")]),
    (b"250\r\n", False, [Reply(250, "")]),
    (b"250 \r\n", False, [Reply(250, "")]),
    (b"250-a\r\n250-b\r\n250 c\r\n", False, [Reply(250, "a\nb\nc")]),
    (b"250-\r\n250 x\r\n", False, [Reply(250, "\nx")]),
    (b"550 5.1.1 No such user\r\n", True, [Reply(550, "No such user", "5.1.1")]),
    (b"550 5.1.1 No such user\r\n", False, [Reply(550, "5.1.1 No such user")]),
    (b"550-5.1.1 a\r\n550 5.1.1 b\r\n", True, [Reply(550, "a\nb", "5.1.1")]),
    (b"250 2.0.0\r\n", True, [Reply(250, "", "2.0.0")]),
    # The class must agree with the reply code (RFC 3463 §2): otherwise it is plain text.
    (b"250 5.0.0 odd\r\n", True, [Reply(250, "5.0.0 odd")]),
    (b"250 ok\n", False, [Reply(250, "ok")]),  # a bare LF line end is tolerated on input
    (b"250 a\r\n354 b\r\n", False, [Reply(250, "a"), Reply(354, "b")]),
    ("250 caf\u00e9\r\n".encode(), False, [Reply(250, "caf\u00e9")]),
    # Single-line replies take a fast path; these pin it to what the general path gives.
    (b"250 2.1.0   OK\r\n", True, [Reply(250, "OK", "2.1.0")]),
    (b"354 3.0.0 go\r\n", True, [Reply(354, "3.0.0 go")]),  # RFC 3463: no class 3
    (b"550 5.7.10 x\r\n", True, [Reply(550, "x", "5.7.10")]),
    (b"550 5.01.1 x\r\n", True, [Reply(550, "x", "5.1.1")]),
    ("250 2.\u0663.0 x\r\n".encode(), True, [Reply(250, "x", "2.3.0")]),
    (b"250 2.1.0\tOK\r\n", True, [Reply(250, "2.1.0\tOK")]),
    (b"250 a\rb\r\n", False, [Reply(250, "a\rb")]),
    (b"250 \xff\xfe\r\n", False, [Reply(250, "\ufffd\ufffd")]),
    (
        b"250 2.1.0 OK\r\n250-2.0.0 x\r\n250 y\r\n550 5.1.1 no\n",
        True,
        [Reply(250, "OK", "2.1.0"), Reply(250, "x\ny", "2.0.0"), Reply(550, "no", "5.1.1")],
    ),
]


@pytest.mark.parametrize(("data", "enhanced", "expected"), VALID)
@pytest.mark.parametrize("step", [None, 1, 2, 7])
def test_valid_replies(
    data: bytes, enhanced: bool, expected: list[Reply], step: int | None
) -> None:
    assert parse_all(data, enhanced=enhanced, step=step) == expected


@pytest.mark.parametrize(("data", "enhanced", "expected"), VALID)
def test_trailing_bytes_stay_buffered(data: bytes, enhanced: bool, expected: list[Reply]) -> None:
    parser = ReplyParser()
    parser.enhanced_status_codes = enhanced
    parser.feed(data + b"250-partial")
    got = []
    while (reply := parser.next_reply()) is not None:
        got.append(reply)
    assert got == expected
    assert parser.buffered == len(b"250-partial")
    parser.feed(b"\r\n250 end\r\n")
    assert parser.next_reply() == Reply(250, "partial\nend")


INVALID = [
    b"hello\r\n",
    b"25\r\n",
    b"2500 x\r\n",
    b"250x\r\n",
    b"150 old style\r\n",
    b"650 no such class\r\n",
    b"260 second digit\r\n",
    b"250-a\r\n251 b\r\n",  # RFC 5321 §4.2.1: one code per reply
    b"\r\n",
    b"abc 250\r\n",
]


@pytest.mark.parametrize("data", INVALID)
@pytest.mark.parametrize("step", [None, 1])
def test_garbage_is_a_protocol_error(data: bytes, step: int | None) -> None:
    with pytest.raises(SMTPProtocolError):
        parse_all(data, step=step)


def test_line_length_bounded_even_without_newline() -> None:
    parser = ReplyParser(max_line=100)
    parser.feed(b"250 " + b"x" * 200)
    with pytest.raises(SMTPProtocolError, match="longer than 100"):
        parser.next_reply()


def test_line_length_bounded_with_newline() -> None:
    with pytest.raises(SMTPProtocolError):
        parse_all(b"250 " + b"x" * 5000 + b"\r\n")


def test_reply_size_bounded_for_a_single_line() -> None:
    parser = ReplyParser(max_line=2048, max_size=100)
    parser.feed(b"250 " + b"x" * 200 + b"\r\n")
    with pytest.raises(SMTPProtocolError, match="100 bytes"):
        parser.next_reply()


def test_reply_carries_the_command_it_answers() -> None:
    parser = ReplyParser()
    parser.enhanced_status_codes = True
    parser.feed(b"250 2.1.0 OK\r\n250-a\r\n250 b\r\n")
    assert parser.next_reply("MAIL") == Reply(250, "OK", "2.1.0", "MAIL")
    assert parser.next_reply("EHLO") == Reply(250, "a\nb", None, "EHLO")


def test_reply_lines_bounded() -> None:
    with pytest.raises(SMTPProtocolError, match="64 lines"):
        parse_all(b"250-x\r\n" * 100 + b"250 x\r\n")


def test_reply_size_bounded() -> None:
    parser = ReplyParser(max_line=2048, max_lines=1000, max_size=10_000)
    parser.feed((b"250-" + b"x" * 1000 + b"\r\n") * 20)
    with pytest.raises(SMTPProtocolError, match="10000 bytes"):
        parser.next_reply()


def test_clear_drops_buffer() -> None:
    parser = ReplyParser()
    parser.feed(b"250-a\r\n250 injected")
    assert parser.next_reply() is None
    parser.clear()
    parser.feed(b"220 fresh\r\n")
    assert parser.next_reply() == Reply(220, "fresh")


def test_reply_str() -> None:
    assert str(Reply(550, "No such user", "5.1.1")) == "550 5.1.1 No such user"
    assert str(Reply(250, "a\nb")) == "250 a\nb"
    assert str(Reply(250, "")) == "250"


codes = st.integers(2, 5).flatmap(
    lambda a: st.integers(0, 5).flatmap(
        lambda b: st.integers(0, 9).map(lambda c: a * 100 + b * 10 + c)
    )
)
line_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
)


@given(code=codes, lines=st.lists(line_text, min_size=1, max_size=10), step=st.integers(1, 50))
def test_any_well_formed_reply_round_trips(code: int, lines: list[str], step: int) -> None:
    wire = (
        b"".join(f"{code}-{t}\r\n".encode() for t in lines[:-1])
        + f"{code} {lines[-1]}\r\n".encode()
    )
    assert parse_all(wire, step=step) == [Reply(code, "\n".join(lines))]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_replies_or_protocol_error(data: bytes) -> None:
    try:
        replies = parse_all(data)
    except SMTPProtocolError:
        return
    assert all(200 <= r.code < 600 for r in replies)
