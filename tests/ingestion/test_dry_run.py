"""`POST /dhub-i/api/v1.0/ingest?dryRun=true`: every check and the whole plan, nothing written.

Most tests send a request as a dry run, then the same request for real, right after it:
the dry run must leave every row of every tenant table as it was, and answer what the
real request then answers, but for the documented differences (`dryRun`, `requestId`, a
would-be-created record's `cdpId`, no `eventId`, and the `changes` and `event` it adds).
Tenant B always holds rows of its own (the autouse fixture): no dry run of A may see them
or touch them.

Event times: most User Events here take their time from a record field
(customFieldTimestamp01), so that the dry run's event equals the stored one exactly
without faking any clock. The one test of an "ingested" event time fixes
`django.utils.timezone.now` across both requests instead: that event time is the time of
the request, which two requests cannot share otherwise.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from cdp.callback_settings import callback_settings_set
from cdp.models import EntityRecord
from ingestion.models import CallbackDelivery, IdempotencyKey, IngestionRequest
from journeys.models import JourneyEventConfig, UserEvent
from tests.ingestion.conftest import Ingest, ingest_for
from tests.journeys.conftest import config_create

pytestmark = pytest.mark.django_db

INGEST_URL = "/dhub-i/api/v1.0/ingest"
RECORDS_URL = "/dhub-i/api/v1.0/records/custom-model"
USER_EVENTS_URL = "/dhub-i/api/v1.0/user-events"
TENANT_APPS = ("cdp", "ingestion", "journeys")
# The tables a plan writes: their rows are compared whole, so an update shows too.
WRITTEN = (EntityRecord, UserEvent, IngestionRequest, CallbackDelivery, IdempotencyKey)
T0 = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z
KEY = "key-0001"


# --- requests and reads ---------------------------------------------------------------------


def auth(api: Ingest) -> dict[str, str]:
    return {"TOKEN": api.token, "API_KEY": api.tenant.raw_key}


def send(
    api: Ingest,
    entries: list[Any],
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    object_type: str = "custom-model",
    **body: Any,
):
    """POST an ingest request as a real client does, with `query` as the query string."""
    payload = {
        "objectType": object_type,
        "source": "CRM",
        "jeConfigId": None,
        "jeEventKey": None,
        "entries": entries,
        **body,
    }
    return api.client.post(
        f"{INGEST_URL}?{urlencode(query)}" if query else INGEST_URL,
        data=json.dumps(payload),
        content_type="application/json",
        headers={**auth(api), **(headers or {})},
    )


def dry_send(api: Ingest, entries: list[Any], *, query: dict[str, str] | None = None, **kw):
    return send(api, entries, query={"dryRun": "true", **(query or {})}, **kw)


def read_data(api: Ingest, key: str) -> dict[str, Any] | None:
    """A record's `data` through the Read API; None when there is no such record."""
    response = api.client.get(
        f"{RECORDS_URL}/{key}", {"momCode": api.tenant.mom_code}, headers=auth(api)
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.content
    return response.json()["record"]["data"]


def listed_events(api: Ingest) -> dict[str, dict[str, Any]]:
    """The tenant's user events as the Read API lists them, by eventId."""
    response = api.client.get(USER_EVENTS_URL, {"limit": 200}, headers=auth(api))
    assert response.status_code == 200, response.content
    return {event["eventId"]: event for event in response.json()["events"]}


def db_state() -> dict[str, Any]:
    """Every table of the tenant apps: its row count; for the tables a plan writes, also
    every row, so that an update is seen as well as an insert."""
    counts = {
        model._meta.label: model.objects.count()
        for app in TENANT_APPS
        for model in apps.get_app_config(app).get_models()
    }
    rows = {model._meta.label: list(model.objects.order_by("pk").values()) for model in WRITTEN}
    return {"counts": counts, "rows": rows}


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """What changed between two `data` of the Read API, in the dry run's `changes` shape."""
    before, after = before or {}, after or {}
    return {
        name: {"from": before.get(name), "to": after.get(name)}
        for name in {**before, **after}
        if before.get(name) != after.get(name)
    }


def event_without_ids(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("eventId", "requestId")}


# --- the dry run against the real request -----------------------------------------------------


def _dry_shown_as_real(dry: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in dry.items() if k not in ("dryRun", "requestId")}
    body["results"] = [
        {k: v for k, v in r.items() if k not in ("changes", "event")} for r in dry["results"]
    ]
    return body


def _real_shown_as_dry(real: dict[str, Any], existing_ids: set[str]) -> dict[str, Any]:
    """The real answer as the dry run must show it: no eventId, and null for every cdpId
    that no stored record (or stored event) had before the requests."""
    body = {k: v for k, v in real.items() if k != "requestId"}
    body["results"] = [
        {
            **{k: v for k, v in r.items() if k != "eventId"},
            **({"cdpId": None} if "cdpId" in r and r["cdpId"] not in existing_ids else {}),
        }
        for r in real["results"]
    ]
    return body


def existing_ids(api: Ingest) -> set[str]:
    organization = api.tenant.organization
    return {
        *EntityRecord.objects.filter(organization=organization).values_list("cdp_id", flat=True),
        *UserEvent.objects.filter(organization=organization).values_list("event_id", flat=True),
    }


def dry_then_real(
    api: Ingest,
    entries: list[Any],
    *,
    query: dict[str, str] | None = None,
    **kw: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request as a dry run, then for real: the dry run wrote nothing, in any table
    of any tenant, and answered the real answer but for the documented differences.
    Returns both bodies."""
    ids = existing_ids(api)
    before = db_state()
    dry = dry_send(api, entries, query=query, **kw)
    assert db_state() == before
    real = send(api, entries, query=query, **kw)

    dry_body, real_body = dry.json(), real.json()
    assert dry.status_code == real.status_code, (dry_body, real_body)
    assert dry_body["dryRun"] is True
    assert "dryRun" not in real_body
    assert dry_body["requestId"] == dry["X-Request-Id"] != real_body["requestId"]
    shown, expected = _dry_shown_as_real(dry_body), _real_shown_as_dry(real_body, ids)
    assert shown.pop("results") == expected.pop("results")
    assert shown == expected
    for dry_result, real_result in zip(dry_body["results"], real_body["results"], strict=True):
        assert "eventId" not in dry_result
        assert ("event" in dry_result) == ("eventId" in real_result)
        assert ("changes" in dry_result) == (real_result["status"] == 200)
    return dry_body, real_body


def assert_events_stored_as_shown(api: Ingest, dry: dict[str, Any], real: dict[str, Any]):
    """Each `event` of the dry run is the event the real request stored for that entry, as
    the Read API lists it (but for eventId and requestId); the real request stored no other."""
    listed = listed_events(api)
    stored = {i: e for i, e in listed.items() if e["requestId"] == real["requestId"]}
    shown = {
        r["eventId"]: d["event"]
        for d, r in zip(dry["results"], real["results"], strict=True)
        if "event" in d
    }
    assert set(stored) == set(shown)
    for event_id, event in shown.items():
        assert event == event_without_ids(stored[event_id])


# --- fixtures ---------------------------------------------------------------------------------


def purchase(**fields: Any) -> dict[str, Any]:
    """A `user-event` entry."""
    return {
        "source": "PurchaseOrder",
        "sourceId": "PO-1",
        "channel": "Online",
        "eventCtg": "Transaction",
        "eventName": "purchase",
        "eventAt": T0,
        **fields,
    }


@pytest.fixture(autouse=True)
def other_tenant(api_b) -> Ingest:
    """Tenant B holds the keys, the event, a fired `Created` User Event and the
    Idempotency-Key the tests use for A."""
    config = config_create(api_b.tenant, "Created")
    keys = ["R-1", "R-2", "R-3", "R-4", "NEW-1", "OLD-1", "OLD-2"]
    stored = send(
        api_b,
        [api_b.entry(k, customField01="b-value") for k in keys],
        jeConfigId=config.config_id,
        headers={"Idempotency-Key": KEY},
    )
    assert stored.json()["created"] == len(keys), stored.content
    assert send(api_b, [purchase()], object_type="user-event").json()["created"] == 1
    return api_b


def b_rows(api_b: Ingest) -> list[tuple]:
    return list(api_b.records().order_by("key").values_list("key", "cdp_id", "data", "updated_at"))


# --- created, updated, unchanged, rejected ----------------------------------------------------


def test_a_mixed_request_answers_as_the_real_one_and_says_what_would_change(api_a):
    """Created (with coerced values), updated (a change, a cleared field, a replaced list),
    unchanged and rejected entries: the real answer, a would-be-created record's cdpId
    null, and each stored result's `changes` the difference the Read API then shows."""
    api_a.post(
        [
            api_a.entry("OLD-1", phone="0901", customField01="gold", customFieldList01=["a", "b"]),
            api_a.entry("OLD-2", customField01="same"),
        ]
    )
    stored_ids = {k: api_a.record(k).cdp_id for k in ("OLD-1", "OLD-2")}
    keys = ("NEW-1", "OLD-1", "OLD-2")
    before = {key: read_data(api_a, key) for key in keys}
    entries = [
        api_a.entry(
            "NEW-1",
            customerId="C-1",
            customFieldLongs={"customFieldLong01": "7"},
            customFieldTimestamps={"customFieldTimestamp01": "2024-01-02T03:04:05Z"},
        ),
        api_a.entry(
            "OLD-1",
            phone=None,
            customField01="platinum",
            customFieldListTexts={"customFieldList01": ["c"]},
        ),
        api_a.entry("OLD-2", customField01="same", email=None),
        api_a.entry("BAD-1", customFieldLongs={"customFieldLong01": "4.2"}),
        {"refId": "BAD-2"},
    ]

    dry, real = dry_then_real(api_a, entries)

    after = {key: read_data(api_a, key) for key in keys}
    assert dry == {
        "success": False,
        "errorCode": "INVALID_ENTRIES",
        "message": "2 of 5 entries rejected",
        "requestId": dry["requestId"],
        "dryRun": True,
        "objectType": "custom-model",
        "initData": False,
        "total": 5,
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "failed": 2,
        "events": {"generated": 0, "suppressed": 0, "dropped": 0},
        "results": [
            {
                "index": 0,
                "refId": "NEW-1",
                "status": 200,
                "action": "created",
                "cdpId": None,
                "changes": {
                    "refId": {"from": None, "to": "NEW-1"},
                    "customerId": {"from": None, "to": "C-1"},
                    "customFieldLong01": {"from": None, "to": 7},
                    "customFieldTimestamp01": {"from": None, "to": 1704164645000},
                },
            },
            {
                "index": 1,
                "refId": "OLD-1",
                "status": 200,
                "action": "updated",
                "cdpId": stored_ids["OLD-1"],
                "changes": {
                    "phone": {"from": "0901", "to": None},
                    "customField01": {"from": "gold", "to": "platinum"},
                    "customFieldList01": {"from": ["a", "b"], "to": ["c"]},
                },
            },
            {
                "index": 2,
                "refId": "OLD-2",
                "status": 200,
                "action": "unchanged",
                "cdpId": stored_ids["OLD-2"],
                "changes": {},
            },
            {
                "index": 3,
                "refId": "BAD-1",
                "status": 101,
                "errorMessage": "Invalid value of customFieldLongs.customFieldLong01: "
                "must be an integer",
            },
            {"index": 4, "refId": "BAD-2", "status": 101, "errorMessage": "Missing momCode"},
        ],
        "warnings": [],
    }
    for result in dry["results"][:3]:
        key = result["refId"]
        assert result["changes"] == diff(before[key], after[key])
    assert real["results"][0]["cdpId"] == api_a.record("NEW-1").cdp_id
    assert api_a.log().filter(request_id=dry["requestId"]).count() == 0
    assert api_a.log().filter(request_id=real["requestId"]).count() == 1


def test_repeated_dry_runs_write_nothing_and_answer_alike(api_a):
    """A dry run of new and changed records leaves every table as it was: the same dry run
    sent again sees the same stored records and answers the same."""
    api_a.post([api_a.entry("OLD-1", customField01="a")])
    before = db_state()
    entries = [api_a.entry("NEW-1", customField01="x"), api_a.entry("OLD-1", customField01="b")]

    first = dry_send(api_a, entries).json()
    second = dry_send(api_a, entries).json()

    assert db_state() == before
    assert [r["action"] for r in first["results"]] == ["created", "updated"]
    assert _dry_shown_as_real(first) == _dry_shown_as_real(second)
    assert api_a.data("OLD-1") == {"refId": "OLD-1", "customField01": "a"}
    assert not api_a.records().filter(key="NEW-1").exists()


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "tRuE"])
def test_dry_run_true_in_any_case_is_a_dry_run(api_a, value):
    """`dryRun=true`, in any case, plans without writing."""
    before = db_state()

    response = send(api_a, [api_a.entry("R-1")], query={"dryRun": value})

    body = response.json()
    assert response.status_code == 200, body
    assert body["dryRun"] is True
    assert body["results"][0]["action"] == "created"
    assert db_state() == before


