"""The admin's actions on queued mail, on SQLite and on PostgreSQL: each changes what mailout's
own operation changes, leaves mail a worker holds alone, and needs its permission."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client, override_settings

from mailout.queue.models import State
from tests.django.admin_support import CHANGELIST, Queue, admin_queue, staff
from tests.django.queue_db import VENDORS


@pytest.fixture(scope="module", params=VENDORS)
def queue_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Queue]:
    with admin_queue(request.param, Path(tmp_path_factory.mktemp("actions"))) as queue:
        yield queue


@pytest.fixture
def queue(queue_db: Queue) -> Iterator[Queue]:
    queue_db.clear()
    with override_settings(EMAIL_QUEUE_URL=f"django:{queue_db.alias}"):
        yield queue_db


def logged_in(username: str, *codenames: str) -> Client:
    client = Client()
    client.force_login(staff(username, "view_queuedmessage", *codenames))
    return client


def act(client: Client, action: str, *ids: int) -> str:
    response = client.post(
        CHANGELIST, {"action": action, "_selected_action": [str(i) for i in ids]}, follow=True
    )
    assert response.status_code == 200
    return response.text


def offered(client: Client) -> set[str]:
    return set(re.findall(r'<option value="(\w+)"', client.get(CHANGELIST).text)) - {""}


def events(queue: Queue, id: int) -> list[tuple[str, str]]:
    with connections[queue.alias].cursor() as cursor:
        cursor.execute(
            "SELECT kind, text FROM mailout_queue_event WHERE message = %s ORDER BY id", [id]
        )
        return [(str(k), str(t)) for k, t in cursor.fetchall()]


# action, its permission, the state it acts on, the state it leaves, a state it leaves alone
CASES = [
    ("retry_messages", "retry_queuedmessage", State.FAILED, "deferred", State.HELD),
    ("retry_messages", "retry_queuedmessage", State.DEFERRED, "deferred", State.QUEUED),
    ("hold_messages", "hold_queuedmessage", State.DEFERRED, "held", State.FAILED),
    ("release_messages", "release_queuedmessage", State.HELD, "queued", State.DEFERRED),
    ("expire_messages", "expire_queuedmessage", State.QUEUED, "failed", State.SENT),
]


@pytest.mark.parametrize(("action", "perm", "before", "after", "untouched"), CASES)
def test_an_action_does_what_mailouts_operation_does(
    queue: Queue, action: str, perm: str, before: State, after: str, untouched: State
) -> None:
    target = queue.in_state(before, "target")
    other = queue.in_state(untouched, "other")
    leased = queue.in_state(State.SENDING, "leased")  # a worker holds it: never touched
    client = logged_in("operator", perm)
    assert action in offered(client)
    page = act(client, action, target, other, leased)
    assert "1 of 3 selected messages" in page
    assert queue.state(target) == after
    assert queue.state(other) == str(untouched)
    assert queue.state(leased) == "sending"
    kind, text = events(queue, target)[-1]
    assert text.endswith("by operator in Django's admin")
    assert kind in ("retried", "held", "released", "expired")


@pytest.mark.parametrize(("action", "perm", "before", "after", "untouched"), CASES)
def test_an_action_needs_its_permission(
    queue: Queue, action: str, perm: str, before: State, after: str, untouched: State
) -> None:
    target = queue.in_state(before, "target")
    others = sorted({p for _, p, *_ in CASES if p != perm} | {"delete_queuedmessage"})
    client = logged_in("other-operator", *others)
    assert action not in offered(client)
    act(client, action, target)
    assert queue.state(target) == str(before)
    assert not any("admin" in text for _, text in events(queue, target))


def test_a_retried_failed_message_is_due_now_with_a_new_lifetime(queue: Queue) -> None:
    id = queue.in_state(State.FAILED)
    act(logged_in("operator", "retry_queuedmessage"), "retry_messages", id)
    with connections[queue.alias].cursor() as cursor:
        cursor.execute(
            "SELECT state, due_at, queued_at, reason FROM mailout_queue_message WHERE id = %s",
            [id],
        )
        state, due_at, queued_at, reason = cursor.fetchone()
    assert state == "deferred"  # attempted once before: a retry, as the worker sees it
    assert due_at == queued_at
    assert reason is None
    assert abs(due_at - time.time()) < 60  # due now


def test_delete_selected_goes_through_mailouts_delete(queue: Queue) -> None:
    done = queue.in_state(State.SENT, "done")
    leased = queue.in_state(State.SENDING, "leased")
    client = logged_in("janitor", "delete_queuedmessage")
    assert "delete_selected" in offered(client)
    confirm = client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [done, leased]}
    )
    assert confirm.status_code == 200
    assert "Are you sure" in confirm.text
    page = client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [done, leased], "post": "yes"},
        follow=True,
    ).text
    assert "1 of the messages were being sent and were not deleted." in page
    assert queue.state(done) is None
    assert events(queue, done) == []
    with connections[queue.alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM mailout_queue_body WHERE message = %s", [done])
        assert cursor.fetchone()[0] == 0
    assert queue.state(leased) == "sending"


def test_a_message_page_deletes_it_with_the_delete_permission_only(queue: Queue) -> None:
    id = queue.in_state(State.FAILED)
    url = f"{CHANGELIST}{id}/delete/"
    viewer = logged_in("viewer")
    assert "delete_selected" not in offered(viewer)
    assert viewer.post(url, {"post": "yes"}).status_code == 403
    assert queue.state(id) == "failed"
    janitor = logged_in("janitor", "delete_queuedmessage")
    assert janitor.post(url, {"post": "yes"}).status_code == 302
    assert queue.state(id) is None


def test_a_staff_user_without_any_permission_gets_403(queue: Queue) -> None:
    id = queue.in_state(State.DEFERRED)
    client = Client()
    client.force_login(staff("stranger"))
    response = client.post(CHANGELIST, {"action": "hold_messages", "_selected_action": [id]})
    assert response.status_code == 403
    assert queue.state(id) == "deferred"


def test_a_message_page_offers_the_actions_the_user_may_run(queue: Queue) -> None:
    id = queue.in_state(State.DEFERRED)
    page = f"{CHANGELIST}{id}/change/"
    viewer = logged_in("viewer")
    assert 'name="action"' not in viewer.get(page).text
    operator = logged_in("operator", "hold_queuedmessage")
    html = operator.get(page).text
    buttons = re.findall(r'<input type="hidden" name="action" value="(\w+)">', html)
    assert buttons == ["hold_messages"]
    assert f'name="_selected_action" value="{id}"' in html
    act(operator, "hold_messages", id)
    assert queue.state(id) == "held"
