"""Entries of objectType `user-event`, stored as UserEvents directly (DESIGN §7,
reference/entities.md), and their de-duplication."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdp import services
from cdp.models import EntityRecord
from journeys.models import UserEvent
from tests.journeys.conftest import ingest, system_model, user_events_get

T0 = 1_700_000_000_123


def at_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def event_entry(**fields: Any) -> dict[str, Any]:
    return {
        "source": "PurchaseOrder",
        "sourceId": "PO-1",
        "channel": "Online",
        "eventCtg": "Transaction",
        "eventName": "purchase",
        "eventAt": T0,
        **fields,
    }


def send(client, tenant, token, *entries: dict[str, Any]) -> dict[str, Any]:
    return ingest(client, tenant, token, list(entries), object_type="user-event").json()


def rows(tenant) -> list[UserEvent]:
    return list(UserEvent.objects.filter(organization=tenant.organization).order_by("id"))


def test_every_user_event_field_is_stored(client, tenant_a, token_a):
    user_event_model = system_model(tenant_a, "user-event")
    for name in ("customField01", "customFieldLong01", "customFieldList01"):
        services.field_definition_create(
            organization=tenant_a.organization, data_model=user_event_model, name=name
        )
    entry = event_entry(
        condition="Changed",
        eventCtg2="checkout",
        eventCtg3="web",
        value=199.5,
        eventLabels=["summer"],
        eventLabel2s=["sale", "shoes"],
        eventLabel3s=["x"],
        customerId="C-1",
        email="c1@acme.test",
        phone="0901",
        zaloOAId="OA-1",
        zaloUserId="ZU-1",
        note="first order",
        recordStatus="",
        customFieldTexts={"customField01": "gold"},
        customFieldLongs={"customFieldLong01": "7"},
        customFieldListTexts={"customFieldList01": ["a", "b"]},
    )

    response = ingest(client, tenant_a, token_a, [entry], object_type="user-event")

    body = response.json()
    assert response.status_code == 200, body
    assert body["success"] is True
    assert (body["created"], body["failed"]) == (1, 0)
    assert body["events"] == {"generated": 0, "suppressed": 0, "dropped": 0}
    [result] = body["results"]
    assert (result["refId"], result["status"], result["action"]) == ("PO-1", 200, "created")
    [event] = rows(tenant_a)
    assert result["cdpId"] == event.event_id
    assert event.config is None
    assert (event.source, event.source_id, event.condition) == ("PurchaseOrder", "PO-1", "Changed")
    assert (event.channel, event.event_ctg, event.event_ctg2, event.event_ctg3) == (
        "Online",
        "Transaction",
        "checkout",
        "web",
    )
    assert event.event_name == "purchase"
    assert event.event_at == at_ms(T0)
    assert event.value == 199.5
    assert (event.event_labels, event.event_label2s, event.event_label3s) == (
        ["summer"],
        ["sale", "shoes"],
        ["x"],
    )
    assert (event.customer_id, event.email, event.phone, event.note) == (
        "C-1",
        "c1@acme.test",
        "0901",
        "first order",
    )
    assert event.request_id == body["requestId"]
    properties = dict(event.properties)
    assert properties.pop("recordStatus", "") == ""
    assert properties == {
        "zaloOAId": "OA-1",
        "zaloUserId": "ZU-1",
        "customField01": "gold",
        "customFieldLong01": 7,
        "customFieldList01": ["a", "b"],
    }
    # Stored as an event, not as a record.
    assert not EntityRecord.objects.filter(organization=tenant_a.organization).exists()

    [listed] = user_events_get(client, tenant_a, token_a).json()["events"]
    assert listed["eventId"] == event.event_id
    assert listed["eventAt"] == T0
    assert (listed["jeConfigId"], listed["jeEventKey"]) == (None, None)


def test_condition_defaults_to_created(client, tenant_a, token_a):
    send(client, tenant_a, token_a, event_entry(), event_entry(sourceId="PO-2", condition=""))

    assert [e.condition for e in rows(tenant_a)] == ["Created", "Created"]


@pytest.mark.parametrize(
    "sent", [T0, str(T0), T0 // 1000, "2023-11-14T22:13:20.123Z", "2023-11-15T05:13:20.123"]
)
def test_event_at_accepts_the_timestamp_forms(client, tenant_a, token_a, sent):
    # The zone-less ISO string is read in the entry's timezoneGmt (+7).
    body = send(client, tenant_a, token_a, event_entry(eventAt=sent, timezoneGmt=7))

    assert body["created"] == 1, body
    [event] = rows(tenant_a)
    assert event.event_at == at_ms(T0 if sent != T0 // 1000 else T0 // 1000 * 1000)


@pytest.mark.parametrize(
    "missing", ["source", "sourceId", "channel", "eventCtg", "eventName", "eventAt"]
)
def test_an_entry_missing_a_required_field_is_rejected(client, tenant_a, token_a, missing):
    bad = event_entry(sourceId="PO-BAD")
    del bad[missing]

    body = send(client, tenant_a, token_a, event_entry(), bad)

    assert body["success"] is False
    assert body["errorCode"] == "INVALID_ENTRIES"
    assert (body["created"], body["failed"]) == (1, 1)
    rejected = body["results"][1]
    assert rejected["status"] == 101
    assert rejected["errorMessage"] == f"Missing {missing}"
    assert [e.source_id for e in rows(tenant_a)] == ["PO-1"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("channel", "Email"),
        ("eventCtg", "Marketing"),
        ("condition", "Deleted"),
        ("eventAt", "soon"),
    ],
)
def test_an_entry_with_a_bad_value_is_rejected(client, tenant_a, token_a, field, value):
    response = ingest(
        client, tenant_a, token_a, [event_entry(**{field: value})], object_type="user-event"
    )

    body = response.json()
    assert response.status_code == 400
    assert body["errorCode"] == "INVALID_ENTRIES"
    [result] = body["results"]
    assert result["status"] == 101
    assert result["errorMessage"].startswith(f"Invalid value of {field}")
    assert rows(tenant_a) == []


def test_an_undeclared_custom_field_is_rejected(client, tenant_a, token_a):
    body = send(client, tenant_a, token_a, event_entry(customFieldTexts={"customField01": "gold"}))

    assert body["results"][0]["status"] == 101
    assert "customField01" in body["results"][0]["errorMessage"]
    assert rows(tenant_a) == []


def test_resending_a_created_event_is_unchanged(client, tenant_a, token_a):
    first = send(client, tenant_a, token_a, event_entry(value=1))
    again = send(client, tenant_a, token_a, event_entry(value=2, eventAt=T0 + 60_000))

    assert first["results"][0]["action"] == "created"
    assert again["results"][0]["action"] == "unchanged"
    assert (again["created"], again["unchanged"]) == (0, 1)
    assert again["results"][0]["cdpId"] == first["results"][0]["cdpId"]
    [event] = rows(tenant_a)
    assert event.event_id == first["results"][0]["cdpId"]
    # The first one sent is kept as it was.
    assert (event.value, event.event_at) == (1, at_ms(T0))


def test_created_events_differ_by_source_source_id_and_name(client, tenant_a, token_a):
    send(
        client,
        tenant_a,
        token_a,
        event_entry(),
        event_entry(source="ShoppingCart"),
        event_entry(sourceId="PO-2"),
        event_entry(eventName="refund"),
    )

    assert len(rows(tenant_a)) == 4


def test_changed_events_are_unique_per_event_at(client, tenant_a, token_a):
    changed = {"condition": "Changed"}
    first = send(client, tenant_a, token_a, event_entry(**changed))
    same_time = send(client, tenant_a, token_a, event_entry(**changed, value=5))
    later = send(client, tenant_a, token_a, event_entry(**changed, eventAt=T0 + 1))

    assert first["results"][0]["action"] == "created"
    assert same_time["results"][0]["action"] == "unchanged"
    assert same_time["results"][0]["cdpId"] == first["results"][0]["cdpId"]
    assert later["results"][0]["action"] == "created"
    assert later["results"][0]["cdpId"] != first["results"][0]["cdpId"]
    assert [e.event_at for e in rows(tenant_a)] == [at_ms(T0), at_ms(T0 + 1)]


def test_a_created_and_a_changed_event_of_one_source_are_both_kept(client, tenant_a, token_a):
    send(client, tenant_a, token_a, event_entry(), event_entry(condition="Changed"))

    assert sorted(e.condition for e in rows(tenant_a)) == ["Changed", "Created"]


@pytest.mark.parametrize("condition", ["Created", "Changed"])
def test_the_same_event_twice_in_one_request(client, tenant_a, token_a, condition):
    body = send(
        client,
        tenant_a,
        token_a,
        event_entry(condition=condition),
        event_entry(condition=condition, note="again"),
    )

    assert body["success"] is True
    assert [r["action"] for r in body["results"]] == ["created", "unchanged"]
    assert body["results"][0]["cdpId"] == body["results"][1]["cdpId"]
    [event] = rows(tenant_a)
    assert event.event_id == body["results"][0]["cdpId"]
    assert event.note == ""


def test_the_same_event_in_two_organizations_is_stored_once_in_each(
    client, tenant_a, tenant_b, token_a, token_b
):
    in_a = send(client, tenant_a, token_a, event_entry())
    in_b = send(client, tenant_b, token_b, event_entry())

    assert in_a["results"][0]["action"] == "created"
    assert in_b["results"][0]["action"] == "created"
    assert len(rows(tenant_a)) == 1
    assert len(rows(tenant_b)) == 1
    assert rows(tenant_a)[0].event_id == in_a["results"][0]["cdpId"]
    assert rows(tenant_b)[0].event_id == in_b["results"][0]["cdpId"]

    [seen_by_b] = user_events_get(client, tenant_b, token_b).json()["events"]
    assert seen_by_b["eventId"] == in_b["results"][0]["cdpId"]


@pytest.mark.parametrize("field", ["source", "sourceId", "eventName"])
def test_an_identifying_field_over_255_characters_is_rejected(client, tenant_a, token_a, field):
    body = send(client, tenant_a, token_a, event_entry(**{field: "x" * 256}))

    [result] = body["results"]
    assert result["status"] == 101
    assert result["errorMessage"] == f"Invalid value of {field}: longer than 255 characters"
    assert rows(tenant_a) == []


def test_long_free_text_fields_are_stored_whole(client, tenant_a, token_a):
    long_text = "y" * 5000
    body = send(
        client,
        tenant_a,
        token_a,
        event_entry(phone=long_text, eventCtg2=long_text, customerId=long_text, note=long_text),
    )

    assert body["success"] is True, body
    [event] = rows(tenant_a)
    assert (event.phone, event.event_ctg2, event.customer_id, event.note) == (long_text,) * 4