@pytest.mark.parametrize("value", ["false", "FALSE", "False"])
def test_dry_run_false_in_any_case_is_a_real_request(api_a, value):
    """`dryRun=false`, in any case, is a real request: it writes, and its answer has no
    `dryRun` key."""
    response = send(api_a, [api_a.entry("R-1")], query={"dryRun": value})

    body = response.json()
    assert response.status_code == 200, body
    assert "dryRun" not in body
    assert body["results"][0]["cdpId"] == api_a.record("R-1").cdp_id
    assert api_a.log().filter(request_id=body["requestId"]).count() == 1


def test_every_entry_rejected_answers_400_invalid_entries_with_dry_run(api_a):
    """A dry run whose every entry is rejected answers the real 400 INVALID_ENTRIES body,
    with `dryRun`, and logs nothing."""
    dry, real = dry_then_real(api_a, [{"refId": "R-1"}, api_a.entry("R-2", bogus=1)])

    assert dry == {
        "success": False,
        "errorCode": "INVALID_ENTRIES",
        "message": "2 of 2 entries rejected",
        "requestId": dry["requestId"],
        "dryRun": True,
        "objectType": "custom-model",
        "initData": False,
        "total": 2,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "failed": 2,
        "events": {"generated": 0, "suppressed": 0, "dropped": 0},
        "results": [
            {"index": 0, "refId": "R-1", "status": 101, "errorMessage": "Missing momCode"},
            {"index": 1, "refId": "R-2", "status": 101, "errorMessage": "Unknown field: bogus"},
        ],
        "warnings": [],
    }
    assert not api_a.log().filter(request_id=dry["requestId"]).exists()
    assert api_a.log().get(request_id=real["requestId"]).status == 400


