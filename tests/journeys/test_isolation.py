"""User Events between two organizations: configs, generated events and reads stay inside
the organization that owns them (DESIGN §4 tenancy rules)."""

from __future__ import annotations

import pytest

from cdp.models import EntityRecord
from ingestion.models import IngestionRequest
from journeys.models import UserEvent
from tests.journeys.conftest import config_create, ingest, member, user_events_get


@pytest.mark.parametrize("named_by", ["config_id", "event_key", "both"])
def test_tenant_b_cannot_use_tenant_a_config(client, tenant_a, tenant_b, token_b, named_by):
    config_a = config_create(tenant_a)
    names = {
        "config_id": config_a.config_id if named_by != "event_key" else None,
        "event_key": config_a.event_key if named_by != "config_id" else None,
    }

    response = ingest(client, tenant_b, token_b, [member(tenant_b, "R-1")], **names)

    body = response.json()
    assert response.status_code == 400
    assert body["errorCode"] == "INVALID_JOURNEY_EVENT"
    assert body["message"].startswith(
        "Unknown jeConfigId" if named_by != "event_key" else "Unknown jeEventKey"
    )
    assert not EntityRecord.objects.exists()
    assert not UserEvent.objects.exists()
    log = IngestionRequest.objects.get()
    assert log.organization == tenant_b.organization
    assert log.config is None


def test_tenant_b_does_not_see_tenant_a_events(client, tenant_a, tenant_b, token_a, token_b):
    config_a = config_create(tenant_a)
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id=config_a.config_id)
    ingest(
        client,
        tenant_a,
        token_a,
        [
            {
                "source": "PurchaseOrder",
                "sourceId": "PO-1",
                "channel": "Online",
                "eventCtg": "Transaction",
                "eventName": "purchase",
                "eventAt": 1_700_000_000_000,
            }
        ],
        object_type="user-event",
    )

    seen_by_a = user_events_get(client, tenant_a, token_a).json()
    seen_by_b = user_events_get(client, tenant_b, token_b).json()
    by_source_id = user_events_get(client, tenant_b, token_b, sourceId="R-1").json()
    by_name = user_events_get(client, tenant_b, token_b, eventName="membership_created").json()

    assert sorted(e["sourceId"] for e in seen_by_a["events"]) == ["PO-1", "R-1"]
    assert seen_by_b == {"success": True, "events": [], "next": None}
    assert by_source_id["events"] == []
    assert by_name["events"] == []


def test_configs_produce_rows_only_in_their_organization(
    client, tenant_a, tenant_b, token_a, token_b
):
    config_a = config_create(tenant_a)
    config_b = config_create(tenant_b)

    in_a = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1"), member(tenant_a, "R-2")],
        config_id=config_a.config_id,
    ).json()
    # The same keys in B: A's Created events do not count as B's.
    in_b = ingest(
        client, tenant_b, token_b, [member(tenant_b, "R-1")], event_key=config_b.event_key
    ).json()

    assert in_a["events"]["generated"] == 2
    assert in_b["events"]["generated"] == 1
    events_a = UserEvent.objects.filter(organization=tenant_a.organization)
    events_b = UserEvent.objects.filter(organization=tenant_b.organization)
    assert sorted(events_a.values_list("source_id", flat=True)) == ["R-1", "R-2"]
    assert set(events_a.values_list("config", flat=True)) == {config_a.pk}
    assert set(events_a.values_list("source", flat=True)) == {tenant_a.mom_code}
    assert list(events_b.values_list("source_id", "config", "source")) == [
        ("R-1", config_b.pk, tenant_b.mom_code)
    ]
    assert UserEvent.objects.count() == 3

    [listed_b] = user_events_get(client, tenant_b, token_b).json()["events"]
    assert (listed_b["jeConfigId"], listed_b["eventId"]) == (
        config_b.config_id,
        in_b["results"][0]["eventId"],
    )
