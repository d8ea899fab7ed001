"""ESMTP parameter smuggling through the envelope: ``RCPT TO:<t@x> NOTIFY=SUCCESS ...``.

``mailout.smtp.Envelope`` is public API: whatever a caller puts in it goes between the angle
brackets of MAIL FROM / RCPT TO. Only a mailbox (RFC 5321 §4.1.2, UTF-8 as RFC 6531 allows) is
accepted, so no address can end the path early and add parameters or commands. Checked against
a real server whose parser is as naive as they come (the first ``>`` ends the path).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailout
from mailout.exceptions import BadHeaderError, InvalidAddressError
from mailout.smtp import Envelope, SMTPClient
from tests.servers.faulty import FaultyServer

SMUGGLING = [
    "t@example.com> NOTIFY=SUCCESS ORCPT=rfc822;evil@x.com",
    "t@example.com> NOTIFY=SUCCESS",
    "t@example.com>NOTIFY=SUCCESS",
    "t@example.com> BODY=8BITMIME",
    '"a>b"@example.com',
    '"t@example.com> NOTIFY=SUCCESS"@example.com',
    "<t@example.com>",
    "t@example.com NOTIFY=SUCCESS",
    "t@example.com\tNOTIFY=SUCCESS",
    "t@example.com\u3000NOTIFY=SUCCESS",  # split by servers that decode, then split on spaces
    "t@example.com\x85NOTIFY=SUCCESS",
    "t@example.com\u2028NOTIFY=SUCCESS",
    "t@example.com\udcbeNOTIFY=SUCCESS",  # a raw byte smuggled in by surrogateescape
    "t NOTIFY=SUCCESS",  # a local part alone, with a parameter after it
    "t>NOTIFY=SUCCESS",
]
# A server that ends the path at the first ">" and takes the rest as parameters.
NAIVE = re.compile(r"(?:MAIL FROM|RCPT TO):<([^>]*)>\s*(.*)", re.DOTALL)


@pytest.fixture(scope="module")
def server() -> Iterator[FaultyServer]:
    with FaultyServer() as srv:
        yield srv


@pytest.mark.parametrize("address", SMUGGLING)
def test_smuggling_recipient_is_refused_naming_the_field(address: str) -> None:
    with pytest.raises(InvalidAddressError, match=r"Envelope\.recipients\[1\]") as caught:
        Envelope("a@example.com", ("ok@example.com", address))
    assert "RFC 5321" in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("address", SMUGGLING)
def test_smuggling_sender_is_refused_naming_the_field(address: str) -> None:
    with pytest.raises(InvalidAddressError, match=r"Envelope\.sender"):
        Envelope(address, ("ok@example.com",))


@pytest.mark.parametrize("address", ["t@example.com\r\nRSET", "t@example.com\n", "t\0@x.com"])
def test_a_line_break_is_a_bad_header_error(address: str) -> None:
    with pytest.raises(BadHeaderError, match=r"Envelope\.recipients\[0\]"):
        Envelope("a@example.com", (address,))


def test_the_issue_case_never_reaches_the_server(server: FaultyServer) -> None:
    before = list(server.commands)
    with (
        SMTPClient(server.host, server.port, timeout=5.0) as client,
        pytest.raises(InvalidAddressError),
    ):
        client.send(Envelope("a@example.com", (SMUGGLING[0],)), b"Subject: x\r\n\r\nbody\r\n")
    new = server.commands[len(before) :]
    assert not any("NOTIFY" in c or c.startswith(("MAIL", "RCPT")) for c in new)


def test_the_backend_refuses_it_too(server: FaultyServer) -> None:
    # The message layer parses "t@example.com> NOTIFY=..." as something else entirely; the
    # quoted form is a valid RFC 5322 address, refused for every backend alike.
    backend = mailout.get_connection(
        "mailout.backends.smtp.EmailBackend", host=server.host, port=server.port
    )
    count = len(server.transactions)
    for address in ('"t@example.com> NOTIFY=SUCCESS"@example.com', '"a>b"@example.com'):
        with pytest.raises(InvalidAddressError, match="to"):
            backend.send_messages([mailout.EmailMessage("s", "b", "a@example.com", [address])])
        with pytest.raises(InvalidAddressError):
            mailout.get_connection("mailout.backends.locmem.EmailBackend").send_messages(
                [mailout.EmailMessage("s", "b", "a@example.com", [address])]
            )
    assert len(server.transactions) == count


@pytest.mark.parametrize(
    "address",
    [
        "a@example.com",
        "first.last+tag@sub.example-domain.com",
        "o'neil@example.com",
        "!#$%&'*+/=?^_`{|}~-@example.com",
        '"john doe"@example.com',
        '"quoted\\"quote"@example.com',
        '"a@b"@example.com',
        "josé@bücher.example",
        "用户@例子.广告",
        "a@[192.0.2.1]",
        "a@[IPv6:2001:db8::1]",
        "a@localhost",
        "a@xn--bcher-kva.example",
    ],
)
def test_real_mailboxes_are_accepted(address: str) -> None:
    assert Envelope(address, (address,)).recipients == (address,)


def test_null_sender_and_a_local_part_alone() -> None:
    envelope = Envelope("", ("Postmaster", "postmaster@example.com", "webmaster"))
    assert envelope.sender == ""
    assert Envelope("webmaster", ("postmaster",)).sender == "webmaster"  # as Django sends it
    with pytest.raises(InvalidAddressError):
        Envelope("a@example.com", ("",))
    with pytest.raises(InvalidAddressError):
        Envelope("web master", ("a@example.com",))


# -- properties --------------------------------------------------------------------------------

_ATEXT = st.sampled_from([*"abcXYZ019!#$%&'*+/=?^_`{|}~-", "é", "ü", "用"])
_ATOM = st.text(_ATEXT, min_size=1, max_size=6)
_LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True) | st.sampled_from(
    ["bücher", "例子"]
)
_QUOTED = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\<>'),
    max_size=8,
).map(lambda text: f'"{text}"')
MAILBOXES = st.builds(
    lambda local, labels: f"{local}@{'.'.join(labels)}" if labels else local,
    st.lists(_ATOM, min_size=1, max_size=3).map(".".join) | _QUOTED,
    st.lists(_LABEL, max_size=3),  # none: a local part alone, as Django allows
).filter(lambda a: len(a.encode()) <= 254)
# Mostly addresses with hostile pieces glued on: what a parser must not be fooled by.
_PIECES = st.sampled_from(
    ["a", "@", ".", "example.com", ">", "<", " ", '"', "\\", "NOTIFY=SUCCESS", "\t", "\r\n",
     "\x00", "\x85", "\u2028", "\u3000", "[", "]", "IPv6:", "::1", "é", ";", ",", ":"]
)  # fmt: skip
HOSTILE = st.lists(st.one_of(_PIECES, st.text(max_size=4)), min_size=1, max_size=8).map("".join)
_RELAXED = settings(max_examples=200, deadline=None)


def outside_the_quotes(address: str) -> str:
    """``address`` without its quoted local part, if it has one (escapes honoured)."""
    if not address.startswith('"'):
        return address
    index = 1
    while index < len(address) and address[index] != '"':
        index += 2 if address[index] == "\\" else 1
    return address[index + 1 :]


@_RELAXED
@given(address=st.one_of(HOSTILE, st.text(max_size=40), MAILBOXES))
def test_any_text_is_refused_or_cannot_smuggle(address: str) -> None:
    try:
        Envelope(address, (address,))
    except (InvalidAddressError, BadHeaderError):  # typed, and ValueErrors both
        return
    # Accepted: the path cannot end early, and no parameter or line can follow it.
    line = f"RCPT TO:<{address}>"
    naive = NAIVE.fullmatch(line)
    assert naive is not None
    assert naive[1] == address
    assert naive[2] == ""
    assert not any(ch in address for ch in "<>\r\n\0")
    assert not any(ch.isspace() for ch in outside_the_quotes(address))
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in address)
    assert address.encode("utf-8")  # no lone surrogate: it is real text


@_RELAXED
@given(address=MAILBOXES)
def test_every_mailbox_is_accepted(address: str) -> None:
    assert Envelope(address, (address,)).sender == address


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(address=MAILBOXES)
def test_a_real_server_reads_exactly_the_mailbox(server: FaultyServer, address: str) -> None:
    """Over a real socket, the naive server records the address and no parameter."""
    with SMTPClient(server.host, server.port, timeout=5.0) as client:
        client.send(Envelope(address, (address,)), b"Subject: x\r\n\r\nbody\r\n")
    transaction = server.transactions[-1]
    assert transaction.sender == address
    assert transaction.recipients == (address,)
    assert all(p.split("=")[0] in ("SIZE", "SMTPUTF8") for p in transaction.mail_params)
    rcpt = next(c for c in reversed(server.commands) if c.startswith("RCPT"))
    assert rcpt == f"RCPT TO:<{address}>"