# --- ignoredUpdateCfs and repeated keys --------------------------------------------------------


def test_ignored_update_cfs_plan_as_the_real_request(api_a):
    """`ignoredUpdateCfs`: an ignored field is no change of a stored record (updated on the
    others, unchanged when only ignored fields differ), is written on create, and an
    untagged model ignores the list with the real request's warning."""
    plain = api_a.custom_model("Plain", ["customField01"])
    api_a.post(
        [
            api_a.entry("OLD-1", customField01="gold", customField02="Bob"),
            api_a.entry("OLD-2", customField01="gold"),
            {"momCode": plain.mom_code, "refId": "P-1", "customField01": "gold"},
        ]
    )
    entries = [
        api_a.entry("OLD-1", customField01="silver", customField02="Ann"),
        api_a.entry("OLD-2", customFieldTexts={"customField01": None}),
        api_a.entry("NEW-1", customField01="silver"),
        {"momCode": plain.mom_code, "refId": "P-1", "customField01": "silver"},
    ]

    dry, _ = dry_then_real(api_a, entries, ignoredUpdateCfs=["customField01"])

    assert [(r["refId"], r["action"], r["changes"]) for r in dry["results"]] == [
        ("OLD-1", "updated", {"customField02": {"from": "Bob", "to": "Ann"}}),
        ("OLD-2", "unchanged", {}),
        (
            "NEW-1",
            "created",
            {
                "refId": {"from": None, "to": "NEW-1"},
                "customField01": {"from": None, "to": "silver"},
            },
        ),
        ("P-1", "updated", {"customField01": {"from": "gold", "to": "silver"}}),
    ]
    assert len(dry["warnings"]) == 1 and "Plain" in dry["warnings"][0]
    assert api_a.data("OLD-1") == {
        "refId": "OLD-1",
        "customField01": "gold",
        "customField02": "Ann",
    }
    assert api_a.data("P-1", plain) == {"refId": "P-1", "customField01": "silver"}


