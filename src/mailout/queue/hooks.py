"""Application hooks around each delivery: ``pre_send``, then sent/deferred/failed/expired.

* ``pre_send(message) -> message | None`` runs in the worker before a message is sent. It may
  return the message unchanged, a changed copy (``dataclasses.replace(message, recipients=...)``
  to drop suppressed addresses, or other ``data``), or ``None`` to cancel it (it fails, as
  ``cancelled``). Recipients it drops fail as suppressed. If it raises, the message is
  deferred (a suppression list that cannot be read must not let mail through).
* ``sent``, ``deferred``, ``failed``, ``expired`` get a ``Report`` (the message, and the
  outcome with every recipient's reply) after the outcome is committed to the store.

An exception in a hook is logged with its traceback and never stops the worker.
Configure them with ``EMAIL_QUEUE_HOOKS = {"pre_send": ["myapp.mail.suppress"], ...}`` or
pass ``Hooks(...)`` to a ``Worker``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailout.conf import settings
from mailout.queue.models import ClaimedMessage, Report
from mailout.utils import import_string

__all__ = ["Hooks", "PreSend", "ReportHook"]

log = logging.getLogger("mailout.queue")

PreSend = Callable[[ClaimedMessage], ClaimedMessage | None]
ReportHook = Callable[[Report], object]


@dataclass(frozen=True, slots=True)
class Hooks:
    pre_send: Sequence[PreSend] = ()
    sent: Sequence[ReportHook] = ()
    deferred: Sequence[ReportHook] = ()
    failed: Sequence[ReportHook] = ()
    expired: Sequence[ReportHook] = ()

    @classmethod
    def from_settings(cls) -> Hooks:
        """The dotted paths of ``EMAIL_QUEUE_HOOKS``, imported now (a typo fails at start)."""
        configured = settings.EMAIL_QUEUE_HOOKS
        return cls(
            **{
                event: tuple(
                    import_string(path, setting=f"EMAIL_QUEUE_HOOKS[{event!r}]") for path in paths
                )
                for event, paths in configured.items()
            }
        )

    def before(self, message: ClaimedMessage) -> ClaimedMessage | None:
        """Run every pre_send hook in turn; None as soon as one cancels. Raises what one raises."""
        current: ClaimedMessage | None = message
        for hook in self.pre_send:
            if current is None:
                break
            current = hook(current)
            if current is not None and not isinstance(current, ClaimedMessage):
                raise TypeError(
                    f"pre_send hook {_name(hook)} returned {type(current).__name__}; "
                    "return the message, a changed copy, or None"
                )
        return current

    def after(self, reports: Sequence[Report]) -> None:
        """Fire sent/deferred/failed/expired hooks; log and swallow what they raise."""
        for report in reports:
            for hook in getattr(self, report.outcome.event, ()):
                try:
                    hook(report)
                except Exception:
                    log.exception(
                        "%s hook %s raised for message %d; the worker goes on",
                        report.outcome.event,
                        _name(hook),
                        report.id,
                    )

    def __bool__(self) -> bool:
        return any((self.pre_send, self.sent, self.deferred, self.failed, self.expired))


def _name(hook: object) -> str:
    return f"{getattr(hook, '__module__', '?')}.{getattr(hook, '__qualname__', repr(hook))}"
