"""The operator's commands (``mailout queue hold/release/expire/retry``) of the SQL storages.

Both SQL storages run the same named queries for them; each supplies ``_operate`` (its own
transaction, and on PostgreSQL the ``NOTIFY`` that wakes workers).
"""

from __future__ import annotations

import abc

from mailout.queue.models import ALL, Selection

__all__ = ["NamedOperations"]


class NamedOperations(abc.ABC):
    @abc.abstractmethod
    def _operate(self, name: str, kind: str, text: str, selection: Selection, now: float) -> int:
        """Run the named operation ``name`` on ``selection``; its events say ``text``."""

    def hold(self, selection: Selection, *, now: float) -> int:
        return self._operate("hold", "held", "held by an operator", selection, now)

    def unhold(self, selection: Selection, *, now: float) -> int:
        return self._operate("unhold", "released", "released by an operator", selection, now)

    def expire(self, selection: Selection, *, now: float) -> int:
        return self._operate("expire", "expired", "expired by an operator", selection, now)

    def retry(self, selection: Selection, *, now: float, failed_only: bool = False) -> int:
        if failed_only:
            return self._operate("retry_failed", "retried", "retried by an operator", ALL, now)
        return self._operate("retry", "retried", "retried by an operator", selection, now)