def test_a_key_repeated_in_one_request_plans_as_two_requests_in_sequence(api_a):
    """A key sent twice behaves as two requests in sequence in a dry run too: each entry's
    `changes` start from what the previous one left. A new key sent twice is a record that
    would be created, so neither of its results has a cdpId; a stored key's both have the
    stored one."""
    api_a.post([api_a.entry("OLD-1", customField01="a", customField02="keep")])
    stored_id = api_a.record("OLD-1").cdp_id
    entries = [
        api_a.entry("NEW-1", customField01="gold"),
        api_a.entry("NEW-1", customFieldLongs={"customFieldLong01": 7}),
        api_a.entry("OLD-1", customField01="b"),
        api_a.entry("OLD-1", customField01="c"),
        api_a.entry("NEW-1", customFieldLongs={"customFieldLong01": 7}),
    ]

    dry, real = dry_then_real(api_a, entries)

    assert [(r["action"], r["cdpId"], r["changes"]) for r in dry["results"]] == [
        (
            "created",
            None,
            {"refId": {"from": None, "to": "NEW-1"}, "customField01": {"from": None, "to": "gold"}},
        ),
        ("updated", None, {"customFieldLong01": {"from": None, "to": 7}}),
        ("updated", stored_id, {"customField01": {"from": "a", "to": "b"}}),
        ("updated", stored_id, {"customField01": {"from": "b", "to": "c"}}),
        ("unchanged", None, {}),
    ]
    assert len({r["cdpId"] for r in real["results"]}) == 2
    assert api_a.data("NEW-1") == {
        "refId": "NEW-1",
        "customField01": "gold",
        "customFieldLong01": 7,
    }


# --- User Events -----------------------------------------------------------------------------


def member_fields(tier: str, points: int, at: int = T0, **fields: Any) -> dict[str, Any]:
    return {
        "customField01": tier,
        "customFieldLong01": points,
        "customFieldTimestamp01": at,
        **fields,
    }


GOLD_ONLY = {
    "match": "all",
    "conditions": [{"field": "customField01", "operator": "eq", "value": "gold"}],
}
UPDATE_VALUES = [
    {"target": "value", "field": "customFieldLong01"},
    {"target": "note", "field": "customField02"},
    {"target": "properties.tier", "field": "customField01"},
    {"target": "eventLabels", "value": ["vip"]},
]


def test_created_user_event_with_filter_and_update_values_is_shown_as_it_is_stored(api_a):
    """A `Created` User Event with a filter and update values: the dry run shows, on each
    entry that fires, the event the real request then stores; filtered and updated records
    fire in neither."""
    config = config_create(
        api_a.tenant,
        "Created",
        channel="Online",
        sub_category="signup",
        event_time="customFieldTimestamp01",
        filters=GOLD_ONLY,
        update_values=UPDATE_VALUES,
    )
    api_a.post([api_a.entry("OLD-1", **member_fields("gold", 1))])
    entries = [
        api_a.entry("R-1", customerId="C-1", **member_fields("gold", 120, customField02="Ann")),
        api_a.entry("R-2", **member_fields("silver", 5)),
        api_a.entry("OLD-1", **member_fields("gold", 2)),
        api_a.entry("R-3", email="r3@acme.test", **member_fields("gold", 3, T0 + 1000)),
    ]

    dry, real = dry_then_real(api_a, entries, jeConfigId=config.config_id)

    assert dry["events"] == {"generated": 2, "suppressed": 0, "dropped": 0}
    assert [r["refId"] for r in dry["results"] if "event" in r] == ["R-1", "R-3"]
    assert dry["results"][0]["event"] == {
        "jeConfigId": config.config_id,
        "jeEventKey": config.event_key,
        "source": api_a.tenant.mom_code,
        "sourceId": "R-1",
        "condition": "Created",
        "channel": "Online",
        "eventCtg": "UserIdentity",
        "eventCtg2": "signup",
        "eventCtg3": "",
        "eventName": "membership_created",
        "eventAt": T0,
        "value": 120.0,
        "eventLabels": ["vip"],
        "eventLabel2s": [],
        "eventLabel3s": [],
        "customerId": "C-1",
        "email": "",
        "phone": "",
        "note": "Ann",
        "properties": {"tier": "gold"},
    }
    assert dry["results"][3]["event"]["eventAt"] == T0 + 1000
    assert dry["results"][3]["event"]["email"] == "r3@acme.test"
    assert_events_stored_as_shown(api_a, dry, real)


