"""quick_address() agrees with parse_address() on every input: same Address or same error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailout.address import parse_address
from mailout.wire import quick_address

_ALPHABET = "ab.-_+=?@'\"<> é" + "x" * 5
addresses = st.one_of(
    st.text(st.sampled_from(_ALPHABET), max_size=30),
    st.builds(
        lambda local, labels: f"{local}@{'.'.join(labels)}",
        st.text(st.sampled_from("ab.-+=?_'"), min_size=1, max_size=70),
        st.lists(st.text(st.sampled_from("ab-_"), max_size=70), min_size=1, max_size=5),
    ),
)


def _outcome(func: object, value: str) -> object:
    try:
        return func(value)  # type: ignore[operator]
    except Exception as exc:
        return type(exc)


@settings(max_examples=400, deadline=None)
@given(addresses)
def test_quick_address_agrees(value: str) -> None:
    expected = _outcome(lambda v: parse_address(v, field="to"), value)
    assert _outcome(lambda v: quick_address(v, "to"), value) == expected
