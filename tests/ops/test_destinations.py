"""Destinations against a real HTTP receiver on 127.0.0.1 (tests/ops/conftest.py): the
Standard Webhooks signature checked with the test's own HMAC, one webhook-id per POST on
every retry, retries and the final failure, Replay, event-name filters, disabled
destinations, batches of 100 in request order, two organizations, nothing for dry runs
or initData loads, and two workers never sending one delivery at once (PostgreSQL)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from ingestion.destinations import (
    deliveries_plan,
    deliveries_replay,
    destination_create,
    destination_routes,
    destination_update,
    destinations_deliver_due,
)
from ingestion.models import CallbackStatus, DestinationDelivery
from journeys.events import EventRow
from tests.conftest import tenant_create
from tests.ops.conftest import INGEST_URL

EVENTS_URL = "/dhub-i/api/v1.0/user-events"


def events_ingest(client, tenant, token, entries: list[dict[str, Any]], **query: str) -> Any:
    body = {"objectType": "user-event", "source": "CRM", "entries": entries}
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    response = client.post(
        INGEST_URL + suffix,
        data=json.dumps(body),
        content_type="application/json",
        headers={"TOKEN": token, "API_KEY": tenant.raw_key},
    )
    assert response.status_code == 200, response.content
    return response.json()


def event(source_id: str, name: str = "purchase") -> dict[str, Any]:
    return {
        "source": "PurchaseOrder",
        "sourceId": source_id,
        "channel": "Online",
        "eventCtg": "Transaction",
        "eventName": name,
        "eventAt": 1_700_000_000_000,
    }


def deliver(**kwargs: Any) -> None:
    """Every due delivery, as the worker's task drains them."""
    while destinations_deliver_due(**kwargs).claimed:
        pass


def expected_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def rows(tenant) -> list[DestinationDelivery]:
    return list(DestinationDelivery.objects.filter(organization=tenant.organization).order_by("pk"))


def test_a_delivery_is_signed_and_carries_the_events_as_the_read_api_lists_them(
    client, tenant_a, token_a, callback_server
):
    destination, secret = destination_create(
        organization=tenant_a.organization, name="Journeys", url=callback_server.url
    )
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    events_ingest(client, tenant_a, token_a, [event("PO-1"), event("PO-2", "refund")])

    deliver()

    (received,) = callback_server.received
    headers = {k.lower(): v for k, v in received.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == rows(tenant_a)[0].webhook_id
    assert headers["webhook-signature"] == expected_signature(
        secret, headers["webhook-id"], headers["webhook-timestamp"], received.body
    )
    listed = client.get(EVENTS_URL, headers={"TOKEN": token_a, "API_KEY": tenant_a.raw_key}).json()[
        "events"
    ]
    by_source = {e["sourceId"]: e for e in listed}
    assert received.json == {
        "type": "user-events",
        "events": [by_source["PO-1"], by_source["PO-2"]],
    }
    (row,) = rows(tenant_a)
    assert (row.status, row.attempts, row.destination_id) == ("delivered", 1, destination.pk)


def test_a_500_then_a_200_is_delivered_once_with_one_webhook_id(
    client, tenant_a, token_a, callback_server
):
    destination_create(organization=tenant_a.organization, name="J", url=callback_server.url)
    events_ingest(client, tenant_a, token_a, [event("PO-1")])
    callback_server.statuses = [500]

    deliver()
    (row,) = rows(tenant_a)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=50)

    deliver(now=row.next_attempt_at + timedelta(seconds=1))

    ids = [r.headers["webhook-id"] for r in callback_server.received]
    assert len(ids) == 2 and ids[0] == ids[1] == row.webhook_id
    assert callback_server.received[0].json == callback_server.received[1].json
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("delivered", 2)


def test_the_last_failed_attempt_fails_the_delivery_and_replay_sends_it_again(
    client, tenant_a, token_a, callback_server, settings
):
    settings.CDP_CALLBACK_MAX_ATTEMPTS = 2
    destination, _ = destination_create(
        organization=tenant_a.organization, name="J", url=callback_server.url
    )
    events_ingest(client, tenant_a, token_a, [event("PO-1")])
    callback_server.statuses = [503, 503]
    deliver()
    deliver(now=timezone.now() + timedelta(hours=7))
    (row,) = rows(tenant_a)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 2, 503)
    assert row.last_error == "HTTP 503: partner is down"

    assert (
        deliveries_replay(
            organization=tenant_a.organization, destination=destination, delivery_ids=None
        )
        == 1
    )
    deliver()

    row.refresh_from_db()
    assert (row.status, row.attempts) == ("delivered", 1)
    assert len(callback_server.received) == 3
    assert len({r.headers["webhook-id"] for r in callback_server.received}) == 1