def test_changed_user_event_with_filter_and_update_values_is_shown_as_it_is_stored(api_a):
    """A `Changed` User Event: only updates whose record passes the filter fire, in the
    dry run as for real, and each `event` is the stored one."""
    config = config_create(
        api_a.tenant,
        "Changed",
        event_name="membership_changed",
        event_time="customFieldTimestamp01",
        filters=GOLD_ONLY,
        update_values=UPDATE_VALUES,
    )
    api_a.post([api_a.entry(k, **member_fields("silver", 1)) for k in ("R-1", "R-2", "R-3")])
    entries = [
        api_a.entry("R-1", customFieldTexts={"customField01": "gold", "customField02": "x"}),
        api_a.entry("R-2", customField02="still silver"),
        api_a.entry("R-3", **member_fields("silver", 1)),
        api_a.entry("R-4", **member_fields("gold", 9)),
    ]

    dry, real = dry_then_real(api_a, entries, jeEventKey=config.event_key)

    assert [r["action"] for r in dry["results"]] == ["updated", "updated", "unchanged", "created"]
    assert dry["events"] == {"generated": 1, "suppressed": 0, "dropped": 0}
    [fired] = [r for r in dry["results"] if "event" in r]
    assert fired["refId"] == "R-1"
    assert fired["changes"] == {
        "customField01": {"from": "silver", "to": "gold"},
        "customField02": {"from": None, "to": "x"},
    }
    assert (fired["event"]["condition"], fired["event"]["eventAt"]) == ("Changed", T0)
    assert (fired["event"]["value"], fired["event"]["note"]) == (1.0, "x")
    assert fired["event"]["properties"] == {"tier": "gold"}
    assert_events_stored_as_shown(api_a, dry, real)


def test_an_ingestion_time_event_takes_the_time_of_the_request(api_a, monkeypatch):
    """With the default event time ("ingested") the event's eventAt is the request's time.
    The clock is fixed across both requests (the pipeline reads
    `django.utils.timezone.now`), so that the dry run's event can equal the stored one."""
    config = config_create(api_a.tenant, "Created")
    fixed = timezone.now().replace(microsecond=456_000)
    monkeypatch.setattr(timezone, "now", lambda: fixed)

    dry, real = dry_then_real(api_a, [api_a.entry("R-1")], jeConfigId=config.config_id)

    assert dry["results"][0]["event"]["eventAt"] == int(fixed.timestamp() * 1000)
    assert UserEvent.objects.get(event_id=real["results"][0]["eventId"]).event_at == fixed
    assert_events_stored_as_shown(api_a, dry, real)


def test_the_event_cap_drops_the_same_events_in_a_dry_run(api_a, settings):
    """Past CDP_MAX_EVENTS_PER_REQUEST the dry run drops the events the real request drops,
    with the same warning; only the kept ones are shown."""
    settings.CDP_MAX_EVENTS_PER_REQUEST = 2
    config = config_create(api_a.tenant, "Created", event_time="customFieldTimestamp01")
    entries = [api_a.entry(f"R-{i}", **member_fields("gold", i, T0 + i)) for i in range(1, 5)]

    dry, real = dry_then_real(api_a, entries, jeConfigId=config.config_id)

    assert dry["events"] == {"generated": 2, "suppressed": 0, "dropped": 2}
    assert [r["refId"] for r in dry["results"] if "event" in r] == ["R-1", "R-2"]
    assert dry["warnings"] == ["2 events dropped: at most 2 events are generated per request"]
    assert_events_stored_as_shown(api_a, dry, real)


def test_init_data_suppresses_the_events_of_a_dry_run(api_a):
    """`?initData=true&dryRun=true`: the events are counted suppressed, none is shown, as
    the real initData request stores none."""
    config = config_create(api_a.tenant, "Created", event_time="customFieldTimestamp01")
    entries = [api_a.entry("R-1", **member_fields("gold", 1)), api_a.entry("R-2")]

    dry, _ = dry_then_real(api_a, entries, query={"initData": "true"}, jeConfigId=config.config_id)

    assert dry["initData"] is True
    assert dry["events"] == {"generated": 0, "suppressed": 2, "dropped": 0}
    assert not any("event" in r for r in dry["results"])
    assert not UserEvent.objects.filter(organization=api_a.tenant.organization).exists()


def test_a_created_user_event_that_fired_for_a_key_shows_no_event(api_a):
    """A `Created` User Event fires once per key, ever: a record created again after its
    row was removed gets no event in the dry run either; a new key still does."""
    config = config_create(api_a.tenant, "Created", event_time="customFieldTimestamp01")
    first = api_a.post(
        [api_a.entry("R-1", **member_fields("gold", 1))], jeConfigId=config.config_id
    )
    assert first.json()["events"]["generated"] == 1
    # The record is removed (as an operator may), the event it fired stays.
    api_a.records().filter(key="R-1").delete()
    entries = [
        api_a.entry("R-1", **member_fields("gold", 2)),
        api_a.entry("R-2", **member_fields("gold", 3)),
    ]

    dry, real = dry_then_real(api_a, entries, jeConfigId=config.config_id)

    assert [r["action"] for r in dry["results"]] == ["created", "created"]
    assert dry["events"] == {"generated": 1, "suppressed": 0, "dropped": 0}
    assert [r["refId"] for r in dry["results"] if "event" in r] == ["R-2"]
    assert_events_stored_as_shown(api_a, dry, real)
    assert UserEvent.objects.filter(config=config, source_id="R-1").count() == 1


