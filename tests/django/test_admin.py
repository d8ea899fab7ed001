"""The queue in Django's admin, through Django's test client, on SQLite and on PostgreSQL: the
list (its queries: few, constant, never a count), filters, search, a message's page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from mailout.queue.models import Priority, State
from tests.django.admin_support import CHANGELIST, Queue, admin_queue, staff
from tests.django.queue_db import VENDORS


@pytest.fixture(scope="module", params=VENDORS)
def queue_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Queue]:
    with admin_queue(request.param, Path(tmp_path_factory.mktemp("admin"))) as queue:
        yield queue


@pytest.fixture
def queue(queue_db: Queue) -> Iterator[Queue]:
    queue_db.clear()
    with override_settings(EMAIL_QUEUE_URL=f"django:{queue_db.alias}"):
        yield queue_db


@pytest.fixture
def viewer() -> Client:
    client = Client()
    client.force_login(staff("viewer", "view_queuedmessage"))
    return client


def subjects(html: str) -> list[str]:
    """The subjects in the list's rows, in order."""
    return re.findall(r'<td class="field-subject">(?:<a [^>]*>)?([^<]*)', html)


def test_the_list_shows_the_newest_first(queue: Queue, viewer: Client) -> None:
    for subject in ("first", "second", "third"):
        queue.put(subject)
    response = viewer.get(CHANGELIST)
    assert response.status_code == 200
    assert subjects(response.text) == ["third", "second", "first"]
    assert "3 on this page" in response.text


def _changelist_queries(queue: Queue, client: Client, url: str) -> list[str]:
    with (
        CaptureQueriesContext(connections[queue.alias]) as on_queue,
        CaptureQueriesContext(connections["default"]) as on_default,
    ):
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in on_queue.captured_queries + on_default.captured_queries]


@pytest.mark.parametrize("url", ["", "?state__exact=queued", "?mailer=default", "?q=Bulk+7"])
def test_the_list_runs_the_same_few_queries_at_any_size_and_never_counts(
    queue: Queue, viewer: Client, url: str
) -> None:
    queue.put_many(3)
    small = _changelist_queries(queue, viewer, CHANGELIST + url)
    queue.put_many(400)
    big = _changelist_queries(queue, viewer, CHANGELIST + url)
    assert len(small) == len(big)
    assert len(big) <= 4, big  # the user, their permissions and groups, one page of mail
    for sql in small + big:
        assert "COUNT(" not in sql.upper(), sql
    [page] = [sql for sql in big if "mailout_queue_message" in sql]
    assert re.search(r"LIMIT 101\b", page), page


def test_pages_follow_each_other(queue: Queue, viewer: Client) -> None:
    queue.put_many(250)
    first = viewer.get(CHANGELIST)
    assert len(subjects(first.text)) == 100
    assert "page 1" in first.text
    assert 'href="?p=2"' in first.text
    third = viewer.get(CHANGELIST + "?p=3")
    assert subjects(third.text) == [f"Bulk {i}" for i in range(49, -1, -1)]
    assert "50 on this page (page 3)" in third.text
    assert 'href="?p=4"' not in third.text
    assert viewer.get(CHANGELIST + "?p=4").status_code == 302  # past the end: Django's "?e=1"


def test_filters_by_state_mailer_and_priority(queue: Queue, viewer: Client) -> None:
    queue.in_state(State.FAILED, "failed one")
    queue.in_state(State.DEFERRED, "deferred one")
    queue.in_state(State.HELD, "held one")
    queue.put("queued urgent", priority=Priority.HIGH, mailer="bulk")
    queue.in_state(State.FAILED, "failed two")

    def listed(query: str) -> list[str]:
        response = viewer.get(CHANGELIST + query)
        assert response.status_code == 200
        return subjects(response.text)

    # By state: most recently changed first, as `mailout queue list --state` lists.
    assert listed("?state__exact=failed") == ["failed two", "failed one"]
    assert listed("?state__exact=held") == ["held one"]
    assert listed("?mailer=bulk") == ["queued urgent"]
    assert listed(f"?priority__exact={int(Priority.HIGH)}") == ["queued urgent"]
    assert listed("?state__exact=queued&mailer=default") == []
    # The mailer filter offers the settings' mailers, read without a query.
    page = viewer.get(CHANGELIST).text
    assert "?mailer=default" in page


def test_search_by_subject_recipient_or_id(queue: Queue, viewer: Client) -> None:
    invoice = queue.put("Invoice 1001", to=["bo@example.org"])
    queue.put("Welcome", to=["ana@example.com", "cy@example.net"])

    def found(term: str) -> list[str]:
        return subjects(viewer.get(CHANGELIST, {"q": term}).text)

    assert found("invoice") == ["Invoice 1001"]
    assert found("cy@example") == ["Welcome"]
    assert found("example.org") == ["Invoice 1001"]
    assert found(str(invoice)) == ["Invoice 1001"]
    assert found(f"#{invoice}") == ["Invoice 1001"]
    assert found("nothing like it") == []
    assert found("welcome ana@") == ["Welcome"]  # every word, anywhere
    assert found('"invoice 1001"') == ["Invoice 1001"]


