"""The shorter thread switch interval while a pool encodes and sends: set, shared, set back."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from mailout.smtp._switching import SWITCH_INTERVAL, quick_switches


@pytest.fixture(autouse=True)
def default_interval() -> Iterator[None]:
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(saved)


def test_shortened_while_a_send_runs_and_set_back_after() -> None:
    with quick_switches():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_nested_sends_set_it_back_once_the_last_is_done() -> None:
    with quick_switches():
        with quick_switches():
            assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_never_lengthened() -> None:
    sys.setswitchinterval(0.0001)
    with quick_switches():
        assert sys.getswitchinterval() == pytest.approx(0.0001)
    assert sys.getswitchinterval() == pytest.approx(0.0001)


def test_a_change_made_meanwhile_is_kept() -> None:
    with quick_switches():
        sys.setswitchinterval(0.002)  # the application's own choice
    assert sys.getswitchinterval() == pytest.approx(0.002)


def test_set_back_after_an_error() -> None:
    with pytest.raises(RuntimeError), quick_switches():
        raise RuntimeError("send failed")
    assert sys.getswitchinterval() == pytest.approx(0.005)
