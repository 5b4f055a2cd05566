"""The Read API (DESIGN §6b): one record by key, and user events, newest first, in pages.

Everything read was written through the Data Ingestion API first, as an integrator does.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import quote

import pytest

from cdp.models import EntityRecord
from journeys.models import UserEvent
from tests.contract import ERROR_KEYS, EVENT_KEYS, RECORD_KEYS

INGEST_URL = "/dhub-i/api/v1.0/ingest"
RECORDS_URL = "/dhub-i/api/v1.0/records"
EVENTS_URL = "/dhub-i/api/v1.0/user-events"
# 2024-03-01T00:00:00Z: event times are spaced from here.
T0 = 1_709_251_200_000


# --- helpers -----------------------------------------------------------------------------


def auth(tenant, token: str) -> dict[str, str]:
    return {"TOKEN": token, "API_KEY": tenant.raw_key}


def ingest(client, tenant, token: str, object_type: str, entries: list[dict], source="CRM"):
    response = client.post(
        INGEST_URL,
        data=json.dumps({"objectType": object_type, "source": source, "entries": entries}),
        content_type="application/json",
        headers=auth(tenant, token),
    )
    body = response.json()
    assert response.status_code == 200 and body["success"], body
    return body


def event_entry(source_id: str, event_at: int, **fields: Any) -> dict[str, Any]:
    return {
        "source": "web",
        "sourceId": source_id,
        "channel": "Online",
        "eventCtg": "Other",
        "eventName": "page_view",
        "eventAt": event_at,
        **fields,
    }


def get(client, url: str, tenant=None, token: str | None = None, **params: Any):
    headers = auth(tenant, token) if tenant is not None else {}
    return client.get(url, params, headers=headers)


def ok(response) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 200, body
    assert body["success"] is True
    return body


def error_of(response, status: int, error_code: str) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == ERROR_KEYS, body
    assert (body["success"], body["errorCode"]) == (False, error_code), body
    assert body["requestId"] == response["X-Request-Id"]
    return body


def record_url(object_type: str, key: str) -> str:
    return f"{RECORDS_URL}/{object_type}/{quote(key)}"


def now_ms() -> int:
    return int(time.time() * 1000)


# --- records -----------------------------------------------------------------------------


def test_record_has_the_exact_shape_with_flat_custom_fields(client, tenant_a, token_a):
    before = now_ms()
    ingested = ingest(
        client,
        tenant_a,
        token_a,
        "custom-model",
        [
            {
                "momCode": tenant_a.mom_code,
                "refId": "R-1",
                "customerId": "C-1",
                "tags": ["a", "b"],
                "customFieldTexts": {"customField01": "gold"},
                "customFieldLongs": {"customFieldLong01": 3},
                "customFieldBool01": True,  # flat at the top level
                "customFieldListTexts": {"customFieldList01": ["golf", "chess"]},
            }
        ],
    )
    after = now_ms()

    body = ok(
        get(
            client,
            record_url("custom-model", "R-1"),
            tenant_a,
            token_a,
            momCode=tenant_a.mom_code,
        )
    )

    assert set(body) == {"success", "record"}
    record = body["record"]
    assert set(record) == RECORD_KEYS
    assert record["cdpId"] == ingested["results"][0]["cdpId"]
    assert re.fullmatch(r"[A-Za-z0-9]{20}", record["cdpId"])
    assert record["objectType"] == "custom-model"
    assert record["momCode"] == tenant_a.mom_code
    assert record["key"] == "R-1"
    assert record["source"] == "CRM"
    assert isinstance(record["createdAt"], int) and isinstance(record["updatedAt"], int)
    assert before - 1 <= record["createdAt"] <= record["updatedAt"] <= after + 1
    assert record["data"] == {
        "refId": "R-1",
        "customerId": "C-1",
        "tags": ["a", "b"],
        "customField01": "gold",
        "customFieldLong01": 3,
        "customFieldBool01": True,
        "customFieldList01": ["golf", "chess"],
    }
    stored = EntityRecord.objects.get(organization=tenant_a.organization, key="R-1")
    assert record["createdAt"] == round(stored.created_at.timestamp() * 1000)


def test_record_reads_the_merged_state_after_an_update(client, tenant_a, token_a):
    entry = {"momCode": tenant_a.mom_code, "refId": "R-1"}
    ingest(client, tenant_a, token_a, "custom-model", [{**entry, "customField01": "gold"}])
    url = record_url("custom-model", "R-1")
    first = ok(get(client, url, tenant_a, token_a, momCode=tenant_a.mom_code))["record"]
    time.sleep(0.005)

    ingest(
        client,
        tenant_a,
        token_a,
        "custom-model",
        [{**entry, "customField02": "Ann"}],
        source="Shop",
    )

    second = ok(get(client, url, tenant_a, token_a, momCode=tenant_a.mom_code))["record"]
    assert second["cdpId"] == first["cdpId"]
    assert second["createdAt"] == first["createdAt"]
    assert second["updatedAt"] > first["updatedAt"]
    assert second["data"] == {"refId": "R-1", "customField01": "gold", "customField02": "Ann"}


def test_record_key_may_hold_a_slash_and_spaces(client, tenant_a, token_a):
    ingest(
        client,
        tenant_a,
        token_a,
        "custom-model",
        [{"momCode": tenant_a.mom_code, "refId": "a/b c"}],
    )

    record = ok(
        get(
            client,
            record_url("custom-model", "a/b c"),
            tenant_a,
            token_a,
            momCode=tenant_a.mom_code,
        )
    )["record"]

    assert record["key"] == "a/b c"


def test_system_model_record_is_readable(client, tenant_a, token_a):
    ingested = ingest(
        client,
        tenant_a,
        token_a,
        "customer-identity",
        [{"customerId": "C-1", "phone": "0900000001", "fullName": "An Nguyen"}],
    )

    record = ok(get(client, record_url("customer-identity", "C-1"), tenant_a, token_a))["record"]

    assert record["cdpId"] == ingested["results"][0]["cdpId"]
    assert (record["objectType"], record["momCode"], record["key"]) == (
        "customer-identity",
        None,
        "C-1",
    )
    assert record["data"] == {"customerId": "C-1", "phone": "0900000001", "fullName": "An Nguyen"}


@pytest.mark.parametrize("params", [{}, {"momCode": ""}, {"momCode": "  "}])
def test_custom_model_without_mom_code_answers_400(client, tenant_a, token_a, params):
    ingest(
        client, tenant_a, token_a, "custom-model", [{"momCode": tenant_a.mom_code, "refId": "R-1"}]
    )

    response = get(client, record_url("custom-model", "R-1"), tenant_a, token_a, **params)

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: momCode"


@pytest.mark.parametrize(
    ("object_type", "key", "mom_code"),
    [
        ("custom-model", "R-2", "own"),  # unknown key
        ("custom-model", "R-1", "M-AAAAA-O-AAAAA-M"),  # unknown momCode
        ("customer-identity", "R-1", None),  # the key of another model
        ("order", "R-1", None),
        ("nope", "R-1", None),
        ("custom-model", "r-1", "own"),  # keys are exact
    ],
)
def test_no_such_record_answers_404(client, tenant_a, token_a, object_type, key, mom_code):
    ingest(
        client, tenant_a, token_a, "custom-model", [{"momCode": tenant_a.mom_code, "refId": "R-1"}]
    )
    params = {"momCode": tenant_a.mom_code if mom_code == "own" else mom_code} if mom_code else {}

    response = get(client, record_url(object_type, key), tenant_a, token_a, **params)

    body = error_of(response, 404, "NOT_FOUND")
    assert key in body["message"]


def test_tenant_b_cannot_read_tenant_a_record(client, tenant_a, token_a, tenant_b, token_b):
    ingest(
        client,
        tenant_a,
        token_a,
        "custom-model",
        [{"momCode": tenant_a.mom_code, "refId": "R-1", "customField01": "A's secret"}],
    )
    ingest(
        client,
        tenant_a,
        token_a,
        "customer-identity",
        [{"customerId": "C-1", "phone": "1", "fullName": "A"}],
    )

    # Tenant B with tenant A's momCode, and a system record of tenant A: both 404, as if
    # they did not exist at all.
    missing = get(
        client, record_url("custom-model", "R-1"), tenant_b, token_b, momCode=tenant_a.mom_code
    )
    assert error_of(missing, 404, "NOT_FOUND")["message"] == "No custom-model record with key R-1"
    error_of(
        get(client, record_url("customer-identity", "C-1"), tenant_b, token_b), 404, "NOT_FOUND"
    )

    # The same key in tenant B's own model is B's record, never A's.
    ingest(
        client,
        tenant_b,
        token_b,
        "custom-model",
        [{"momCode": tenant_b.mom_code, "refId": "R-1", "customField01": "B's"}],
    )
    own = ok(
        get(client, record_url("custom-model", "R-1"), tenant_b, token_b, momCode=tenant_b.mom_code)
    )
    assert own["record"]["data"]["customField01"] == "B's"
    assert own["record"]["momCode"] == tenant_b.mom_code
    assert error_of(
        get(
            client, record_url("custom-model", "R-1"), tenant_b, token_b, momCode=tenant_a.mom_code
        ),
        404,
        "NOT_FOUND",
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"TOKEN": "nope", "API_KEY": "0" * 40}],
    ids=["no-headers", "bad-token"],
)
@pytest.mark.parametrize("url", ["records", "user-events"])
def test_read_api_needs_authentication(client, tenant_a, token_a, headers, url):
    ingest(
        client,
        tenant_a,
        token_a,
        "customer-identity",
        [{"customerId": "C-1", "phone": "1", "fullName": "A"}],
    )
    path = record_url("customer-identity", "C-1") if url == "records" else EVENTS_URL

    response = client.get(path, headers=headers)

    body = error_of(response, 401, "UNAUTHORIZED")
    expected = (
        "TOKEN and API_KEY headers are required" if not headers else "Invalid token or API key"
    )
    assert body["message"] == expected


def test_read_api_takes_lower_case_header_names(client, tenant_a, token_a):
    response = client.get(EVENTS_URL, headers={"token": token_a, "api_key": tenant_a.raw_key})

    assert ok(response)["events"] == []


# --- user events -------------------------------------------------------------------------


def test_no_events_answers_an_empty_page(client, tenant_a, token_a):
    body = ok(get(client, EVENTS_URL, tenant_a, token_a))

    assert body == {"success": True, "events": [], "next": None}


def test_event_has_every_key_of_the_design(client, tenant_a, token_a):
    ingested = ingest(
        client,
        tenant_a,
        token_a,
        "user-event",
        [
            event_entry(
                "S-1",
                T0,
                eventName="purchase",
                eventCtg2="checkout",
                value=12.5,
                eventLabels=["vip"],
                customerId="C-1",
                email="an@example.test",
                phone="0900000001",
                note="first order",
            )
        ],
    )

    body = ok(get(client, EVENTS_URL, tenant_a, token_a))

    assert body["next"] is None
    [event] = body["events"]
    assert set(event) == EVENT_KEYS
    assert event == {
        "eventId": ingested["results"][0]["cdpId"],
        "jeConfigId": None,
        "jeEventKey": None,
        "source": "web",
        "sourceId": "S-1",
        "condition": "Created",
        "channel": "Online",
        "eventCtg": "Other",
        "eventCtg2": "checkout",
        "eventCtg3": "",
        "eventName": "purchase",
        "eventAt": T0,
        "value": 12.5,
        "eventLabels": ["vip"],
        "eventLabel2s": [],
        "eventLabel3s": [],
        "customerId": "C-1",
        "email": "an@example.test",
        "phone": "0900000001",
        "note": "first order",
        "properties": {},
        "requestId": ingested["requestId"],
    }
    assert UserEvent.objects.get().event_id == event["eventId"]


def _seed_events(client, tenant, token) -> list[dict]:
    """Seven events of tenant A: (sourceId, eventName, eventAt), sent out of time order."""
    entries = [
        event_entry("S-1", T0 + 3_000),
        event_entry("S-2", T0 + 1_000, eventName="purchase"),
        event_entry("S-3", T0 + 5_000),
        event_entry("S-1", T0 + 2_000, eventName="purchase"),
        event_entry("S-4", T0 + 4_000, source="app"),
        event_entry("S-5", T0 + 6_000, source="app", eventName="purchase"),
        event_entry("S-6", T0 + 0),
    ]
    ingest(client, tenant, token, "user-event", entries)
    return entries


def _page(client, tenant, token, **params) -> tuple[list[tuple[str, int]], str | None]:
    body = ok(get(client, EVENTS_URL, tenant, token, **params))
    return [(e["sourceId"], e["eventAt"]) for e in body["events"]], body["next"]


def test_events_are_listed_newest_first(client, tenant_a, token_a):
    _seed_events(client, tenant_a, token_a)

    events, next_cursor = _page(client, tenant_a, token_a)

    assert events == [
        ("S-5", T0 + 6_000),
        ("S-3", T0 + 5_000),
        ("S-4", T0 + 4_000),
        ("S-1", T0 + 3_000),
        ("S-1", T0 + 2_000),
        ("S-2", T0 + 1_000),
        ("S-6", T0 + 0),
    ]
    assert next_cursor is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"eventName": "purchase"}, ["S-5", "S-1", "S-2"]),
        ({"source": "app"}, ["S-5", "S-4"]),
        ({"sourceId": "S-1"}, ["S-1", "S-1"]),
        ({"since": T0 + 4_000}, ["S-5", "S-3", "S-4"]),  # at or after
        ({"since": T0 + 4_001}, ["S-5", "S-3"]),
        ({"eventName": "purchase", "source": "web", "since": T0 + 1_500}, ["S-1"]),
        ({"eventName": "nothing"}, []),
        ({"eventName": ""}, ["S-5", "S-3", "S-4", "S-1", "S-1", "S-2", "S-6"]),  # blank: none
    ],
)
def test_events_filters(client, tenant_a, token_a, params, expected):
    _seed_events(client, tenant_a, token_a)

    events, _next = _page(client, tenant_a, token_a, **params)

    assert [source_id for source_id, _at in events] == expected


def test_limit_and_cursor_walk_three_pages_without_duplicates_or_gaps(client, tenant_a, token_a):
    _seed_events(client, tenant_a, token_a)
    # Two more events at the same time as S-3, so that a page boundary falls inside a tie.
    ingest(
        client,
        tenant_a,
        token_a,
        "user-event",
        [event_entry("S-7", T0 + 5_000), event_entry("S-8", T0 + 5_000)],
    )
    all_events, _ = _page(client, tenant_a, token_a, limit=200)
    assert len(all_events) == 9

    page_1, cursor_1 = _page(client, tenant_a, token_a, limit=4)
    page_2, cursor_2 = _page(client, tenant_a, token_a, limit=4, cursor=cursor_1)
    page_3, cursor_3 = _page(client, tenant_a, token_a, limit=4, cursor=cursor_2)

    assert (len(page_1), len(page_2), len(page_3)) == (4, 4, 1)
    assert cursor_1 and cursor_2 and cursor_1 != cursor_2
    assert cursor_3 is None
    assert page_1 + page_2 + page_3 == all_events
    assert len(set(page_1 + page_2 + page_3)) == 9
    times = [at for _sid, at in all_events]
    assert times == sorted(times, reverse=True)


def test_cursor_is_stable_when_newer_events_arrive(client, tenant_a, token_a):
    _seed_events(client, tenant_a, token_a)
    page_1, cursor = _page(client, tenant_a, token_a, limit=3)

    ingest(client, tenant_a, token_a, "user-event", [event_entry("S-9", T0 + 9_000)])

    page_2, _ = _page(client, tenant_a, token_a, limit=3, cursor=cursor)
    assert [sid for sid, _ in page_1] == ["S-5", "S-3", "S-4"]
    assert [sid for sid, _ in page_2] == ["S-1", "S-1", "S-2"]


def test_cursor_keeps_the_filters_of_the_request(client, tenant_a, token_a):
    _seed_events(client, tenant_a, token_a)

    page_1, cursor = _page(client, tenant_a, token_a, eventName="purchase", limit=2)
    page_2, last = _page(client, tenant_a, token_a, eventName="purchase", limit=2, cursor=cursor)

    assert [sid for sid, _ in page_1 + page_2] == ["S-5", "S-1", "S-2"]
    assert last is None


def test_default_limit_is_50_and_200_is_allowed(client, tenant_a, token_a):
    ingest(
        client, tenant_a, token_a, "user-event", [event_entry(f"S-{i}", T0 + i) for i in range(50)]
    )
    ingest(client, tenant_a, token_a, "user-event", [event_entry("S-50", T0 + 50)])

    default, next_cursor = _page(client, tenant_a, token_a)
    everything, none = _page(client, tenant_a, token_a, limit=200)

    assert len(default) == 50
    assert default[0] == ("S-50", T0 + 50)
    assert next_cursor is not None
    assert len(everything) == 51 and none is None
    rest, _ = _page(client, tenant_a, token_a, cursor=next_cursor)
    assert rest == [("S-0", T0)]


@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "1.5"])
def test_bad_limit_answers_400(client, tenant_a, token_a, limit):
    response = get(client, EVENTS_URL, tenant_a, token_a, limit=limit)

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: limit"


@pytest.mark.parametrize("since", ["yesterday", "1.5e12", "99999999999999999999"])
def test_bad_since_answers_400(client, tenant_a, token_a, since):
    response = get(client, EVENTS_URL, tenant_a, token_a, since=since)

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: since"


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "!!!",
        "bm90IGEgY3Vyc29y",  # "not a cursor"
        "MjAyNC0wMS0wMVQwMDowMDowMHwx",  # a time without zone
        "MjAyNC0wMS0wMVQwMDowMDowMCswMDowMHx4",  # pk not a number
        "MDAwMS0wMS0wMVQwMDowMDowMCsxNDowMHw1",  # year 1 at +14:00: before any UTC time
    ],
)
def test_bad_cursor_answers_400(client, tenant_a, token_a, cursor):
    response = get(client, EVENTS_URL, tenant_a, token_a, cursor=cursor)

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: cursor"


def test_tenant_b_sees_none_of_tenant_a_events(client, tenant_a, token_a, tenant_b, token_b):
    _seed_events(client, tenant_a, token_a)
    _page_a, cursor_a = _page(client, tenant_a, token_a, limit=2)
    ingest(client, tenant_b, token_b, "user-event", [event_entry("B-1", T0 + 10)])

    assert _page(client, tenant_b, token_b) == ([("B-1", T0 + 10)], None)
    assert _page(client, tenant_b, token_b, eventName="purchase") == ([], None)
    assert _page(client, tenant_b, token_b, sourceId="S-1") == ([], None)
    # Tenant A's cursor only positions the walk; tenant B still sees only its own events.
    assert _page(client, tenant_b, token_b, cursor=cursor_a) == ([("B-1", T0 + 10)], None)
    assert UserEvent.objects.filter(organization=tenant_a.organization).count() == 7


# --- no 500 on values no row can hold (PostgreSQL refuses U+0000 in a comparison) ----------


@pytest.mark.parametrize(
    "path",
    [
        f"{RECORDS_URL}/order/a%00b",
        f"{RECORDS_URL}/or%00der/a",
        f"{RECORDS_URL}/custom-model/a?momCode=M%00",
    ],
)
def test_record_lookup_with_a_nul_answers_404(client, tenant_a, token_a, path):
    error_of(client.get(path, headers=auth(tenant_a, token_a)), 404, "NOT_FOUND")


@pytest.mark.parametrize("name", ["eventName", "source", "sourceId"])
def test_event_filter_with_a_nul_answers_400(client, tenant_a, token_a, name):
    response = get(client, EVENTS_URL, tenant_a, token_a, **{name: "a\x00b"})

    assert error_of(response, 400, "MISSING_INFO")["message"] == f"Invalid value of: {name}"
