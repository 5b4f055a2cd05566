"""Change-aware User Events through the Data Ingestion API: the worked examples of
docs/user-events.md ("Change-aware User Events"), payload by payload, with the events read
back from GET /dhub-i/api/v1.0/user-events.

Each User Event is provisioned exactly as the docs' provisioning file writes it. A
`Changed` User Event fires only on an entry that changed a stored record (never on a
create, never on an unchanged re-send), and then only when its filter, which may read
`previous.<field>` and ask `changed`/`not_changed`, passes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from cdp.provisioning import ProvisioningInvalid, provisioning_apply, provisioning_validate
from journeys.models import UserEvent
from tests.conftest import Tenant
from tests.ingestion.conftest import Ingest, ingest_for

USER_EVENTS_URL = "/dhub-i/api/v1.0/user-events"

# The three worked examples, as the provisioning file writes them (docs/user-events.md).
TIER_UPGRADED = {
    "ref": "tier_upgraded",
    "model": "Membership",
    "trigger": "Changed",
    "eventName": "tier_upgraded",
    "eventTime": "ingested",
    "channel": "None",
    "category": "UserIdentity",
    "subCategory": "tier",
    "filter": {
        "match": "all",
        "conditions": [
            {"field": "previous.customField01", "operator": "eq", "value": "silver"},
            {"field": "customField01", "operator": "eq", "value": "gold"},
        ],
    },
    "updateValues": [
        {"target": "properties.previousTier", "field": "previous.customField01"},
        {"target": "properties.tier", "field": "customField01"},
    ],
    "enabled": True,
}
POINTS_CROSSED = {
    "ref": "points_crossed_1000",
    "model": "Membership",
    "trigger": "Changed",
    "eventName": "points_crossed_1000",
    "eventTime": "ingested",
    "channel": "None",
    "category": "Transaction",
    "subCategory": "loyalty",
    "filter": {
        "match": "all",
        "conditions": [
            {"field": "previous.customFieldLong01", "operator": "lt", "value": 1000},
            {"field": "customFieldLong01", "operator": "gte", "value": 1000},
        ],
    },
    "updateValues": [
        {"target": "value", "field": "previous.customFieldLong01"},
        {"target": "properties.points", "field": "customFieldLong01"},
    ],
    "enabled": True,
}
TIER_CHANGED = {
    "ref": "tier_changed",
    "model": "Membership",
    "trigger": "Changed",
    "eventName": "tier_changed",
    "eventTime": "ingested",
    "channel": "None",
    "category": "UserIdentity",
    "subCategory": "tier",
    "filter": {
        "match": "all",
        "conditions": [{"field": "customField01", "operator": "changed"}],
    },
    "updateValues": [
        {"target": "properties.previousTier", "field": "previous.customField01"},
        {"target": "properties.tier", "field": "customField01"},
    ],
    "enabled": True,
}


@pytest.fixture
def api_a(client, tenant_a, token_a) -> Ingest:
    return Ingest(client, tenant_a, token_a)


@pytest.fixture
def api_b(tenant_b) -> Ingest:
    return ingest_for(tenant_b)


def provision(tenant: Tenant, spec: dict[str, Any]) -> tuple[str, str]:
    """Provision one User Event into the tenant's organization; its (jeConfigId, jeEventKey)."""
    organization = {"name": tenant.organization.name, "groupKey": tenant.group_key}
    document = {"organization": organization, "userEvents": [spec]}
    if errors := provisioning_validate(document):
        raise ProvisioningInvalid(errors)
    result = provisioning_apply(document=document)
    [outcome] = result.user_events
    assert outcome.status == "created"
    return outcome.config_id, outcome.event_key


def tier(value: str | None) -> dict[str, Any]:
    return {"customFieldTexts": {"customField01": value}}


def points(value: int | None) -> dict[str, Any]:
    return {"customFieldLongs": {"customFieldLong01": value}}


