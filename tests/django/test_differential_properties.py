"""Property tests: for any Django message the fast path renders, its bytes decode to what Django's
own serialisation (what Django's smtp backend sends) decodes to.

No network here (tests/django/test_differential.py sends over SMTP): both byte strings are made
in process, ``serialize.render`` against ``serialize._django_bytes``, and compared as
test_differential.py compares them.
"""

from __future__ import annotations

from typing import Any

from django.core.mail import EmailMessage, EmailMultiAlternatives
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mailout import wire
from mailout.django import serialize
from tests.django.test_differential import assert_same, delivered
from tests.wire.compare import check_wire

# Text of every script, with the characters that mean something to headers and MIME.
TEXT = st.lists(
    st.one_of(
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=12),
        st.sampled_from(["\t", " ", "\n", "=?", "?=", '"', ",", "<", ">", ";", ".", "From "]),
    ),
    max_size=8,
).map("".join)
# Header text: mostly words the fast path writes itself, now and then anything at all.
WORDS = st.text(
    "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 ,.!?'()-àéïöüßçñøЖжя中文字", max_size=40
)
LINE_TEXT = st.one_of(WORDS, WORDS, TEXT.filter(lambda t: "\n" not in t and "\r" not in t))
NAME = st.text("abcdefghijklmnopqrstuvwxyzABCXYZ .'-àéïöüßçñЖжя中文字", max_size=16)
LOCAL = st.from_regex(r"[a-z0-9][a-z0-9_+-]{0,10}", fullmatch=True)
DOMAIN = st.sampled_from(["example.com", "bücher.example", "example.org", "xn--bcher-kva.example"])


@st.composite
def address(draw: Any) -> str:
    spec = f"{draw(LOCAL)}@{draw(DOMAIN)}"
    name = draw(NAME).strip()
    return f"{name} <{spec}>" if name else spec


@st.composite
def django_message(draw: Any) -> Any:
    alternatives = draw(st.booleans())
    cls = EmailMultiAlternatives if alternatives else EmailMessage
    body = draw(TEXT)
    message = cls(
        draw(LINE_TEXT),
        body + "\n" if draw(st.booleans()) else body,
        draw(address()),
        draw(st.lists(address(), max_size=3)),
        cc=draw(st.lists(address(), max_size=2)),
        bcc=draw(st.lists(address(), max_size=2)),
        reply_to=draw(st.lists(address(), max_size=2)),
        headers=draw(st.dictionaries(st.sampled_from(["X-Tag", "X-Note", "List-Id"]), LINE_TEXT)),
    )
    if not message.recipients():
        message.to = ["fallback@example.com"]
    if alternatives:
        for _ in range(draw(st.integers(0, 2))):
            message.attach_alternative(draw(TEXT) + "\n", "text/html")
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.one_of(st.none(), LINE_TEXT.filter(bool)))
        if draw(st.booleans()):
            message.attach(name, draw(TEXT) + "\n", "text/plain")
        else:
            message.attach(name, draw(st.binary(max_size=200)), "application/octet-stream")
    return message


@given(message=django_message())
@hypothesis_settings(max_examples=300, deadline=None)
def test_the_fast_path_writes_what_django_writes(message: Any) -> None:
    try:
        envelope = serialize.envelope(message)
        djangos = serialize._django_bytes(message, envelope.smtputf8, None)
    except ValueError:
        return  # refused by Django (or by the address parser): nothing goes out either way
    before = wire.stats.fast
    ours = serialize.render(message, smtputf8=envelope.smtputf8)
    if wire.stats.fast == before:
        return  # mailout sent Django's own bytes
    check_wire(ours, smtputf8=envelope.smtputf8)
    assert_same(delivered(ours, message), delivered(over_smtp(djangos), message), message)


def over_smtp(data: bytes) -> bytes:
    """What a receiver gets: SMTP content ends with a line break (RFC 5321 §4.1.1.4), which
    smtplib adds to Django 5.2's bytes when they lack one (mailout's always end with one)."""
    return data if data.endswith(b"\r\n") else data + b"\r\n"