def test_event_name_filters_and_disabled_destinations(client, tenant_a, token_a, callback_server):
    purchases, _ = destination_create(
        organization=tenant_a.organization,
        name="Purchases",
        url=callback_server.url,
        events=["purchase"],
    )
    off, _ = destination_create(
        organization=tenant_a.organization, name="Off", url=callback_server.url, enabled=False
    )
    events_ingest(client, tenant_a, token_a, [event("PO-1"), event("PO-2", "refund")])

    (row,) = rows(tenant_a)  # nothing queued for the disabled one
    assert (row.destination_id, len(row.event_ids)) == (purchases.pk, 1)
    deliver()
    assert [e["eventName"] for e in callback_server.received[0].json["events"]] == ["purchase"]

    # Disabling pauses what is queued; enabling resumes it.
    destination_update(destination=purchases, enabled=False)
    destination_update(destination=off, enabled=True)
    events_ingest(client, tenant_a, token_a, [event("PO-3")])
    paused = [r for r in rows(tenant_a) if r.status == "pending"]
    assert [r.destination_id for r in paused] == [off.pk]
    DestinationDelivery.objects.filter(pk=paused[0].pk).update(destination=purchases)
    deliver()
    assert len(callback_server.received) == 1
    destination_update(destination=purchases, enabled=True)
    deliver()
    assert len(callback_server.received) == 2


def test_a_request_of_50_events_is_one_post_in_request_order(
    client, tenant_a, token_a, callback_server
):
    destination_create(organization=tenant_a.organization, name="J", url=callback_server.url)
    sources = [f"PO-{n:02d}" for n in range(50)][::-1]
    events_ingest(client, tenant_a, token_a, [event(s) for s in sources])

    deliver()

    (received,) = callback_server.received
    assert [e["sourceId"] for e in received.json["events"]] == sources


def test_250_events_make_three_posts_of_100_100_and_50_in_order():
    def row(n: int) -> EventRow:
        return EventRow(f"E-{n}", "web", f"S-{n}", "Created", "purchase", 0)

    routes = [type("Route", (), {"destination_id": 7, "takes": lambda self, name: True})()]
    planned = deliveries_plan(routes, [row(n) for n in range(250)])

    assert [len(p["event_ids"]) for p in planned] == [100, 100, 50]
    assert [i for p in planned for i in p["event_ids"]] == [f"E-{n}" for n in range(250)]
    assert len({p["webhook_id"] for p in planned}) == 3


def test_two_organizations_get_their_own_events_only(
    client, tenant_a, token_a, tenant_b, token_b, callback_server
):
    for tenant in (tenant_a, tenant_b):
        destination_create(
            organization=tenant.organization,
            name="J",
            url=f"{callback_server.url}&t={tenant.organization.pk}",
        )
    events_ingest(client, tenant_a, token_a, [event("A-1")])
    events_ingest(client, tenant_b, token_b, [event("B-1"), event("B-2")])

    deliver()

    by_path = {r.path: [e["sourceId"] for e in r.json["events"]] for r in callback_server.received}
    assert by_path == {
        f"/cdp-callback?partner=acme&t={tenant_a.organization.pk}": ["A-1"],
        f"/cdp-callback?partner=acme&t={tenant_b.organization.pk}": ["B-1", "B-2"],
    }


def test_dry_runs_and_init_data_loads_queue_nothing(client, tenant_a, token_a, callback_server):
    destination_create(organization=tenant_a.organization, name="J", url=callback_server.url)
    dry = events_ingest(client, tenant_a, token_a, [event("PO-1")], dryRun="true")
    assert dry["dryRun"] is True
    events_ingest(client, tenant_a, token_a, [event("PO-2")], initData="true")

    assert rows(tenant_a) == []
    deliver()
    assert callback_server.received == []


def test_the_routes_follow_a_change_of_destination_at_once(tenant_a, callback_server):
    destination, _ = destination_create(
        organization=tenant_a.organization, name="J", url=callback_server.url
    )
    assert [r.destination_id for r in destination_routes(tenant_a.organization.pk)] == [
        destination.pk
    ]
    destination_update(destination=destination, enabled=False)
    assert destination_routes(tenant_a.organization.pk) == ()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_one_delivery_at_the_same_time(callback_server):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has no row locks, so workers cannot race")
    tenant = tenant_create("Acme Retail", "ops@acme.test")
    destination, _ = destination_create(
        organization=tenant.organization, name="J", url=callback_server.url
    )
    callback_server.delay = 0.02
    now = timezone.now()
    DestinationDelivery.objects.bulk_create(
        DestinationDelivery(
            organization=tenant.organization,
            destination=destination,
            webhook_id=f"msg_{n}",
            request_id="r" * 32,
            event_ids=[],
            next_attempt_at=now,
            created_at=now,
        )
        for n in range(20)
    )
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            deliver(now=now + timedelta(seconds=1), batch_size=3)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    sent = [r.headers["webhook-id"] for r in callback_server.received]
    assert sorted(sent) == sorted(f"msg_{n}" for n in range(20))  # each exactly once
    assert set(
        DestinationDelivery.objects.filter(organization=tenant.organization).values_list(
            "status", flat=True
        )
    ) == {CallbackStatus.DELIVERED}
