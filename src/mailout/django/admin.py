"""The queue in Django's admin: queued mail, filtered and searched, each message's headers and
attempts, and the operator's actions (retry, hold, release, expire, delete), each behind a
permission of its own.

Built for a queue of millions of rows: no count of the table or of the list (see admin_list),
no date hierarchy, the state filter on the queue's own index (a state-filtered list is ordered
by last change, as ``mailout queue list --state`` is), filter choices from the settings rather
than from the rows, search on the message rows (subject, recipients; a number: that id), never
on the bodies. The actions change mail through mailout's own queries (admin_ops), never with
an ORM ``update()``. Shown when the queue lives in a Django database (``EMAIL_QUEUE_URL =
"django"`` or ``"django:<alias>"``); its rows are read from that database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.contrib import admin, messages  # type: ignore[import-untyped]
from django.db.models import Q  # type: ignore[import-untyped]
from django.utils.text import smart_split, unescape_string_literal  # type: ignore[import-untyped]

from mailout.django import admin_ops
from mailout.django.admin_detail import attempts_table, headers_table
from mailout.django.admin_list import MailerFilter, QueueChangeList, WindowPaginator, page_number
from mailout.django.models import QueuedMessage, QueueWorker, timestamp
from mailout.exceptions import ImproperlyConfigured

__all__ = ["QueueWorkerAdmin", "QueuedMessageAdmin"]


_F = TypeVar("_F", bound=Callable[..., Any])


def display(**options: Any) -> Callable[[_F], _F]:
    """``admin.display``, typed."""
    return cast(Callable[[_F], _F], admin.display(**options))


def action(**options: Any) -> Callable[[_F], _F]:
    """``admin.action``, typed."""
    return cast(Callable[[_F], _F], admin.action(**options))


def _queue_database() -> str | None:
    try:
        return admin_ops.queue_database()
    except ImproperlyConfigured:
        return None


class _QueueTableAdmin(admin.ModelAdmin):  # type: ignore[misc]
    """Read-only, from the queue's database; hidden when the queue is not in one."""

    def get_queryset(self, request: Any) -> Any:
        return super().get_queryset(request).using(admin_ops.queue_database())

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return _queue_database() is not None and bool(super().has_view_permission(request, obj))

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return _queue_database() is not None and bool(super().has_delete_permission(request, obj))

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(QueuedMessage)
class QueuedMessageAdmin(_QueueTableAdmin):
    list_display = ("id", "state", "mailer", "priority", "subject", "to", "attempts", "changed")
    list_display_links = ("id", "subject")
    list_filter = ("state", MailerFilter, "priority")
    search_fields = ("subject", "recipients")
    search_help_text = "Subject or recipient (part of it), or a message's id."
    sortable_by = ()  # sorting by a column would sort the whole table
    list_per_page = 100
    list_max_show_all = 100  # "show all" only when everything fits on one page anyway
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions_selection_counter = False  # no "select all N" across pages: N is not counted
    actions = ("retry_messages", "hold_messages", "release_messages", "expire_messages")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "state",
                    "mailer",
                    "priority",
                    "subject",
                    "message_id",
                    "idempotency_key",
                    "size",
                )
            },
        ),
        ("Envelope", {"fields": ("sender", "recipient_list", "pending_list", "domain")}),
        (
            "Delivery",
            {
                "fields": (
                    "attempts",
                    "delivered",
                    "last_reply",
                    "reason",
                    "created",
                    "queued",
                    "due",
                    "changed",
                    "lease",
                    "user_metadata",
                )
            },
        ),
        ("Header fields", {"fields": ("headers",)}),
        ("Attempts and operations", {"fields": ("attempt_list",)}),
    )
    readonly_fields = (
        "recipient_list",
        "pending_list",
        "created",
        "queued",
        "due",
        "changed",
        "lease",
        "user_metadata",
        "headers",
        "attempt_list",
    )

    # -- the list ---------------------------------------------------------------------------

    def get_ordering(self, request: Any) -> tuple[str, ...]:
        # Filtered by state: the (state, updated_at) index gives the rows in order, and a
        # LIMIT stops early. Otherwise the primary key, newest first.
        if request.GET.get("state__exact"):
            return ("-updated_at",)
        return ("-id",)

    def get_paginator(
        self,
        request: Any,
        queryset: Any,
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> WindowPaginator:
        return WindowPaginator(
            queryset, per_page, orphans, allow_empty_first_page, number=page_number(request)
        )

    def get_changelist(self, request: Any, **kwargs: Any) -> type[QueueChangeList]:
        return QueueChangeList

    def get_search_results(self, request: Any, queryset: Any, search_term: str) -> Any:
        term = search_term.strip()
        if term.lstrip("#").isdigit():
            return queryset.filter(pk=int(term.lstrip("#"))), False
        # Each word (or "quoted phrase") in the subject or in a recipient's address. The
        # recipients are stored as JSON, non-ASCII as \u escapes: searched both ways.
        for word in smart_split(term):
            if len(word) > 1 and word[0] == word[-1] and word[0] in "\"'":
                word = unescape_string_literal(word)
            if not word:
                continue
            found = Q(subject__icontains=word) | Q(recipients__icontains=word)
            escaped = json.dumps(word)[1:-1]
            if escaped != word:
                found |= Q(recipients__icontains=escaped)
            queryset = queryset.filter(found)
        return queryset, False

    @display(description="to")
    def to(self, obj: QueuedMessage) -> str:
        recipients = obj.recipient_list()
        more = f" (+{len(recipients) - 1})" if len(recipients) > 1 else ""
        return (recipients[0] if recipients else "") + more

    @display(description="changed")
    def changed(self, obj: QueuedMessage) -> Any:
        return timestamp(obj.updated_at)

    # -- one message ------------------------------------------------------------------------

    def change_view(
        self, request: Any, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        # The actions this user may run, as buttons on the page (delete has Django's link).
        # (Django 6.1 gives each as an Action with attributes; 5.2 as a tuple.)
        actions = [
            (name, action.description if hasattr(action, "description") else action[2])
            for name, action in self.get_actions(request).items()
            if name != "delete_selected"
        ]
        extra = {**(extra_context or {}), "mailout_actions": actions}
        return super().change_view(request, object_id, form_url, extra_context=extra)

    @display(description="recipients")
    def recipient_list(self, obj: QueuedMessage) -> str:
        return ", ".join(obj.recipient_list())

    @display(description="not delivered yet")
    def pending_list(self, obj: QueuedMessage) -> str:
        return ", ".join(obj.pending_list())

    @display(description="created")
    def created(self, obj: QueuedMessage) -> Any:
        return timestamp(obj.created_at)

    @display(description="queued (its lifetime starts)")
    def queued(self, obj: QueuedMessage) -> Any:
        return timestamp(obj.queued_at)

    @display(description="due")
    def due(self, obj: QueuedMessage) -> Any:
        return timestamp(obj.due_at)

    @display(description="lease")
    def lease(self, obj: QueuedMessage) -> str:
        if not obj.lease_owner:
            return ""
        until = timestamp(obj.lease_until)
        shown = until.isoformat(sep=" ", timespec="seconds") if until else "?"
        return f"{obj.lease_owner} until {shown}"

    @display(description="metadata")
    def user_metadata(self, obj: QueuedMessage) -> str:
        return json.dumps(obj.user_metadata(), ensure_ascii=False, sort_keys=True)

    @display(description="header fields (decoded)")
    def headers(self, obj: QueuedMessage) -> Any:
        return headers_table(obj.pk, obj._state.db)

    @display(description="per recipient: code, enhanced status, reply, relay id")
    def attempt_list(self, obj: QueuedMessage) -> Any:
        return attempts_table(obj.pk, obj._state.db)

    # -- actions: mailout's operations, each its own permission -------------------------------

    def _has(self, request: Any, action: str) -> bool:
        return bool(request.user.has_perm(f"{self.opts.app_label}.{action}_queuedmessage"))

    def has_retry_permission(self, request: Any) -> bool:
        return self._has(request, "retry")

    def has_hold_permission(self, request: Any) -> bool:
        return self._has(request, "hold")

    def has_release_permission(self, request: Any) -> bool:
        return self._has(request, "release")

    def has_expire_permission(self, request: Any) -> bool:
        return self._has(request, "expire")

    def _operate(self, request: Any, queryset: Any, operation: str, applies_to: str) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        who = f"{request.user.get_username()} in Django's admin"
        done = admin_ops.operate(operation, ids, using=queryset.db, who=who)
        kind = admin_ops.OPERATIONS[operation][1]
        text = f"{done} of {len(ids)} selected messages {kind}."
        if done < len(ids):
            text += f" The others were not {applies_to}."
        self.message_user(request, text, messages.SUCCESS if done else messages.WARNING)

    @action(description="Retry (deferred: due now; failed: queued again)", permissions=["retry"])
    def retry_messages(self, request: Any, queryset: Any) -> None:
        self._operate(request, queryset, "retry", "deferred or failed")

    @action(description="Hold (put aside until released)", permissions=["hold"])
    def hold_messages(self, request: Any, queryset: Any) -> None:
        self._operate(request, queryset, "hold", "queued or deferred")

    @action(description="Release held mail", permissions=["release"])
    def release_messages(self, request: Any, queryset: Any) -> None:
        self._operate(request, queryset, "release", "held")

    @action(description="Expire (fail now, as expired)", permissions=["expire"])
    def expire_messages(self, request: Any, queryset: Any) -> None:
        self._operate(request, queryset, "expire", "queued, deferred or held")

    # Django's delete (the "delete selected" action and a message's delete page) goes
    # through mailout's delete, which leaves mail a worker is sending alone.

    def delete_model(self, request: Any, obj: QueuedMessage) -> None:
        self._delete(request, [obj.pk], obj._state.db)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        self._delete(request, list(queryset.values_list("pk", flat=True)), queryset.db)

    def _delete(self, request: Any, ids: list[int], using: str) -> None:
        deleted = admin_ops.delete(ids, using=using)
        if deleted < len(ids):
            self.message_user(
                request,
                f"{len(ids) - deleted} of the messages were being sent and were not deleted.",
                messages.WARNING,
            )


@admin.register(QueueWorker)
class QueueWorkerAdmin(_QueueTableAdmin):
    list_display = (
        "id",
        "host",
        "pid",
        "started",
        "seen",
        "in_flight",
        "sent",
        "deferred",
        "failed",
    )
    sortable_by = ()
    ordering = ("started_at",)

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @display(description="started")
    def started(self, obj: QueueWorker) -> Any:
        return timestamp(obj.started_at)

    @display(description="last heartbeat")
    def seen(self, obj: QueueWorker) -> Any:
        return timestamp(obj.seen_at)