# --- user-event entries --------------------------------------------------------------------------


def test_user_event_entries_new_and_already_stored(api_a):
    """`user-event` entries: a new event would be created (no cdpId yet), one already
    stored is unchanged with the stored event's id, as the real request then answers."""
    stored = send(api_a, [purchase()], object_type="user-event").json()
    stored_id = stored["results"][0]["cdpId"]
    entries = [purchase(), purchase(sourceId="PO-2", value=10)]

    dry, real = dry_then_real(api_a, entries, object_type="user-event")

    assert [(r["action"], r["cdpId"]) for r in dry["results"]] == [
        ("unchanged", stored_id),
        ("created", None),
    ]
    assert dry["results"][0]["changes"] == {}
    assert dry["results"][1]["changes"] == {
        "source": {"from": None, "to": "PurchaseOrder"},
        "sourceId": {"from": None, "to": "PO-2"},
        "channel": {"from": None, "to": "Online"},
        "eventCtg": {"from": None, "to": "Transaction"},
        "eventName": {"from": None, "to": "purchase"},
        "eventAt": {"from": None, "to": T0},
        "value": {"from": None, "to": 10},
    }
    listed = listed_events(api_a)
    assert listed[real["results"][1]["cdpId"]]["sourceId"] == "PO-2"
    assert UserEvent.objects.filter(organization=api_a.tenant.organization).count() == 2


def test_a_user_event_entry_repeated_in_one_request(api_a):
    """An event sent twice in one request is stored once: the second entry is unchanged.
    In a dry run that event would be created, so neither entry has a cdpId."""
    dry, real = dry_then_real(api_a, [purchase(), purchase()], object_type="user-event")

    assert [(r["action"], r["cdpId"]) for r in dry["results"]] == [
        ("created", None),
        ("unchanged", None),
    ]
    assert real["results"][0]["cdpId"] == real["results"][1]["cdpId"]
    assert UserEvent.objects.filter(organization=api_a.tenant.organization).count() == 1


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "1", "", "true,false"])
def test_an_invalid_dry_run_value_is_refused_by_check_7(api_a, value):
    """Any dryRun value but true/false is refused as check 7 refuses initData: 400
    MISSING_INFO, logged as a refusal, nothing planned (the request is no dry run)."""
    response = send(api_a, [api_a.entry("R-1")], query={"dryRun": value})

    body = response.json()
    assert response.status_code == 400, body
    assert body == {
        "success": False,
        "errorCode": "MISSING_INFO",
        "message": "Invalid value of: dryRun",
        "requestId": body["requestId"],
    }
    log = api_a.log().get(request_id=body["requestId"])
    assert (log.status, log.error_code, log.message) == (400, "MISSING_INFO", body["message"])
    assert not api_a.records().exists()


def test_invalid_init_data_and_dry_run_are_named_together(api_a):
    """Both flags invalid: one refusal naming both, initData first."""
    response = send(api_a, [api_a.entry("R-1")], query={"initData": "maybe", "dryRun": "maybe"})

    body = response.json()
    assert response.status_code == 400, body
    assert (body["errorCode"], body["message"]) == (
        "MISSING_INFO",
        "Invalid value of: initData, dryRun",
    )
    assert "dryRun" not in body
    assert api_a.log().get(request_id=body["requestId"]).error_code == "MISSING_INFO"


def _refusal_cases() -> list[Any]:
    def entries(api: Ingest) -> list[Any]:
        return [api.entry("R-1")]

    return [
        pytest.param(
            lambda api: {"entries": entries(api), "object_type": "no-such-type"},
            "INVALID_OBJECT_TYPE",
            "Unknown objectType: no-such-type",
            {},
            id="objectType",
        ),
        pytest.param(
            lambda api: {"entries": entries(api)},
            "MISSING_INFO",
            "Invalid value of: initData",
            {"initData": "maybe"},
            id="initData",
        ),
        pytest.param(
            lambda api: {"entries": []},
            "MISSING_INFO",
            "Invalid value of: entries",
            {},
            id="entries",
        ),
        pytest.param(
            lambda api: {"entries": entries(api), "ignoredUpdateCfs": ["customField99"]},
            "MISSING_INFO",
            "Invalid value of: ignoredUpdateCfs",
            {},
            id="ignoredUpdateCfs",
        ),
        pytest.param(
            lambda api: {"entries": entries(api), "jeConfigId": "no-such-config"},
            "INVALID_JOURNEY_EVENT",
            "Unknown jeConfigId: no-such-config",
            {},
            id="jeConfigId",
        ),
    ]


