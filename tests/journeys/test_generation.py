"""User Event generation through the Data Ingestion API (DESIGN §6, §7): which entries fire,
what the generated events hold, and the limits, asserted on response bodies and UserEvent rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdp import services
from cdp.models import EntityRecord
from ingestion.models import IngestionRequest
from journeys.filters import CHANGE_OPERATORS, OPERATORS
from journeys.models import UserEvent
from tests.journeys.conftest import (
    config_create,
    ingest,
    member,
    results_by_key,
    system_model,
    user_events_get,
)

T0 = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def events_of(tenant) -> list[UserEvent]:
    return list(UserEvent.objects.filter(organization=tenant.organization).order_by("id"))


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def at_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def texts(**values: Any) -> dict[str, Any]:
    return {"customFieldTexts": values}


# --- triggers -------------------------------------------------------------------------


def test_created_config_fires_for_created_entries_only(client, tenant_a, token_a, created_config):
    setup = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", **texts(customField01="gold")), member(tenant_a, "R-2")],
    )
    assert setup.status_code == 200, setup.json()

    response = ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-1", **texts(customField01="silver")),
            member(tenant_a, "R-2"),
            member(tenant_a, "R-3"),
        ],
        config_id=created_config.config_id,
    )

    body = response.json()
    assert response.status_code == 200, body
    assert (body["created"], body["updated"], body["unchanged"]) == (1, 1, 1)
    assert body["events"] == {"generated": 1, "suppressed": 0, "dropped": 0}
    results = results_by_key(body)
    assert [results[k]["action"] for k in ("R-1", "R-2", "R-3")] == [
        "updated",
        "unchanged",
        "created",
    ]
    assert "eventId" not in results["R-1"]
    assert "eventId" not in results["R-2"]
    [event] = events_of(tenant_a)
    assert event.source_id == "R-3"
    assert event.event_id == results["R-3"]["eventId"]
    assert event.config == created_config


def test_created_config_fires_at_most_once_per_record(client, tenant_a, token_a, created_config):
    first = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id=created_config.config_id
    ).json()
    assert first["events"]["generated"] == 1

    again = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", **texts(customField01="gold")), member(tenant_a, "R-1")],
        config_id=created_config.config_id,
    ).json()
    unchanged = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id=created_config.config_id
    ).json()

    assert [r["action"] for r in again["results"]] == ["updated", "unchanged"]
    assert again["events"]["generated"] == 0
    assert unchanged["results"][0]["action"] == "unchanged"
    assert unchanged["events"]["generated"] == 0
    [event] = events_of(tenant_a)
    assert event.event_id == first["results"][0]["eventId"]


def test_created_config_fires_once_for_a_key_repeated_in_one_request(
    client, tenant_a, token_a, created_config
):
    body = ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-1", **texts(customField01="gold")),
            member(tenant_a, "R-1", **texts(customField01="silver")),
        ],
        config_id=created_config.config_id,
    ).json()

    assert [r["action"] for r in body["results"]] == ["created", "updated"]
    assert body["events"]["generated"] == 1
    assert "eventId" in body["results"][0]
    assert "eventId" not in body["results"][1]
    assert len(events_of(tenant_a)) == 1


def test_changed_config_fires_for_updated_entries_only(client, tenant_a, token_a, changed_config):
    created = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", **texts(customField01="gold")), member(tenant_a, "R-2")],
        config_id=changed_config.config_id,
    ).json()
    assert created["created"] == 2
    assert created["events"]["generated"] == 0
    assert events_of(tenant_a) == []

    mixed = ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-1", **texts(customField01="silver")),
            member(tenant_a, "R-2"),
            member(tenant_a, "R-3"),
        ],
        config_id=changed_config.config_id,
    ).json()

    results = results_by_key(mixed)
    assert [results[k]["action"] for k in ("R-1", "R-2", "R-3")] == [
        "updated",
        "unchanged",
        "created",
    ]
    assert mixed["events"]["generated"] == 1
    assert set(results["R-1"]) >= {"eventId"}
    assert "eventId" not in results["R-2"]
    assert "eventId" not in results["R-3"]
    [event] = events_of(tenant_a)
    assert (event.source_id, event.condition) == ("R-1", "Changed")
    assert event.event_id == results["R-1"]["eventId"]


def test_changed_config_ignores_an_unchanged_resend_and_fires_on_every_change(
    client, tenant_a, token_a, changed_config
):
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1", **texts(customField01="gold"))])

    def send(tier: str) -> dict[str, Any]:
        return ingest(
            client,
            tenant_a,
            token_a,
            [member(tenant_a, "R-1", **texts(customField01=tier))],
            event_key=changed_config.event_key,
        ).json()

    resend = send("gold")
    first_change = send("silver")
    resend_again = send("silver")
    second_change = send("platinum")

    assert resend["results"][0]["action"] == "unchanged"
    assert resend["events"]["generated"] == 0
    assert resend_again["events"]["generated"] == 0
    assert first_change["events"]["generated"] == 1
    assert second_change["events"]["generated"] == 1
    assert [e.event_id for e in events_of(tenant_a)] == [
        first_change["results"][0]["eventId"],
        second_change["results"][0]["eventId"],
    ]


def test_changed_config_fires_for_each_change_of_a_key_repeated_in_one_request(
    client, tenant_a, token_a
):
    config = config_create(
        tenant_a,
        "Changed",
        event_name="tier_changed",
        update_values=[{"target": "properties.tier", "field": "customField01"}],
    )
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1", **texts(customField01="gold"))])

    body = ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-1", **texts(customField01="silver")),
            member(tenant_a, "R-1", **texts(customField01="silver")),
            member(tenant_a, "R-1", **texts(customField01="platinum")),
        ],
        config_id=config.config_id,
    ).json()

    assert [r["action"] for r in body["results"]] == ["updated", "unchanged", "updated"]
    assert body["events"]["generated"] == 2
    # Each event sees the record as that entry left it.
    assert [e.properties["tier"] for e in events_of(tenant_a)] == ["silver", "platinum"]


@pytest.mark.parametrize("named_by", ["jeConfigId", "jeEventKey", "both"])
def test_a_config_can_be_named_by_id_key_or_both(
    client, tenant_a, token_a, created_config, named_by
):
    names = {
        "config_id": created_config.config_id if named_by != "jeEventKey" else None,
        "event_key": created_config.event_key if named_by != "jeConfigId" else None,
    }

    body = ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")], **names).json()

    assert body["success"] is True
    assert body["events"]["generated"] == 1
    [event] = events_of(tenant_a)
    assert event.config == created_config
    log = IngestionRequest.objects.get(organization=tenant_a.organization)
    assert log.config == created_config
    assert log.events_generated == 1


def test_blank_config_names_mean_none(client, tenant_a, token_a, created_config):
    by_key = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1")],
        config_id="",
        event_key=created_config.event_key,
    ).json()
    neither = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-2")], config_id=" ", event_key=""
    ).json()

    assert by_key["events"]["generated"] == 1
    assert neither["success"] is True
    assert neither["events"]["generated"] == 0
    assert [e.source_id for e in events_of(tenant_a)] == ["R-1"]


def test_no_config_named_generates_nothing(client, tenant_a, token_a, created_config):
    body = ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")]).json()

    assert body["created"] == 1
    assert body["events"] == {"generated": 0, "suppressed": 0, "dropped": 0}
    assert events_of(tenant_a) == []


def test_only_entries_of_the_configs_model_fire(client, tenant_a, token_a, created_config):
    loyalty = services.custom_model_create(organization=tenant_a.organization, name="Loyalty")

    body = ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-1"),
            {"momCode": loyalty.mom_code, "refId": "R-1"},
            {"momCode": loyalty.mom_code, "refId": "L-2"},
        ],
        config_id=created_config.config_id,
    ).json()

    assert body["created"] == 3
    assert body["events"]["generated"] == 1
    assert [("eventId" in r) for r in body["results"]] == [True, False, False]
    [event] = events_of(tenant_a)
    assert (event.source, event.source_id) == (tenant_a.mom_code, "R-1")


def test_rejected_entries_fire_nothing(client, tenant_a, token_a, created_config):
    body = ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-1"),
            member(tenant_a, "R-2", customFieldLongs={"customFieldLong01": "many"}),
        ],
        config_id=created_config.config_id,
    ).json()

    assert body["failed"] == 1
    assert body["events"]["generated"] == 1
    assert [e.source_id for e in events_of(tenant_a)] == ["R-1"]


def test_events_stay_in_the_organization_of_the_request(
    client, tenant_a, tenant_b, token_a, token_b, created_config
):
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id=created_config.config_id)
    config_b = config_create(tenant_b)

    # Same key in B: A's Created event is not B's, and B's request cannot reach A's rows.
    in_b = ingest(
        client, tenant_b, token_b, [member(tenant_b, "R-1")], config_id=config_b.config_id
    ).json()

    assert in_b["created"] == 1
    assert in_b["events"]["generated"] == 1
    [event_a] = events_of(tenant_a)
    [event_b] = events_of(tenant_b)
    assert (event_a.config, event_a.source) == (created_config, tenant_a.mom_code)
    assert (event_b.config, event_b.source) == (config_b, tenant_b.mom_code)
    assert event_b.event_id == in_b["results"][0]["eventId"]


# --- filters --------------------------------------------------------------------------

# (operator, field, configured value, group of the field, passing value, failing value);
# a value of None leaves the field out of the entry.
OPERATOR_CASES = [
    ("eq", "customField01", "gold", "customFieldTexts", "gold", "Gold"),
    ("neq", "customField01", "gold", "customFieldTexts", "silver", "gold"),
    ("contains", "customField02", "li", "customFieldTexts", "Alice", "Bob"),
    ("not_contains", "customFieldList01", "golf", "customFieldListTexts", ["chess"], ["golf"]),
    ("starts_with", "customField02", "Al", "customFieldTexts", "Alice", "Bob"),
    ("ends_with", "customField02", "ce", "customFieldTexts", "Alice", "Bob"),
    ("gt", "customFieldLong01", 100, "customFieldLongs", 101, 100),
    ("gte", "customFieldDouble01", 9.5, "customFieldDoubles", 9.5, 9.49),
    ("lt", "customFieldTimestamp01", T0, "customFieldTimestamps", T0 - 1, T0),
    ("lte", "customFieldLong01", 100, "customFieldLongs", 100, 101),
    ("in", "customField01", ["gold", "platinum"], "customFieldTexts", "platinum", "silver"),
    ("not_in", "customFieldLong01", [1, 2], "customFieldLongs", 3, 2),
    ("is_empty", "customField02", None, "customFieldTexts", None, "Bob"),
    ("is_not_empty", "customFieldBool01", None, "customFieldBooleans", False, None),
]


@pytest.mark.parametrize(
    ("operator", "field", "value", "group", "passing", "failing"),
    OPERATOR_CASES,
    ids=[case[0] for case in OPERATOR_CASES],
)
def test_each_filter_operator_selects_the_entries_that_pass(
    client, tenant_a, token_a, operator, field, value, group, passing, failing
):
    condition = {"field": field, "operator": operator}
    if value is not None:
        condition["value"] = value
    config = config_create(tenant_a, filters={"match": "all", "conditions": [condition]})

    def entry(key: str, field_value: Any) -> dict[str, Any]:
        return member(
            tenant_a, key, **({group: {field: field_value}} if field_value is not None else {})
        )

    body = ingest(
        client,
        tenant_a,
        token_a,
        [entry("PASS", passing), entry("FAIL", failing)],
        config_id=config.config_id,
    ).json()

    assert body["created"] == 2, body
    assert body["events"]["generated"] == 1
    results = results_by_key(body)
    assert "eventId" in results["PASS"]
    assert "eventId" not in results["FAIL"]
    assert [e.source_id for e in events_of(tenant_a)] == ["PASS"]


def test_every_filter_operator_is_covered_end_to_end():
    # changed/not_changed apply to Changed User Events only, on a stored record's update:
    # tests/journeys/test_change_rules_http.py covers them end to end.
    assert sorted(case[0] for case in OPERATOR_CASES) == sorted(
        op for op in OPERATORS if op not in CHANGE_OPERATORS
    )


TWO_CONDITIONS = [
    {"field": "customField01", "operator": "eq", "value": "gold"},
    {"field": "customFieldLong01", "operator": "gte", "value": 100},
]


@pytest.mark.parametrize(
    ("match", "firing"),
    [("all", ["GOLD-150"]), ("any", ["GOLD-150", "GOLD-50", "SILVER-150"])],
)
def test_filter_match_all_or_any(client, tenant_a, token_a, match, firing):
    config = config_create(tenant_a, filters={"match": match, "conditions": TWO_CONDITIONS})
    entries = [
        member(
            tenant_a,
            f"{tier.upper()}-{points}",
            customFieldTexts={"customField01": tier},
            customFieldLongs={"customFieldLong01": points},
        )
        for tier, points in [("gold", 150), ("gold", 50), ("silver", 150), ("silver", 50)]
    ]

    body = ingest(client, tenant_a, token_a, entries, config_id=config.config_id).json()

    assert body["events"]["generated"] == len(firing)
    assert sorted(e.source_id for e in events_of(tenant_a)) == sorted(firing)


def test_filter_is_evaluated_on_the_record_after_the_write(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        "Changed",
        event_name="became_gold_100",
        filters={"match": "all", "conditions": TWO_CONDITIONS},
    )
    ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-GOLD", customFieldTexts={"customField01": "gold"}),
            member(tenant_a, "R-SILVER", customFieldTexts={"customField01": "silver"}),
        ],
    )

    # Partial updates: neither entry sends customField01; the stored tier decides.
    body = ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-GOLD", customFieldLongs={"customFieldLong01": 150}),
            member(tenant_a, "R-SILVER", customFieldLongs={"customFieldLong01": 150}),
        ],
        config_id=config.config_id,
    ).json()

    assert body["updated"] == 2
    assert body["events"]["generated"] == 1
    assert [e.source_id for e in events_of(tenant_a)] == ["R-GOLD"]


def test_filter_sees_a_field_cleared_by_the_write(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        "Changed",
        event_name="tier_removed",
        filters={"conditions": [{"field": "customField01", "operator": "is_empty"}]},
    )
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1", **texts(customField01="gold"))])

    body = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", **texts(customField01=None))],
        config_id=config.config_id,
    ).json()

    assert body["results"][0]["action"] == "updated"
    assert body["events"]["generated"] == 1


# --- update values --------------------------------------------------------------------


def test_update_values_from_record_fields(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        update_values=[
            {"target": "value", "field": "customFieldLong01"},
            {"target": "customerId", "field": "leadId"},
            {"target": "email", "field": "customField01"},
            {"target": "phone", "field": "deviceId"},
            {"target": "note", "field": "customField02"},
            {"target": "eventLabels", "field": "customFieldList01"},
            {"target": "eventLabel2s", "field": "eventLabel"},
            {"target": "eventLabel3s", "field": "tags"},
            {"target": "properties.tier", "field": "customField01"},
            {"target": "properties.joined", "field": "customFieldTimestamp01"},
            {"target": "properties.optIn", "field": "customFieldBool01"},
            {"target": "properties.balance", "field": "customFieldDouble01"},
        ],
    )
    entry = member(
        tenant_a,
        "R-1",
        customerId="C-RECORD",
        email="record@acme.test",
        phone="0000",
        leadId="L-7",
        deviceId="0901234567",
        eventLabel="single",
        tags=["t1", "t2"],
        customFieldTexts={"customField01": "vip@acme.test", "customField02": "hello"},
        customFieldLongs={"customFieldLong01": 150},
        customFieldDoubles={"customFieldDouble01": 12.5},
        customFieldBooleans={"customFieldBool01": True},
        customFieldTimestamps={"customFieldTimestamp01": T0},
        customFieldListTexts={"customFieldList01": ["golf", "chess"]},
    )

    body = ingest(client, tenant_a, token_a, [entry], config_id=config.config_id).json()

    assert body["events"]["generated"] == 1
    assert body["warnings"] == []
    [event] = events_of(tenant_a)
    assert event.value == 150.0
    assert event.customer_id == "L-7"
    assert event.email == "vip@acme.test"
    assert event.phone == "0901234567"
    assert event.note == "hello"
    assert event.event_labels == ["golf", "chess"]
    assert event.event_label2s == ["single"]
    assert event.event_label3s == ["t1", "t2"]
    assert event.properties == {
        "tier": "vip@acme.test",
        "joined": T0,
        "optIn": True,
        "balance": 12.5,
    }


def test_update_values_from_constants(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        update_values=[
            {"target": "value", "value": 9.99},
            {"target": "customerId", "value": "K-1"},
            {"target": "email", "value": "const@acme.test"},
            {"target": "phone", "value": "+84 1"},
            {"target": "note", "value": "constant note"},
            {"target": "eventLabels", "value": ["vip"]},
            {"target": "eventLabel2s", "value": "solo"},
            {"target": "eventLabel3s", "value": ["x", "y"]},
            {"target": "properties.campaign", "value": "spring"},
            {"target": "properties.meta", "value": {"a": 1}},
        ],
    )
    entries = [
        member(tenant_a, "R-1", customerId="C-1", email="one@acme.test", phone="111"),
        member(tenant_a, "R-2"),
    ]

    body = ingest(client, tenant_a, token_a, entries, config_id=config.config_id).json()

    assert body["events"]["generated"] == 2
    for event in events_of(tenant_a):
        assert event.value == 9.99
        assert (event.customer_id, event.email, event.phone) == ("K-1", "const@acme.test", "+84 1")
        assert event.note == "constant note"
        assert event.event_labels == ["vip"]
        assert event.event_label2s == ["solo"]
        assert event.event_label3s == ["x", "y"]
        assert event.properties == {"campaign": "spring", "meta": {"a": 1}}


def test_a_source_value_that_does_not_coerce_sets_nothing_with_a_warning(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        update_values=[
            {"target": "value", "field": "customField01"},
            {"target": "note", "field": "customField02"},
        ],
    )

    body = ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-1", **texts(customField01="12.5", customField02="ok")),
            member(tenant_a, "R-2", **texts(customField01="lots", customField02="ok")),
        ],
        config_id=config.config_id,
    ).json()

    assert body["success"] is True
    assert body["events"]["generated"] == 2
    [warning] = body["warnings"]
    assert warning.startswith("value not set: customField01 on R-2")
    first, second = events_of(tenant_a)
    assert (first.value, first.note) == (12.5, "ok")
    assert (second.value, second.note) == (None, "ok")


def test_an_empty_source_field_sets_nothing(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        update_values=[
            {"target": "value", "field": "customFieldLong01"},
            {"target": "properties.tier", "field": "customField01"},
        ],
    )

    body = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id=config.config_id
    ).json()

    assert body["events"]["generated"] == 1
    [event] = events_of(tenant_a)
    assert event.value is None
    assert event.properties == {}


def test_record_identity_is_copied_to_the_event(client, tenant_a, token_a, changed_config):
    ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", customerId="C-1", email="a@acme.test", phone="0901")],
    )

    # The update sends none of them: the event copies the stored record's values.
    ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", **texts(customField01="gold"))],
        config_id=changed_config.config_id,
    )

    [event] = events_of(tenant_a)
    assert (event.customer_id, event.email, event.phone) == ("C-1", "a@acme.test", "0901")


def test_update_values_override_the_copied_identity(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        update_values=[
            {"target": "customerId", "value": "K-1"},
            {"target": "phone", "field": "customField02"},
        ],
    )

    ingest(
        client,
        tenant_a,
        token_a,
        [
            member(
                tenant_a,
                "R-1",
                customerId="C-1",
                email="a@acme.test",
                phone="0901",
                **texts(customField02="0999"),
            ),
            member(tenant_a, "R-2"),
        ],
        config_id=config.config_id,
    )

    first, second = events_of(tenant_a)
    assert (first.customer_id, first.email, first.phone) == ("K-1", "a@acme.test", "0999")
    assert (second.customer_id, second.email, second.phone) == ("K-1", "", "")


# --- event time -----------------------------------------------------------------------


def test_event_time_ingested_is_the_write_time(client, tenant_a, token_a, created_config):
    before = datetime.now(tz=UTC)
    body = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", customFieldTimestamps={"customFieldTimestamp01": T0})],
        config_id=created_config.config_id,
    ).json()
    after = datetime.now(tz=UTC)

    assert body["warnings"] == []
    [event] = events_of(tenant_a)
    record = EntityRecord.objects.get(organization=tenant_a.organization, key="R-1")
    assert abs(ms(event.event_at) - ms(record.created_at)) <= 1
    assert ms(before) - 1 <= ms(event.event_at) <= ms(after) + 1


@pytest.mark.parametrize("sent", [T0, str(T0), str(T0 // 1000), "2023-11-14T22:13:20.123Z"])
def test_event_time_from_a_timestamp_field(client, tenant_a, token_a, sent):
    config = config_create(tenant_a, event_time="customFieldTimestamp01")

    body = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", customFieldTimestamps={"customFieldTimestamp01": sent})],
        config_id=config.config_id,
    ).json()

    assert body["warnings"] == []
    [event] = events_of(tenant_a)
    expected = T0 if sent != str(T0 // 1000) else T0 // 1000 * 1000
    assert event.event_at == at_ms(expected)


def test_event_time_from_a_builtin_timestamp_field(client, tenant_a, token_a):
    config = config_create(tenant_a, "Changed", event_name="touched", event_time="updatedAt")
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1", updatedAt=T0)])

    ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", **texts(customField01="gold"))],
        config_id=config.config_id,
    )

    # The entry did not send updatedAt: the stored value (after the merge) is the time.
    [event] = events_of(tenant_a)
    assert event.event_at == at_ms(T0)


def test_event_time_field_empty_falls_back_to_write_time_with_a_warning(client, tenant_a, token_a):
    config = config_create(tenant_a, event_time="customFieldTimestamp01")

    body = ingest(
        client,
        tenant_a,
        token_a,
        [
            member(tenant_a, "R-1", customFieldTimestamps={"customFieldTimestamp01": T0}),
            member(tenant_a, "R-2"),
        ],
        config_id=config.config_id,
    ).json()

    assert body["success"] is True
    assert body["events"]["generated"] == 2
    [warning] = body["warnings"]
    assert "customFieldTimestamp01" in warning
    assert "R-2" in warning
    assert "write time" in warning
    with_time, without_time = events_of(tenant_a)
    assert with_time.event_at == at_ms(T0)
    record = EntityRecord.objects.get(organization=tenant_a.organization, key="R-2")
    assert abs(ms(without_time.event_at) - ms(record.created_at)) <= 1
    log = IngestionRequest.objects.get(organization=tenant_a.organization)
    assert log.warnings == body["warnings"]


# --- event attributes -----------------------------------------------------------------


def test_event_attributes(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        event_name="membership_signup",
        channel="Offline",
        category="Transaction",
        sub_category="in-store",
    )

    response = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1")],
        config_id=config.config_id,
    )

    body = response.json()
    assert response["X-Request-Id"] == body["requestId"]
    [event] = events_of(tenant_a)
    assert event.organization == tenant_a.organization
    assert event.config == config
    assert event.event_id == body["results"][0]["eventId"]
    assert event.source == tenant_a.mom_code
    assert event.source_id == "R-1"
    assert event.condition == "Created"
    assert event.channel == "Offline"
    assert event.event_ctg == "Transaction"
    assert event.event_ctg2 == "in-store"
    assert event.event_ctg3 == ""
    assert event.event_name == "membership_signup"
    assert event.request_id == body["requestId"]

    listed = user_events_get(client, tenant_a, token_a).json()
    assert listed["events"] == [
        {
            "eventId": event.event_id,
            "jeConfigId": config.config_id,
            "jeEventKey": config.event_key,
            "source": tenant_a.mom_code,
            "sourceId": "R-1",
            "condition": "Created",
            "channel": "Offline",
            "eventCtg": "Transaction",
            "eventCtg2": "in-store",
            "eventCtg3": "",
            "eventName": "membership_signup",
            "eventAt": ms(event.event_at),
            "value": None,
            "eventLabels": [],
            "eventLabel2s": [],
            "eventLabel3s": [],
            "customerId": "",
            "email": "",
            "phone": "",
            "note": "",
            "properties": {},
            "requestId": body["requestId"],
        }
    ]


def test_events_on_a_system_model(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        data_model=system_model(tenant_a, "customer-identity"),
        event_name="customer_created",
        update_values=[{"target": "properties.name", "field": "fullName"}],
    )
    entries = [
        {"customerId": "C-1", "email": "c1@acme.test", "fullName": "Lan Nguyen"},
        {"customerId": "C-2", "phone": "0902", "fullName": "Minh Tran"},
    ]

    body = ingest(
        client,
        tenant_a,
        token_a,
        entries,
        object_type="customer-identity",
        event_key=config.event_key,
    ).json()

    assert body["success"] is True, body
    assert body["events"]["generated"] == 2
    first, second = events_of(tenant_a)
    assert (first.source, first.source_id) == ("customer-identity", "C-1")
    assert (first.customer_id, first.email, first.phone) == ("C-1", "c1@acme.test", "")
    assert first.properties == {"name": "Lan Nguyen"}
    assert (second.source, second.source_id, second.phone) == ("customer-identity", "C-2", "0902")

    resend = ingest(
        client,
        tenant_a,
        token_a,
        [{**entries[0], "fullName": "Lan Nguyen Thi"}],
        object_type="customer-identity",
        config_id=config.config_id,
    ).json()
    assert resend["results"][0]["action"] == "updated"
    assert resend["events"]["generated"] == 0
    assert len(events_of(tenant_a)) == 2


# --- limits ---------------------------------------------------------------------------


def test_events_past_the_cap_are_dropped_with_a_warning(
    client, tenant_a, token_a, created_config, settings
):
    settings.CDP_MAX_EVENTS_PER_REQUEST = 3

    body = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, f"R-{i}") for i in range(5)],
        config_id=created_config.config_id,
    ).json()

    assert body["success"] is True
    assert body["created"] == 5
    assert body["events"] == {"generated": 3, "suppressed": 0, "dropped": 2}
    assert [("eventId" in r) for r in body["results"]] == [True, True, True, False, False]
    [warning] = body["warnings"]
    assert "2 events dropped" in warning
    assert "3" in warning
    assert sorted(e.source_id for e in events_of(tenant_a)) == ["R-0", "R-1", "R-2"]
    assert EntityRecord.objects.filter(organization=tenant_a.organization).count() == 5
    log = IngestionRequest.objects.get(organization=tenant_a.organization)
    assert (log.events_generated, log.events_dropped) == (3, 2)


def test_init_data_suppresses_events_but_stores_records(client, tenant_a, token_a):
    config = config_create(
        tenant_a,
        filters={"conditions": [{"field": "customField01", "operator": "eq", "value": "gold"}]},
    )
    entries = [
        member(tenant_a, "R-1", **texts(customField01="gold")),
        member(tenant_a, "R-2", **texts(customField01="gold")),
        member(tenant_a, "R-3", **texts(customField01="silver")),
    ]

    body = ingest(
        client, tenant_a, token_a, entries, config_id=config.config_id, init_data="true"
    ).json()

    assert body["success"] is True
    assert body["initData"] is True
    assert body["created"] == 3
    assert body["events"] == {"generated": 0, "suppressed": 2, "dropped": 0}
    assert all("eventId" not in r for r in body["results"])
    assert events_of(tenant_a) == []
    assert EntityRecord.objects.filter(organization=tenant_a.organization).count() == 3
    log = IngestionRequest.objects.get(organization=tenant_a.organization)
    assert (log.init_data, log.events_suppressed) == (True, 2)

    # The records exist now: a later live load of the same keys creates nothing.
    live = ingest(client, tenant_a, token_a, entries, config_id=config.config_id).json()
    assert live["unchanged"] == 3
    assert live["events"]["generated"] == 0
    assert events_of(tenant_a) == []
