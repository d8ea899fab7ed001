"""parse_address's fast paths agree with the stdlib parser: the same Address or the same error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailout.address import _parse, check_header_value, parse_address
from mailout.exceptions import InvalidAddressError

_ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
_ALPHABET = "ab.-_+=?@'\"<>, é:;()[]\\" + "x" * 5
words = st.text(st.sampled_from(_ATEXT + " ."), min_size=1, max_size=20)
plain = st.builds(
    lambda local, labels: f"{local}@{'.'.join(labels)}",
    st.text(st.sampled_from(_ATEXT + "."), min_size=1, max_size=70),
    st.lists(st.text(st.sampled_from("ab-_9"), max_size=70), min_size=1, max_size=5),
)
addresses = st.one_of(
    st.text(st.sampled_from(_ALPHABET), max_size=30),
    plain,
    st.builds(lambda name, addr: f"{name} <{addr}>", words, plain),
    st.builds(
        lambda name, addr, sep: f"{name}{sep}<{addr}>",
        words,
        plain,
        st.sampled_from(["", "  ", "\t"]),
    ),
)


def _slow(value: str) -> object:
    """What parse_address did before its fast paths: always the stdlib's header parser."""
    try:
        check_header_value("to", value)
        if not value.strip():
            raise InvalidAddressError("to: empty address")
        return _parse(value, "to")
    except Exception as exc:
        return type(exc)


def _fast(value: str) -> object:
    try:
        return parse_address(value, field="to")
    except Exception as exc:
        return type(exc)


@settings(max_examples=600, deadline=None)
@given(addresses)
def test_fast_paths_agree_with_the_stdlib_parser(value: str) -> None:
    assert _fast(value) == _slow(value)


def test_common_forms() -> None:
    assert _fast("Customer 42 <c42@example.com>") == _slow("Customer 42 <c42@example.com>")
    assert parse_address("Ann Lee <ann@example.com>", field="to").display_name == "Ann Lee"