@pytest.mark.parametrize(("body", "error_code", "message", "query"), _refusal_cases())
def test_a_refused_dry_run_answers_the_refusal_with_dry_run_and_logs_nothing(
    api_a, body, error_code, message, query
):
    """A dry run refused by checks 5–13 answers the real refusal, with `dryRun`, and writes
    no log row (the real request writes one)."""
    kwargs = body(api_a)
    entries = kwargs.pop("entries")
    before = db_state()

    dry = dry_send(api_a, entries, query=query, **kwargs)

    assert db_state() == before
    real = send(api_a, entries, query=query, **kwargs)
    dry_body, real_body = dry.json(), real.json()
    assert dry.status_code == real.status_code == 400
    assert dry_body == {**real_body, "requestId": dry_body["requestId"], "dryRun": True}
    assert (dry_body["errorCode"], dry_body["message"]) == (error_code, message)
    assert not api_a.log().filter(request_id=dry_body["requestId"]).exists()
    assert api_a.log().get(request_id=real_body["requestId"]).error_code == error_code
    assert not api_a.records().exists()


def test_invalid_json_of_a_dry_run_is_refused_with_dry_run(api_a):
    """Check 6 runs on a dry run: a body that is no JSON gets the real refusal, with
    `dryRun`, and no log row."""

    def post(url: str):
        return api_a.client.post(
            url, data=b"{not json", content_type="application/json", headers=auth(api_a)
        )

    before = db_state()

    dry = post(f"{INGEST_URL}?dryRun=true")

    assert db_state() == before
    real = post(INGEST_URL)
    dry_body, real_body = dry.json(), real.json()
    assert dry.status_code == real.status_code == 400
    assert dry_body == {**real_body, "requestId": dry_body["requestId"], "dryRun": True}
    assert dry_body["errorCode"] == "INVALID_JSON"
    assert api_a.log().filter(request_id=real_body["requestId"]).exists()


def test_a_dry_run_naming_another_tenants_user_event_is_refused(api_a, other_tenant):
    """Tenant B's jeConfigId is unknown to A's dry run, as to A's real request."""
    config = JourneyEventConfig.objects.get(organization=other_tenant.tenant.organization)
    before = db_state()

    dry = dry_send(api_a, [api_a.entry("R-1")], jeConfigId=config.config_id)

    assert db_state() == before
    real = send(api_a, [api_a.entry("R-1")], jeConfigId=config.config_id)
    body = dry.json()
    assert dry.status_code == real.status_code == 400, body
    assert body == {**real.json(), "requestId": body["requestId"], "dryRun": True}
    assert (body["errorCode"], body["message"]) == (
        "INVALID_JOURNEY_EVENT",
        f"Unknown jeConfigId: {config.config_id}",
    )


# --- Idempotency-Key, callbacks ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["a b", "x" * 256, "é"])
def test_a_dry_run_does_not_check_the_idempotency_key(api_a, key):
    """A dry run ignores the Idempotency-Key header entirely: a key the real request
    refuses is no refusal of a dry run."""
    before = db_state()

    dry = dry_send(api_a, [api_a.entry("R-1")], headers={"Idempotency-Key": key})

    assert dry.status_code == 200, dry.content
    assert dry.json()["dryRun"] is True
    assert db_state() == before
    real = send(api_a, [api_a.entry("R-1")], headers={"Idempotency-Key": key})
    assert real.status_code == 400
    assert real.json()["message"] == "Invalid value of: Idempotency-Key"


def test_an_invalid_dry_run_value_does_not_ignore_the_idempotency_key(api_a):
    """Only a valid `dryRun=true` ignores the header: with an invalid value the request is
    no dry run, and its invalid Idempotency-Key is refused first."""
    response = send(
        api_a, [api_a.entry("R-1")], query={"dryRun": "yes"}, headers={"Idempotency-Key": "a b"}
    )

    body = response.json()
    assert response.status_code == 400, body
    assert body["message"] == "Invalid value of: Idempotency-Key"
    assert "dryRun" not in body


def test_a_dry_runs_idempotency_key_is_not_stored(api_a):
    """The key of a dry run is not stored: the real request with that key right after is
    processed (not replayed); only a retry of that real request is."""
    entries = [api_a.entry("R-1", customField01="gold")]
    headers = {"Idempotency-Key": KEY}

    dry, real = dry_then_real(api_a, entries, headers=headers)
    retry = send(api_a, entries, headers=headers)

    assert not IdempotencyKey.objects.filter(request_id=dry["requestId"]).exists()
    assert real["results"][0]["action"] == "created"
    assert api_a.log().get(request_id=real["requestId"]).idempotency_key == KEY
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == real
    assert IdempotencyKey.objects.filter(organization=api_a.tenant.organization).count() == 1


def test_a_dry_run_with_a_stored_idempotency_key_is_planned_not_replayed(api_a):
    """A stored key does not make a dry run a replay, nor a reuse: the dry run is planned
    against the stored records, and the key's answer is left as it was."""
    entries = [api_a.entry("R-1", customField01="gold")]
    headers = {"Idempotency-Key": KEY}
    original = send(api_a, entries, headers=headers).json()
    before = db_state()

    same = dry_send(api_a, entries, headers=headers)
    other = dry_send(api_a, [api_a.entry("R-1", customField01="silver")], headers=headers)

    assert db_state() == before
    assert not same.has_header("Idempotent-Replayed")
    assert same.json()["requestId"] != original["requestId"]
    assert [(r["action"], r["changes"]) for r in same.json()["results"]] == [("unchanged", {})]
    assert other.status_code == 200, other.content
    assert other.json()["results"][0]["changes"] == {
        "customField01": {"from": "gold", "to": "silver"}
    }
    assert api_a.log().get(request_id=original["requestId"]).replays == 0