class Sent:
    """One ingest request's answer, and the time around it (the events' `ingested` time)."""

    def __init__(self, api: Ingest, config_id: str | None, entries: list[dict[str, Any]]):
        self.before_ms = int(time.time() * 1000) - 1
        response = api.post(entries, jeConfigId=config_id)
        self.after_ms = int(time.time() * 1000) + 1
        self.status = response.status_code
        self.body = response.json()
        assert self.status == 200, self.body

    def actions(self) -> dict[str, str]:
        return {r["refId"]: r["action"] for r in self.body["results"]}

    def fired(self) -> dict[str, str]:
        """refId → eventId of the entries that generated an event."""
        return {r["refId"]: r["eventId"] for r in self.body["results"] if "eventId" in r}

    def generated(self) -> int:
        assert self.body["events"]["suppressed"] == 0
        assert self.body["events"]["dropped"] == 0
        return self.body["events"]["generated"]


def send(api: Ingest, config_id: str | None, *entries: dict[str, Any]) -> Sent:
    return Sent(api, config_id, list(entries))


def events_listed(api: Ingest, **params: Any) -> list[dict[str, Any]]:
    """The organization's user events as the Read API lists them, oldest first."""
    response = api.client.get(
        USER_EVENTS_URL,
        params,
        headers={"TOKEN": api.token, "API_KEY": api.tenant.raw_key},
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["next"] is None
    return list(reversed(body["events"]))


def expecting(api: Ingest, spec: dict[str, Any], ids: tuple[str, str]):
    """A maker of the events `spec`'s User Event generates, as the Read API lists them."""
    config_id, event_key = ids

    def event(
        sent: Sent,
        source_id: str,
        *,
        value: float | None = None,
        properties: dict[str, Any],
        customer_id: str = "",
    ) -> tuple[Sent, dict[str, Any]]:
        """The event `sent` generated for `source_id`, but for `eventAt` (the write time,
        checked against the request's time by `assert_events`)."""
        return sent, {
            "eventId": sent.fired()[source_id],
            "jeConfigId": config_id,
            "jeEventKey": event_key,
            "source": api.tenant.mom_code,
            "sourceId": source_id,
            "condition": "Changed",
            "channel": spec["channel"],
            "eventCtg": spec["category"],
            "eventCtg2": spec["subCategory"],
            "eventCtg3": "",
            "eventName": spec["eventName"],
            "value": value,
            "eventLabels": [],
            "eventLabel2s": [],
            "eventLabel3s": [],
            "customerId": customer_id,
            "email": "",
            "phone": "",
            "note": "",
            "properties": properties,
            "requestId": sent.body["requestId"],
        }

    return event


def assert_events(
    listed: list[dict[str, Any]], expected: list[tuple[Sent, dict[str, Any]]]
) -> None:
    assert len(listed) == len(expected)
    for event, (sent, want) in zip(listed, expected, strict=True):
        assert sent.before_ms <= event["eventAt"] <= sent.after_ms
        assert {k: v for k, v in event.items() if k != "eventAt"} == want


# --- (a) tier went from silver to gold ------------------------------------------------------


def test_tier_went_from_silver_to_gold(api_a):
    ids = provision(api_a.tenant, TIER_UPGRADED)
    config_id = ids[0]
    e = api_a.entry

    # 1. Created records: a Changed User Event never fires on a create.
    first = send(
        api_a,
        config_id,
        e("M-100", customerId="C-100", **tier("silver")),
        e("M-101", customerId="C-101", **tier("gold")),
        e("M-102", customerId="C-102"),
    )
    # 2. M-100 silver → gold fires; M-101 gold → silver (the other way) and M-102 empty →
    #    gold (no previous tier: a comparison with null is false) do not.
    second = send(
        api_a,
        config_id,
        e("M-100", **tier("gold")),
        e("M-101", **tier("silver")),
        e("M-102", **tier("gold")),
    )
    # 3. M-100 gold again is unchanged; M-101 silver → gold fires; M-102 gold → silver no.
    third = send(
        api_a,
        config_id,
        e("M-100", **tier("gold")),
        e("M-101", **tier("gold")),
        e("M-102", **tier("silver")),
    )
    # 4. M-100 gold → platinum is not to gold; M-102 silver → gold fires.
    fourth = send(api_a, config_id, e("M-100", **tier("platinum")), e("M-102", **tier("gold")))

    assert first.actions() == {"M-100": "created", "M-101": "created", "M-102": "created"}
    assert first.generated() == 0
    assert second.actions() == {"M-100": "updated", "M-101": "updated", "M-102": "updated"}
    assert second.generated() == 1
    assert list(second.fired()) == ["M-100"]
    counts = ("success", "total", "created", "updated", "unchanged", "failed", "warnings")
    assert [second.body[k] for k in counts] == [True, 3, 0, 3, 0, 0, []]
    assert [sorted(r) for r in second.body["results"]] == [
        ["action", "cdpId", "eventId", "index", "refId", "status"],
        ["action", "cdpId", "index", "refId", "status"],
        ["action", "cdpId", "index", "refId", "status"],
    ]
    assert third.actions() == {"M-100": "unchanged", "M-101": "updated", "M-102": "updated"}
    assert third.generated() == 1
    assert list(third.fired()) == ["M-101"]
    assert fourth.actions() == {"M-100": "updated", "M-102": "updated"}
    assert list(fourth.fired()) == ["M-102"]

    upgrade = {"previousTier": "silver", "tier": "gold"}
    event = expecting(api_a, TIER_UPGRADED, ids)
    assert_events(
        events_listed(api_a, eventName="tier_upgraded"),
        [
            event(second, "M-100", properties=upgrade, customer_id="C-100"),
            event(third, "M-101", properties=upgrade, customer_id="C-101"),
            event(fourth, "M-102", properties=upgrade, customer_id="C-102"),
        ],
    )


def test_tier_upgrade_within_one_request_sees_the_previous_entry(api_a):
    # A key sent twice in one request: the second entry's previous tier is what the first
    # entry left, as if they came in two requests.
    ids = provision(api_a.tenant, TIER_UPGRADED)
    e = api_a.entry

    sent = send(api_a, ids[0], e("M-100", **tier("silver")), e("M-100", **tier("gold")))
    again = send(api_a, ids[0], e("M-100", **tier("silver")), e("M-100", **tier("gold")))

    assert [r["action"] for r in sent.body["results"]] == ["created", "updated"]
    assert [("eventId" in r) for r in sent.body["results"]] == [False, True]
    assert [r["action"] for r in again.body["results"]] == ["updated", "updated"]
    assert [("eventId" in r) for r in again.body["results"]] == [False, True]
    listed = events_listed(api_a)
    assert [ev["properties"] for ev in listed] == [{"previousTier": "silver", "tier": "gold"}] * 2


# --- (b) points crossed 1,000 ---------------------------------------------------------------


def test_points_crossed_1000(api_a):
    ids = provision(api_a.tenant, POINTS_CROSSED)
    config_id = ids[0]
    e = api_a.entry

    # 1. Created records: nothing fires.
    first = send(
        api_a, config_id, e("M-200", **points(950)), e("M-201", **points(1200)), e("M-202")
    )
    # 2. M-200 950 → 1200 fires; M-201 1200 → 900 (the other way) and M-202 empty → 1500
    #    (no previous points: a comparison with null is false) do not.
    second = send(
        api_a,
        config_id,
        e("M-200", **points(1200)),
        e("M-201", **points(900)),
        e("M-202", **points(1500)),
    )
    # 3. M-200 1200 again is unchanged; M-201 900 → 1000 fires; M-202 1500 → 2000 was over.
    third = send(
        api_a,
        config_id,
        e("M-200", **points(1200)),
        e("M-201", **points(1000)),
        e("M-202", **points(2000)),
    )

    assert first.actions() == {"M-200": "created", "M-201": "created", "M-202": "created"}
    assert first.generated() == 0
    assert second.actions() == {"M-200": "updated", "M-201": "updated", "M-202": "updated"}
    assert list(second.fired()) == ["M-200"]
    assert second.generated() == 1
    assert third.actions() == {"M-200": "unchanged", "M-201": "updated", "M-202": "updated"}
    assert list(third.fired()) == ["M-201"]
    assert third.generated() == 1

    event = expecting(api_a, POINTS_CROSSED, ids)
    assert_events(
        events_listed(api_a, eventName="points_crossed_1000"),
        [
            event(second, "M-200", value=950.0, properties={"points": 1200}),
            event(third, "M-201", value=900.0, properties={"points": 1000}),
        ],
    )


def test_points_cleared_or_unchanged_fire_nothing(api_a):
    ids = provision(api_a.tenant, POINTS_CROSSED)
    e = api_a.entry
    send(api_a, None, e("M-200", **points(950)), e("M-201", **points(950)))

    # M-200's points cleared (null); M-201 changes another field, its points stay 950.
    sent = send(api_a, ids[0], e("M-200", **points(None)), e("M-201", **tier("gold")))

    assert sent.actions() == {"M-200": "updated", "M-201": "updated"}
    assert sent.generated() == 0
    assert api_a.data("M-200").get("customFieldLong01") is None
    assert events_listed(api_a) == []


# --- (c) any change of a field ---------------------------------------------------------------


def test_any_change_of_the_tier(api_a):
    ids = provision(api_a.tenant, TIER_CHANGED)
    config_id = ids[0]
    e = api_a.entry

    # 1. Created records: nothing fires.
    first = send(api_a, config_id, e("M-300", **tier("silver")), e("M-301"))
    # 2. M-300 silver → gold fires; M-301's points change, its tier does not.
    second = send(api_a, config_id, e("M-300", **tier("gold")), e("M-301", **points(10)))
    # 3. M-300's tier cleared fires (no tier now); M-301's tier set fires (no tier before).
    third = send(api_a, config_id, e("M-300", **tier(None)), e("M-301", **tier("bronze")))
    # 4. Re-sends: both unchanged, nothing fires.
    fourth = send(api_a, config_id, e("M-300", **tier(None)), e("M-301", **tier("bronze")))

    assert first.actions() == {"M-300": "created", "M-301": "created"}
    assert first.generated() == 0
    assert second.actions() == {"M-300": "updated", "M-301": "updated"}
    assert list(second.fired()) == ["M-300"]
    assert third.actions() == {"M-300": "updated", "M-301": "updated"}
    assert list(third.fired()) == ["M-300", "M-301"]
    assert fourth.actions() == {"M-300": "unchanged", "M-301": "unchanged"}
    assert fourth.generated() == 0

    event = expecting(api_a, TIER_CHANGED, ids)
    assert_events(
        events_listed(api_a, eventName="tier_changed"),
        [
            event(second, "M-300", properties={"previousTier": "silver", "tier": "gold"}),
            event(third, "M-300", properties={"previousTier": "gold"}),
            event(third, "M-301", properties={"tier": "bronze"}),
        ],
    )


def test_clearing_an_empty_tier_is_no_change_of_the_tier(api_a):
    """A tier stored as "" (ingestion keeps it as sent) and then cleared with null was
    empty before and after: no change of the tier, no event."""
    ids = provision(api_a.tenant, TIER_CHANGED)
    e = api_a.entry
    send(api_a, None, e("M-300", **tier("")))

    sent = send(api_a, ids[0], e("M-300", **tier(None)))

    assert sent.actions() == {"M-300": "updated"}
    assert sent.generated() == 0
    assert events_listed(api_a) == []


def test_not_changed_fires_on_a_change_that_keeps_the_field(api_a):
    # "Points changed while the tier stayed": changed and not_changed together.
    spec = {
        **TIER_CHANGED,
        "ref": "points_changed_same_tier",
        "eventName": "points_changed_same_tier",
        "filter": {
            "match": "all",
            "conditions": [
                {"field": "customFieldLong01", "operator": "changed"},
                {"field": "customField01", "operator": "not_changed"},
            ],
        },
        "updateValues": [
            {"target": "value", "field": "customFieldLong01"},
            {"target": "note", "field": "previous.customFieldLong01"},
        ],
    }
    ids = provision(api_a.tenant, spec)
    e = api_a.entry
    send(
        api_a,
        None,
        e("M-400", **tier("gold"), **points(10)),
        e("M-401", **tier("gold"), **points(10)),
    )

    sent = send(
        api_a,
        ids[0],
        e("M-400", **points(20)),
        e("M-401", **tier("silver"), **points(20)),
    )

    assert list(sent.fired()) == ["M-400"]
    [event] = events_listed(api_a)
    assert (event["sourceId"], event["value"], event["note"]) == ("M-400", 20.0, "10")


# --- created configs, two organizations ---------------------------------------------------


def test_a_created_user_event_using_them_is_refused_when_provisioned(tenant_a):
    spec = {**TIER_UPGRADED, "ref": "tier_upgraded_on_create", "trigger": "Created"}

    with pytest.raises(ProvisioningInvalid) as refused:
        provision(tenant_a, spec)

    assert [str(error) for error in refused.value.errors] == [
        "userEvents[0].filter.conditions[0].field: previous.customField01: previous.<field> "
        "applies to Changed User Events only",
        "userEvents[0].updateValues[0].field: previous.customField01: previous.<field> "
        "applies to Changed User Events only",
    ]
    assert not UserEvent.objects.exists()


def test_a_config_of_one_organization_never_fires_for_another(api_a, api_b):
    ids_a = provision(api_a.tenant, TIER_UPGRADED)
    ids_b = provision(api_b.tenant, TIER_UPGRADED)
    a, b = api_a.entry, api_b.entry
    # The same key in both organizations, with different stored tiers.
    send(api_a, ids_a[0], a("M-100", **tier("silver")))
    send(api_b, ids_b[0], b("M-100", **tier("bronze")))

    # B names A's User Event: refused, nothing written.
    refused = api_b.post([b("M-100", **tier("gold"))], jeConfigId=ids_a[0])
    assert refused.status_code == 400
    assert refused.json()["errorCode"] == "INVALID_JOURNEY_EVENT"
    assert api_b.data("M-100")["customField01"] == "bronze"

    # B's own identical User Event reads B's previous tier (bronze), never A's (silver).
    in_b = send(api_b, ids_b[0], b("M-100", **tier("gold")))
    in_a = send(api_a, ids_a[0], a("M-100", **tier("gold")))

    assert in_b.actions() == {"M-100": "updated"}
    assert in_b.generated() == 0
    assert list(in_a.fired()) == ["M-100"]
    assert events_listed(api_b) == []
    [event] = events_listed(api_a)
    assert (event["jeConfigId"], event["source"]) == (ids_a[0], api_a.tenant.mom_code)
    assert event["properties"] == {"previousTier": "silver", "tier": "gold"}

    # B's silver → gold fires B's User Event only.
    send(api_b, ids_b[0], b("M-100", **tier("silver")))
    fired_b = send(api_b, ids_b[0], b("M-100", **tier("gold")))
    [event_b] = events_listed(api_b)
    assert event_b["eventId"] == fired_b.fired()["M-100"]
    assert event_b["jeConfigId"] == ids_b[0]
    assert event_b["source"] == api_b.tenant.mom_code
    assert len(events_listed(api_a)) == 1


# --- every field type, end to end ---------------------------------------------------------

T0 = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z

# (group, field, stored value, the same value as another wire form, another value): a
# field's previous value is read from the stored record, the value after the write from
# the entry as ingestion coerced it; the two compare by the field's type.
TYPE_CASES = [
    ("customFieldTexts", "customField01", "gold", "gold", "Gold"),
    ("customFieldLongs", "customFieldLong01", 950, "950", 951),
    ("customFieldDoubles", "customFieldDouble01", 2.0, 2, 2.5),
    ("customFieldBooleans", "customFieldBool01", False, "false", True),
    ("customFieldTimestamps", "customFieldTimestamp01", T0, "2023-11-14T22:13:20.123Z", T0 + 1),
    ("customFieldListTexts", "customFieldList01", ["vip", "new"], ["vip", "new"], ["vip"]),
]


@pytest.mark.parametrize(
    ("group", "field", "stored", "same", "other"), TYPE_CASES, ids=[c[1] for c in TYPE_CASES]
)
def test_changed_and_previous_on_every_field_type(api_a, group, field, stored, same, other):
    spec = {
        **TIER_CHANGED,
        "ref": f"{field}_changed",
        "eventName": f"{field}_changed",
        "filter": {"match": "all", "conditions": [{"field": field, "operator": "changed"}]},
        "updateValues": [
            {"target": "properties.before", "field": f"previous.{field}"},
            {"target": "properties.after", "field": field},
        ],
    }
    ids = provision(api_a.tenant, spec)
    e = api_a.entry

    def nickname(value: str) -> dict[str, Any]:
        return {"customFieldTexts": {"customField02": value}}

    def entry(key: str, value: Any, nick: str) -> dict[str, Any]:
        fields = {group: {field: value}}
        if group == "customFieldTexts":
            fields[group]["customField02"] = nick
            return e(key, **fields)
        return e(key, **fields, **nickname(nick))

    send(api_a, None, entry("M-1", stored, "a"), entry("M-2", stored, "a"))
    # M-1: the same value (as another wire form) and another field changed: updated, but
    # its field did not change. M-2: its field changed.
    sent = send(api_a, ids[0], entry("M-1", same, "b"), entry("M-2", other, "b"))

    assert sent.actions() == {"M-1": "updated", "M-2": "updated"}
    assert list(sent.fired()) == ["M-2"]
    [event] = events_listed(api_a)
    assert event["properties"] == {"before": stored, "after": other}


def test_a_dry_run_shows_the_change_aware_event_and_writes_nothing(api_a):
    ids = provision(api_a.tenant, TIER_UPGRADED)
    e = api_a.entry
    send(api_a, None, e("M-100", **tier("silver")), e("M-101", **tier("gold")))
    entries = [e("M-100", **tier("gold")), e("M-101", **tier("silver"))]

    dry = api_a.client.post(
        "/dhub-i/api/v1.0/ingest?dryRun=true",
        data=json.dumps(
            {
                "objectType": "custom-model",
                "source": "CRM",
                "jeConfigId": ids[0],
                "entries": entries,
            }
        ),
        content_type="application/json",
        headers={"TOKEN": api_a.token, "API_KEY": api_a.tenant.raw_key},
    ).json()
    assert events_listed(api_a) == []
    assert api_a.data("M-100")["customField01"] == "silver"
    real = send(api_a, ids[0], *entries)

    assert dry["dryRun"] is True
    assert dry["events"] == real.body["events"] == {"generated": 1, "suppressed": 0, "dropped": 0}
    shown, not_shown = dry["results"]
    assert "event" not in not_shown
    assert shown["changes"] == {"customField01": {"from": "silver", "to": "gold"}}
    [stored] = events_listed(api_a)
    assert stored["eventId"] == real.fired()["M-100"]
    without_ids = {k: v for k, v in stored.items() if k not in ("eventId", "requestId", "eventAt")}
    assert {k: v for k, v in shown["event"].items() if k != "eventAt"} == without_ids
    assert without_ids["properties"] == {"previousTier": "silver", "tier": "gold"}


def test_previous_values_of_a_system_model(api_a):
    spec = {
        **TIER_CHANGED,
        "ref": "renamed",
        "model": "customer-identity",
        "eventName": "customer_renamed",
        "filter": {"conditions": [{"field": "fullName", "operator": "changed"}]},
        "updateValues": [
            {"target": "properties.previousName", "field": "previous.fullName"},
            {"target": "note", "field": "fullName"},
        ],
    }
    ids = provision(api_a.tenant, spec)

    def customer(**fields: Any) -> dict[str, Any]:
        return {"customerId": "C-1", "email": "c1@acme.test", **fields}

    def post(entry: dict[str, Any]) -> dict[str, Any]:
        response = api_a.post([entry], object_type="customer-identity", jeConfigId=ids[0])
        assert response.status_code == 200, response.json()
        return response.json()

    created = post(customer(fullName="Lan Nguyen"))
    renamed = post(customer(fullName="Lan Nguyen Thi"))
    email_only = post(customer(fullName="Lan Nguyen Thi", email="lan@acme.test"))

    assert created["events"]["generated"] == 0
    assert renamed["events"]["generated"] == 1
    assert email_only["results"][0]["action"] == "updated"
    assert email_only["events"]["generated"] == 0
    [event] = events_listed(api_a)
    assert (event["source"], event["sourceId"]) == ("customer-identity", "C-1")
    assert (event["note"], event["properties"]) == (
        "Lan Nguyen Thi",
        {"previousName": "Lan Nguyen"},
    )
    assert (event["customerId"], event["email"]) == ("C-1", "c1@acme.test")
