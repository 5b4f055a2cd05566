"""An ingest request that generates events runs as many SQL queries for 1 entry as for 50,
whatever the mix of created, updated and rejected entries (DESIGN §9)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from cdp.models import EntityRecord
from journeys.models import UserEvent
from tests.journeys.conftest import config_create, ingest, member

HALF_PASS = {"conditions": [{"field": "customFieldLong01", "operator": "gte", "value": 50}]}


def points(tenant, key: str, value: int) -> dict[str, Any]:
    return member(tenant, key, customFieldLongs={"customFieldLong01": value})


def counted(client, tenant, token, entries: list[dict[str, Any]], **names: Any):
    with CaptureQueriesContext(connection) as queries:
        response = ingest(client, tenant, token, entries, **names)
    assert response.status_code == 200, response.json()
    return response.json(), len(queries.captured_queries)


def test_created_config_queries_do_not_grow_with_entries(client, tenant_a, tenant_b, token_a):
    config = config_create(tenant_a, filter=HALF_PASS)
    existing = [points(tenant_a, f"U-{i}", 10) for i in range(20)]
    ingest(client, tenant_a, token_a, existing, config_id=config.config_id)  # also warms up

    one, one_count = counted(
        client, tenant_a, token_a, [points(tenant_a, "N-single", 99)], config_id=config.config_id
    )
    fifty_entries = [
        *[points(tenant_a, f"U-{i}", 60 + i) for i in range(20)],  # updated
        *[points(tenant_a, f"N-{i}", 100 if i % 2 else 1) for i in range(20)],  # created
        *[
            member(tenant_a, f"X-{i}", customFieldLongs={"customFieldLong01": "x"})
            for i in range(10)
        ],
    ]
    fifty, fifty_count = counted(
        client, tenant_a, token_a, fifty_entries, config_id=config.config_id
    )

    assert one["events"]["generated"] == 1
    assert (fifty["created"], fifty["updated"], fifty["failed"]) == (20, 20, 10)
    assert fifty["events"]["generated"] == 10
    assert (
        UserEvent.objects.filter(organization=tenant_a.organization).count() == 1 + 10
    )  # the first 20 did not pass
    assert one_count == fifty_count
    assert not UserEvent.objects.filter(organization=tenant_b.organization).exists()
    assert not EntityRecord.objects.filter(organization=tenant_b.organization).exists()


def test_changed_config_queries_do_not_grow_with_entries(client, tenant_a, token_a):
    config = config_create(tenant_a, "Changed", eventName="points_changed", filter=HALF_PASS)
    ingest(client, tenant_a, token_a, [points(tenant_a, f"U-{i}", 10) for i in range(41)])

    one, one_count = counted(
        client, tenant_a, token_a, [points(tenant_a, "U-40", 99)], event_key=config.event_key
    )
    fifty_entries = [
        *[points(tenant_a, f"U-{i}", 100 if i % 2 else 20) for i in range(30)],  # updated
        *[points(tenant_a, f"N-{i}", 100) for i in range(10)],  # created
        *[member(tenant_a, "") for _ in range(10)],  # rejected
    ]
    fifty, fifty_count = counted(
        client, tenant_a, token_a, fifty_entries, event_key=config.event_key
    )

    assert one["events"]["generated"] == 1
    assert (fifty["created"], fifty["updated"], fifty["failed"]) == (10, 30, 10)
    assert fifty["events"]["generated"] == 15
    assert one_count == fifty_count


def test_user_event_entries_queries_do_not_grow_with_entries(client, tenant_a, token_a):
    def event(source_id: str, **fields: Any) -> dict[str, Any]:
        return {
            "source": "PurchaseOrder",
            "sourceId": source_id,
            "channel": "Online",
            "eventCtg": "Transaction",
            "eventName": "purchase",
            "eventAt": 1_700_000_000_000,
            **fields,
        }

    ingest(
        client, tenant_a, token_a, [event(f"E-{i}") for i in range(20)], object_type="user-event"
    )

    with CaptureQueriesContext(connection) as one:
        ingest(client, tenant_a, token_a, [event("single")], object_type="user-event")
    entries = [
        *[event(f"E-{i}") for i in range(20)],  # unchanged re-sends
        *[event(f"F-{i}") for i in range(20)],  # created
        *[event(f"B-{i}", channel="Email") for i in range(10)],  # rejected
    ]
    with CaptureQueriesContext(connection) as fifty:
        body = ingest(client, tenant_a, token_a, entries, object_type="user-event").json()

    assert (body["created"], body["unchanged"], body["failed"]) == (20, 20, 10)
    assert len(one.captured_queries) == len(fifty.captured_queries)