def test_a_dry_run_with_callbacks_on_writes_no_callback_delivery(api_a, tenant_a):
    """With the organization's callback on, a dry run queues no callback; the real request
    right after it queues one."""
    callback_settings_set(
        organization=tenant_a.organization, url="https://partner.example/cb", enabled=True
    )

    _, real = dry_then_real(api_a, [api_a.entry("R-1"), {"refId": "R-2"}])

    delivery = CallbackDelivery.objects.get(organization=tenant_a.organization)
    assert delivery.request_id == real["requestId"]
    assert json.loads(delivery.body) == {
        "data": {
            "R-1": {"status": 200, "cdpId": real["results"][0]["cdpId"]},
            "R-2": {"status": 101, "errorMessage": "Missing momCode"},
        }
    }


def test_a_dry_run_counts_against_the_rate_limits(api_a, settings, clock):
    """Dry runs count against the API key's rate limits (the clock of `cdp.ratelimit` is
    frozen, so that all three requests fall in one window)."""
    settings.CDP_INGEST_RATE_LIMITS = [(2, 60)]

    dry_runs = [dry_send(api_a, [api_a.entry("R-1")]).status_code for _ in range(2)]
    real = send(api_a, [api_a.entry("R-1")])

    assert dry_runs == [200, 200]
    assert real.status_code == 429, real.content
    assert real.json()["errorCode"] == "RATE_LIMITED"
    assert not api_a.records().exists()


# --- tenants ---------------------------------------------------------------------------------


def test_a_dry_run_does_not_see_the_other_tenants_rows(api_a, other_tenant):
    """B holds the key and the event A's dry run sends: A's dry run says both would be
    created (no cdpId), as A's real request then creates them; B's rows stay as they were."""
    b_before = b_rows(other_tenant)
    b_events = listed_events(other_tenant)

    records, _ = dry_then_real(api_a, [api_a.entry("R-1", customField01="a-value")])
    events, _ = dry_then_real(api_a, [purchase()], object_type="user-event")

    assert [(r["action"], r["cdpId"]) for r in records["results"]] == [("created", None)]
    assert records["results"][0]["changes"]["customField01"] == {"from": None, "to": "a-value"}
    assert [(r["action"], r["cdpId"]) for r in events["results"]] == [("created", None)]
    assert b_rows(other_tenant) == b_before
    assert listed_events(other_tenant) == b_events
    assert api_a.data("R-1") == {"refId": "R-1", "customField01": "a-value"}


# --- outside any test transaction ------------------------------------------------------------


def _in_transaction() -> bool:
    raw = connection.connection
    if connection.vendor == "postgresql":
        from psycopg.pq import TransactionStatus

        return raw.info.transaction_status != TransactionStatus.IDLE
    return raw.in_transaction


@pytest.fixture
def transaction_closed_after(tenant_a):
    """Ends a transaction the test left open, so that the database can be flushed for the
    next tests (the test itself reports it)."""
    yield
    if connection.connection is not None and _in_transaction():
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [1, 500])
def test_a_dry_run_leaves_no_transaction_open(tenant_a, settings, transaction_closed_after, size):
    """Served as in production (no test transaction around it), a dry run opens no
    transaction it leaves open on the connection: neither a small one nor one large enough
    (500 keys) for PostgreSQL's staged read; it writes nothing, and the real request after
    it commits its rows."""
    settings.CDP_INGEST_MAX_ENTRIES = 500
    api = ingest_for(tenant_a)
    entries = [api.entry(f"R-{i:03}") for i in range(size)]
    before = db_state()

    dry = dry_send(api, entries)

    assert dry.status_code == 200, dry.content
    assert dry.json()["created"] == size
    assert not connection.in_atomic_block
    assert not _in_transaction()
    assert db_state() == before
    assert send(api, entries).json()["created"] == size
    assert EntityRecord.objects.filter(organization=tenant_a.organization).count() == size


def test_a_dry_run_refused_by_authentication_or_rate_limits_says_it_is_one(api_a, settings):
    """401 and 429 come before the pipeline; their bodies carry `dryRun` too."""
    settings.CDP_INGEST_RATE_LIMITS = [(1, 60)]
    unauthenticated = api_a.client.post(
        f"{INGEST_URL}?dryRun=true", data="{}", content_type="application/json"
    )
    assert send(api_a, [api_a.entry(KEY)], query={"dryRun": "true"}).status_code == 200
    limited = send(api_a, [api_a.entry(KEY)], query={"dryRun": "true"})
    real_limited = send(api_a, [api_a.entry(KEY)])

    assert (unauthenticated.status_code, unauthenticated.json()["dryRun"]) == (401, True)
    assert (limited.status_code, limited.json()["errorCode"]) == (429, "RATE_LIMITED")
    assert limited.json()["dryRun"] is True
    assert real_limited.status_code == 429 and "dryRun" not in real_limited.json()
