"""The admin's list of queued mail, fast at millions of rows: nothing counts the table.

Django's changelist counts the rows it pages through (``SELECT COUNT(*)``) and, unless told not
to, the whole table as well; on a queue of 10^6 messages each count reads every row. Here the
paginator reads the page asked for plus one row, in one query that walks an index and stops
there: it knows whether a next page exists, never how many pages there are. The list shows
"page N" with previous and next (``templates/admin/mailout/queuedmessage/pagination.html``).
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib import admin  # type: ignore[import-untyped]
from django.contrib.admin.views.main import PAGE_VAR, ChangeList  # type: ignore[import-untyped]
from django.core.paginator import Paginator  # type: ignore[import-untyped]

from mailout.django.conf import django_settings

__all__ = ["MailerFilter", "QueueChangeList", "WindowPaginator", "page_number"]


def page_number(request: Any) -> int:
    """The page the request asks for, as Django's changelist reads it (1-based)."""
    try:
        return max(1, int(request.GET.get(PAGE_VAR, 1)))
    except (TypeError, ValueError):
        return 1


class WindowPaginator(Paginator):  # type: ignore[misc]
    """A paginator that counts nothing: ``count`` is the rows before the page asked for, plus
    the page's own, plus one if another page follows. Those rows are read once, by one
    ``LIMIT per_page + 1 OFFSET ...`` query, and are the page."""

    def __init__(
        self, object_list: Any, per_page: int, *args: Any, number: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.number = number
        self.rows: list[Any] | None = None

    @functools.cached_property
    def count(self) -> int:
        offset = (self.number - 1) * int(self.per_page)
        rows = list(self.object_list[offset : offset + self.per_page + 1])
        self.rows = rows[: self.per_page]
        return offset + len(rows)

    def page(self, number: Any) -> Any:
        number = self.validate_number(number)
        if number == self.number and self.rows is not None:
            return self._get_page(self.rows, number, self)
        return super().page(number)


class QueueChangeList(ChangeList):  # type: ignore[misc]
    """Django's changelist, which, when everything fits on one page, would read those rows a
    second time: it reuses the paginator's."""

    def get_results(self, request: Any) -> None:
        super().get_results(request)
        rows = getattr(self.paginator, "rows", None)
        if not self.multi_page and not self.show_all and rows is not None:
            self.result_list = rows


class MailerFilter(admin.SimpleListFilter):  # type: ignore[misc]
    """By mailer, its choices from the settings (``MAILERS``' aliases, ``EMAIL_QUEUE_MAILER``,
    ``default``), not from a ``SELECT DISTINCT`` over every message; ``?mailer=<name>`` filters
    by any other name too."""

    title = "mailer"
    parameter_name = "mailer"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        holder = django_settings()
        names = {"default", *getattr(holder, "MAILERS", {})}
        configured = getattr(holder, "EMAIL_QUEUE_MAILER", None)
        if configured:
            names.add(str(configured))
        asked = self.value()
        if asked:
            names.add(str(asked))
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: Any, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(mailer=value) if value else queryset
