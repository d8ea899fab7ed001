"""Differential properties: for generated messages, the fast path writes what the stdlib writes.

"What it writes" is judged as a receiver judges it: every field decoded, the MIME tree with its
parameters, every payload decoded (see ``compare.describe``); plus raw checks on the fast bytes.
Inputs the stdlib path refuses must be refused by ``render()`` with the same exception type.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from mailout import wire
from mailout.message import EmailMessage, EmailMultiAlternatives
from tests.wire.compare import compare

_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that stress encoders: specials, quotes, encoded-word markers, 8-bit, wide, emoji.
_TRICKY = st.sampled_from(
    [" ", "  ", '"', "\\", "(", ")", ",", ";", ":", "<", ">", "@", ".", "=", "?", "=?", "?=",
     "_", "%", "'", "*", "é", "ß", "日本", "\U0001f4e7", "\u00a0", "\t", "-", "\x7f", "a" * 80]
)  # fmt: skip
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0")
text = st.lists(st.one_of(_TRICKY, st.text(_CHARS, max_size=8)), max_size=8).map("".join)
long_text = st.tuples(st.sampled_from(["word ", "wörd ", "x", "é", "ab-"]), st.integers(1, 400))
# Text a real message carries: printable, single spaces; the fast path must take most of it.
_PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn"))
clean_text = st.lists(
    st.one_of(st.text(_PRINTABLE, min_size=1, max_size=12), _TRICKY), max_size=10
).map(lambda pieces: " ".join(" ".join(pieces).split()))
header_text = st.one_of(
    *[clean_text] * 6,
    text,
    long_text.map(lambda t: (t[0] * t[1]).strip()),
)

_LOCAL = st.sampled_from(["a", "user.name", "x+tag", '"quoted local"', "o'neil"])
_DOMAIN = st.sampled_from(["example.com", "bücher.example", "a.b.example"])
bare = st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN)
address = st.one_of(
    bare,
    st.tuples(header_text, bare),  # Django's (name, address) form
    st.builds(lambda name, addr: f"{name} <{addr}>", st.sampled_from(["Ann", "Jöhn", "A B"]), bare),
)
body_text = st.lists(
    st.one_of(
        st.text(_CHARS, max_size=40),
        st.sampled_from(["\n", "\r\n", "\r", "é" * 50, "x" * 120, " \n", "--=_", "=\n"]),
    ),
    max_size=12,
).map("".join)
_NAMES = st.one_of(
    st.sampled_from(["X-Tag", "In-Reply-To", "References", "List-Id", "Subject", "x-tag"]),
    st.sampled_from(["Message-ID", "Date", "Content-Type", "Reply-To", "X-Ünï", "Bad Name"]),
)
headers = st.dictionaries(_NAMES, st.one_of(header_text, st.integers()), max_size=4)
filename = st.one_of(st.none(), st.just(""), header_text, st.sampled_from(["a.txt", "ünï.pdf"]))
attachment = st.one_of(
    st.tuples(filename, st.binary(max_size=300), st.sampled_from(["application/pdf", "image/png"])),
    st.tuples(
        filename, body_text, st.sampled_from(["text/plain", "text/html", "application/json"])
    ),
    st.tuples(filename, st.binary(max_size=20), st.sampled_from(["text/plain", "image/png"])),
    st.tuples(filename, st.binary(max_size=20), st.just("message/rfc822")),
)
alternative = st.one_of(
    st.tuples(body_text, st.sampled_from(["text/html", "text/x-amp-html"])),
    st.tuples(st.binary(max_size=100), st.sampled_from(["application/pdf"])),
)


@st.composite
def messages(draw: Any) -> tuple[EmailMessage, bool]:
    kwargs: dict[str, Any] = {
        "subject": draw(header_text),
        "body": draw(body_text),
        "from_email": draw(
            st.one_of(bare, address.map(lambda a: a if isinstance(a, str) else a[1]))
        ),
        "to": draw(st.lists(address, max_size=5)),
        "cc": draw(st.lists(address, max_size=2)),
        "bcc": draw(st.lists(bare, max_size=2)),
        "reply_to": draw(st.lists(address, max_size=2)),
        "headers": draw(headers),
    }
    alternatives = draw(st.lists(alternative, max_size=2))
    if alternatives or draw(st.booleans()):
        message: EmailMessage = EmailMultiAlternatives(**kwargs)
        for content, mimetype in alternatives:
            message.attach_alternative(content, mimetype)
    else:
        message = EmailMessage(**kwargs)
    for attachment_args in draw(st.lists(attachment, max_size=3)):
        with contextlib.suppress(ValueError):  # refused by attach() itself: not our subject
            message.attach(*attachment_args)
    message.content_subtype = draw(st.sampled_from(["plain", "plain", "html"]))
    return message, draw(st.booleans())


@_SETTINGS
@given(messages())
def test_fast_path_equals_stdlib(case: tuple[EmailMessage, bool]) -> None:
    message, smtputf8 = case
    note(repr({k: v for k, v in vars(message).items() if k != "connection"}))
    outcome = compare(message, smtputf8=smtputf8)
    event(f"{outcome.kind}: {outcome.detail}")


@_SETTINGS
@given(subject=header_text, body=body_text, smtputf8=st.booleans())
def test_simple_messages(subject: str, body: str, smtputf8: bool) -> None:
    compare(EmailMessage(subject, body, "a@example.com", ["b@example.com"]), smtputf8=smtputf8)


@settings(max_examples=60, deadline=None)
@given(name=header_text, smtputf8=st.booleans())
def test_display_names(name: str, smtputf8: bool) -> None:
    message = EmailMessage("s", "b", (name, "a@example.com"), [(name, "b@example.com")])
    compare(message, smtputf8=smtputf8)


@settings(max_examples=60, deadline=None)
@given(name=header_text)
def test_file_names(name: str) -> None:
    message = EmailMessage("s", "b", "a@example.com", ["b@example.com"])
    message.attachments.append((name, b"data", "application/octet-stream"))
    message.attachments.append((name, "text", "text/plain"))
    compare(message)


def test_plain_messages_take_the_fast_path() -> None:
    wire.stats.reset()
    message = EmailMultiAlternatives("Hi ünï", "text", "Ann <a@example.com>", ["b@example.com"])
    message.attach_alternative("<p>html</p>", "text/html")
    message.attach("f.pdf", b"%PDF", "application/pdf")
    assert compare(message).kind == "fast"
    wire.render(message)
    assert (wire.stats.fast, wire.stats.fallbacks) == (2, 0)  # compare() rendered it once
