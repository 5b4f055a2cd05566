"""Payloads shaped like those of public PangoCDP client code (entities.md "Real client
payloads"): their acceptance is part of the contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdp import services
from journeys.models import UserEvent

pytestmark = pytest.mark.django_db

# 2024-03-01T08:00:00Z, as the clients send it: a string of epoch seconds.
CREATED_S = 1709280000
UPDATED_S = CREATED_S + 3600


def _custom_model_entry(mom_code: str, i: int) -> dict:
    entry = {
        "momCode": mom_code,
        "refId": f"ORD-{i:04}",
        "customerId": f"CUS-{i:04}",
        "phone": f"09{i:08}",
        "createdAt": str(CREATED_S + i),
        "updatedAt": str(UPDATED_S + i),
        "customFieldTexts": {
            "customField01": "Gold" if i % 2 else None,
            "customField02": None,
        },
        "customFieldLongs": {"customFieldLong01": i * 10},
        "customFieldTimestamps": {"customFieldTimestamp01": str(CREATED_S - 86400 + i)},
    }
    if i % 5 == 0:
        entry["customFieldListTexts"] = {"customFieldList01": ["sms", "email"]}
    return entry


def test_fifty_entry_custom_model_batch_with_lower_case_headers(api_a):
    batch = [_custom_model_entry(api_a.tenant.mom_code, i) for i in range(50)]

    response = api_a.post(batch, headers={"token": api_a.token, "api_key": api_a.tenant.raw_key})

    body = response.json()
    assert response.status_code == 200, body
    assert body["success"] is True, body["results"][:3]
    assert (body["total"], body["created"], body["failed"]) == (50, 50, 0)
    assert api_a.records().count() == 50
    assert api_a.data("ORD-0007") == {
        "refId": "ORD-0007",
        "customerId": "CUS-0007",
        "phone": "0900000007",
        "createdAt": (CREATED_S + 7) * 1000,
        "updatedAt": (UPDATED_S + 7) * 1000,
        "customField01": "Gold",
        "customFieldLong01": 70,
        "customFieldTimestamp01": (CREATED_S - 86400 + 7) * 1000,
    }
    assert api_a.data("ORD-0010") == {
        "refId": "ORD-0010",
        "customerId": "CUS-0010",
        "phone": "0900000010",
        "createdAt": (CREATED_S + 10) * 1000,
        "updatedAt": (UPDATED_S + 10) * 1000,
        "customFieldLong01": 100,
        "customFieldTimestamp01": (CREATED_S - 86400 + 10) * 1000,
        "customFieldList01": ["sms", "email"],
    }


def test_resending_the_batch_with_upper_case_headers_changes_nothing(api_a):
    batch = [_custom_model_entry(api_a.tenant.mom_code, i) for i in range(50)]
    api_a.post(batch, headers={"token": api_a.token, "api_key": api_a.tenant.raw_key})

    again = api_a.post(batch, headers={"TOKEN": api_a.token, "API_KEY": api_a.tenant.raw_key})

    body = again.json()
    assert body["success"] is True, body
    assert (body["created"], body["updated"], body["unchanged"]) == (0, 0, 50)


def test_nightly_sync_updates_with_nulls_clearing_only_the_named_fields(api_a):
    mom_code = api_a.tenant.mom_code
    api_a.post([_custom_model_entry(mom_code, i) for i in range(50)])

    # The next sync: customField01 is now null everywhere; the odd records had it.
    batch = [_custom_model_entry(mom_code, i) for i in range(50)]
    for entry in batch:
        entry["customFieldTexts"]["customField01"] = None
        entry["updatedAt"] = str(UPDATED_S + 86400)

    response = api_a.post(batch)

    body = response.json()
    assert (body["updated"], body["unchanged"], body["failed"]) == (50, 0, 0), body
    data = api_a.data("ORD-0007")
    assert "customField01" not in data
    assert data["updatedAt"] == (UPDATED_S + 86400) * 1000
    assert data["customFieldLong01"] == 70


def test_user_event_batch_with_blank_record_status_and_ms_event_times(api_a):
    user_event_model = api_a.system_model("user-event")
    services.field_definition_create(
        organization=api_a.tenant.organization, data_model=user_event_model, name="customField01"
    )
    event_at_ms = 1709280000123
    batch = [
        {
            "source": api_a.tenant.mom_code,
            "sourceId": f"ORD-{i:04}",
            "condition": "Created",
            "channel": "Online",
            "eventCtg": "Transaction",
            "eventCtg2": "purchase",
            "eventName": "create_order",
            "eventAt": event_at_ms + i,
            "value": 100 + i,
            "eventLabels": ["web"],
            "customerId": f"CUS-{i:04}",
            "phone": f"09{i:08}",
            "email": "",
            "note": None,
            "recordStatus": "",
            "customFieldTexts": {"customField01": "promo"},
        }
        for i in range(50)
    ]

    response = api_a.post(
        batch,
        object_type="user-event",
        headers={"token": api_a.token, "api_key": api_a.tenant.raw_key},
    )

    body = response.json()
    assert response.status_code == 200, body
    assert body["success"] is True, body["results"][:3]
    assert (body["total"], body["created"], body["failed"]) == (50, 50, 0)
    assert body["results"][3]["refId"] == "ORD-0003"
    events = UserEvent.objects.filter(organization=api_a.tenant.organization)
    assert events.count() == 50
    event = events.get(source_id="ORD-0003")
    assert event.event_at == datetime.fromtimestamp((event_at_ms + 3) / 1000, tz=UTC)
    assert (event.source, event.event_name, event.condition) == (
        api_a.tenant.mom_code,
        "create_order",
        "Created",
    )
    assert (event.channel, event.event_ctg, event.event_ctg2) == (
        "Online",
        "Transaction",
        "purchase",
    )
    assert event.value == 103
    assert event.event_labels == ["web"]
    assert (event.customer_id, event.phone) == ("CUS-0003", "0900000003")
    assert event.properties["customField01"] == "promo"

    # Re-sending the same events does not duplicate them.
    again = api_a.post(batch, object_type="user-event")
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 50)
    assert events.count() == 50