def test_search_finds_non_ascii_recipients_and_subjects(queue: Queue, viewer: Client) -> None:
    queue.put("Grüße aus Köln", to=["jörg@exämple.de"])
    queue.put("Other", to=["ana@example.com"])

    def found(term: str) -> list[str]:
        return subjects(viewer.get(CHANGELIST, {"q": term}).text)

    assert found("jörg@") == ["Grüße aus Köln"]
    assert found("Köln") == ["Grüße aus Köln"]


def test_what_a_message_says_is_shown_escaped(queue: Queue, viewer: Client) -> None:
    id = queue.put("<script>alert(1)</script>", to=["ana@example.com"])
    listing = viewer.get(CHANGELIST).text
    page = viewer.get(f"{CHANGELIST}{id}/change/").text
    for html in (listing, page):
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_message_page_shows_headers_envelope_and_each_attempt(
    queue: Queue, viewer: Client
) -> None:
    id = queue.put("Rechnung für März", to=["ana@example.com", "bo@example.org"])
    from mailout.queue.models import RecipientResult

    queue.attempt(
        id,
        State.DEFERRED,
        RecipientResult("ana@example.com", "sent", 250, "2.0.0", "queued as 4Xyz", "4Xyz"),
        RecipientResult("bo@example.org", "deferred", 451, "4.7.1", "greylisted, try later"),
    )
    response = viewer.get(f"{CHANGELIST}{id}/change/")
    assert response.status_code == 200
    page = response.text
    # The header fields, decoded (the subject went out as RFC 2047 words).
    assert "Rechnung für März" in page
    assert "<th>X-Order</th><td>1001</td>" in page
    assert "=?utf-8?" not in page
    # The envelope and the state.
    assert "ana@example.com, bo@example.org" in page  # recipients
    assert re.search(r"not delivered yet.*?bo@example.org", page, re.S | re.I)
    assert "deferred" in page
    # Each recipient's reply in this attempt.
    assert re.search(
        r"<td>1</td><td>sent</td><td>ana@example.com</td><td>250</td>"
        r"<td>2.0.0</td><td>queued as 4Xyz</td><td>4Xyz</td>",
        page,
    ), page
    assert re.search(
        r"<td>bo@example.org</td><td>451</td><td>4.7.1</td>"
        r"<td>greylisted, try later</td>",
        page,
    )
    # Read-only: no form to save, no add.
    assert 'name="_save"' not in page
    assert viewer.get(f"{CHANGELIST}add/").status_code == 403


def test_the_page_of_a_sent_message_whose_bytes_were_dropped(queue: Queue, viewer: Client) -> None:
    id = queue.in_state(State.SENT)
    with connections[queue.alias].cursor() as cursor:
        cursor.execute("DELETE FROM mailout_queue_body WHERE message = %s", [id])
    page = viewer.get(f"{CHANGELIST}{id}/change/").text
    assert "the message&#x27;s bytes were dropped after sending" in page


def test_without_the_view_permission_nothing_is_shown(queue: Queue) -> None:
    queue.put()
    client = Client()
    client.force_login(staff("nobody"))
    assert client.get(CHANGELIST).status_code == 403
    assert "queuedmessage" not in client.get("/admin/").text


def test_not_shown_when_the_queue_is_not_in_a_django_database(queue: Queue, viewer: Client) -> None:
    with override_settings(EMAIL_QUEUE_URL="sqlite:///elsewhere.db"):
        assert viewer.get(CHANGELIST).status_code == 403


def test_the_workers_list_shows_each_live_worker(queue: Queue) -> None:
    import time

    from mailout.queue.models import WorkerInfo

    now = time.time()
    info = WorkerInfo("w-admin", "mail1.example.net", 4242, now - 60, now, 3, 120, 4, 1)
    queue.storage.heartbeat(info, lease=60, now=now)
    try:
        client = Client()
        client.force_login(staff("watcher", "view_queueworker"))
        page = client.get("/admin/mailout/queueworker/")
        assert page.status_code == 200
        row = re.search(r"<tr>.*?w-admin.*?</tr>", page.text, re.S)
        assert row, page.text
        cells = re.findall(r'<td class="field-(\w+)">([^<]*)', row.group(0))
        shown = dict(cells)
        assert shown["host"] == "mail1.example.net"
        assert (shown["pid"], shown["in_flight"], shown["sent"]) == ("4242", "3", "120")
        assert (shown["deferred"], shown["failed"]) == ("4", "1")
        assert client.get("/admin/mailout/queueworker/add/").status_code == 403
        assert 'name="action"' not in page.text  # nothing to do to a worker from here
    finally:
        queue.storage.unregister("w-admin")


def test_the_models_match_their_migration() -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("makemigrations", "mailout", check=True, dry_run=True, stdout=out)
    assert "No changes detected" in out.getvalue()
