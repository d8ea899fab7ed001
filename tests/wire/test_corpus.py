"""Every message of a fixed corpus of edge cases, rendered by both paths and compared."""

from __future__ import annotations

from collections import Counter

import pytest

from mailout import wire
from mailout.message import EmailMessage
from tests.wire.cases import corpus
from tests.wire.compare import compare

CORPUS = corpus()


@pytest.mark.parametrize(
    ("message", "smtputf8"), [(m, u) for _, m, u in CORPUS], ids=[i for i, _, _ in CORPUS]
)
def test_corpus_message(message: EmailMessage, smtputf8: bool) -> None:
    compare(message, smtputf8=smtputf8)


def test_corpus_mostly_fast() -> None:
    """The corpus is built of edge cases, yet most of it must take the fast path."""
    outcomes = Counter(compare(m, smtputf8=u).kind for _, m, u in CORPUS)
    assert len(CORPUS) >= 300
    assert outcomes["fast"] >= 0.75 * len(CORPUS), outcomes


def test_stats_count_fast_and_fallbacks() -> None:
    wire.stats.reset()
    fast, slow = CORPUS[0][1], {i: m for i, m, _ in CORPUS}["latin1"]
    wire.render(fast)
    wire.render(slow)
    assert (wire.stats.fast, wire.stats.fallbacks) == (1, 1)
    assert wire.stats.reasons == {"charset 'iso-8859-1'": 1}
