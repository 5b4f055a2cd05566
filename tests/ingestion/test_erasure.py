"""Erasure and suppression: `POST /dhub-i/api/v1.0/erasure` removes a person's records of
every model (with their history), their user events and what the outboxes hold of them,
inside the organization; with `suppress`, later entries carrying one of the identifiers
are refused, entry by entry, until an owner lifts the suppression.

Both tenants hold the same person under the same identifiers: tenant B's rows must come
through tenant A's erasure untouched, row for row.
"""

from __future__ import annotations

import json
import re
from io import StringIO
from typing import Any
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cdp import services
from cdp.callback_settings import callback_settings_set
from cdp.models import EntityRecord, ErasureRequest
from cdp.schema import TAG_KEEP_HISTORY, TAG_SUPPORT_IGNORED_UPDATE_CFS
from cdp.suppression import SUPPRESSED_MESSAGE
from ingestion.destinations import destination_create
from ingestion.erasure import ErasureOrder, erasure_run, suppression_lift
from ingestion.models import (
    CallbackDelivery,
    DestinationDelivery,
    IdempotencyKey,
    IngestionRequest,
    RecordHistory,
)
from journeys.models import UserEvent
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.conftest import Tenant
from tests.contract import ERROR_KEYS
from tests.ingestion.conftest import Ingest

pytestmark = pytest.mark.django_db

ERASURE_URL = "/dhub-i/api/v1.0/erasure"
ANSWER_KEYS = {"success", "erasureId", "records", "events"}
# The person, as both tenants hold them. The email is erased case-insensitively.
CUSTOMER_ID = "CUST-7301"
EMAIL = "Ana.Nguyen@Example.com"
PHONE = "+84901234567"
TABLES = {
    "records": EntityRecord,
    "history": RecordHistory,
    "events": UserEvent,
    "callbacks": CallbackDelivery,
    "deliveries": DestinationDelivery,
}


# --- helpers ---------------------------------------------------------------------------


def erase(api: Ingest, body: Any, raw: bool = False):
    return api.client.post(
        ERASURE_URL,
        data=body if raw else json.dumps(body),
        content_type="application/json",
        headers={"TOKEN": api.token, "API_KEY": api.tenant.raw_key},
    )


def erased(api: Ingest, body: dict[str, Any]) -> dict[str, Any]:
    response = erase(api, body)
    answer = response.json()
    assert response.status_code == 200, answer
    assert set(answer) == ANSWER_KEYS and answer["success"] is True
    assert re.fullmatch(r"[0-9a-f]{32}", answer["erasureId"])
    assert response["X-Request-Id"]
    return answer


def refused(response, message: str) -> None:
    body = response.json()
    assert response.status_code == 400, body
    assert set(body) == ERROR_KEYS
    assert (body["errorCode"], body["message"]) == ("MISSING_INFO", message)


def stored(response) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 200, body
    return body


def counts(tenant: Tenant) -> dict[str, int]:
    return {
        name: model.objects.filter(organization=tenant.organization).count()
        for name, model in TABLES.items()
    }


def rows(tenant: Tenant) -> dict[str, list[tuple]]:
    """Every row of the tenant in the erased tables, as compared before and after."""
    org = tenant.organization
    return {
        "records": sorted(
            EntityRecord.objects.filter(organization=org).values_list("key", "data_model_id")
        ),
        "history": sorted(
            RecordHistory.objects.filter(organization=org).values_list("key", "request_id")
        ),
        "events": sorted(UserEvent.objects.filter(organization=org).values_list("event_id")),
        "callbacks": sorted(CallbackDelivery.objects.filter(organization=org).values_list("body")),
        "deliveries": sorted(
            DestinationDelivery.objects.filter(organization=org).values_list("event_ids")
        ),
    }


def person_load(api: Ingest, receiver_url: str) -> dict[str, int]:
    """The person of this module in every kind of row, beside another person; how many
    rows of each kind name the person."""
    tenant = api.tenant
    org = tenant.organization
    services.custom_model_tags_set(
        organization=org,
        data_model=tenant.model,
        tags=[TAG_SUPPORT_IGNORED_UPDATE_CFS, TAG_KEEP_HISTORY],
    )
    callback_settings_set(organization=org, url=receiver_url, enabled=True)
    org.refresh_from_db()
    destination_create(organization=org, name="Journeys", url=receiver_url)
    config = journey_event_config_create(
        organization=org,
        data_model=tenant.model,
        trigger="Created",
        settings=UserEventSettings(event_name="membership_created", category="UserIdentity"),
    )
    # Membership: one record by customerId, one by email (in another case), one by
    # phone, and one of somebody else. Each fires the Created User Event.
    stored(
        api.post(
            [
                api.entry("R-1", customerId=CUSTOMER_ID, customField01="gold"),
                api.entry("R-2", email=EMAIL.upper()),
                api.entry("R-3", phone=PHONE),
                api.entry("R-9", customerId="CUST-OTHER", email="bo@example.com"),
            ],
            jeConfigId=config.config_id,
        )
    )
    stored(api.post([api.entry("R-1", customField01="silver")]))  # more history
    stored(
        api.post(
            [
                {
                    "customerId": CUSTOMER_ID,
                    "email": EMAIL,
                    "phone": PHONE,
                    "fullName": "Ana Nguyen",
                },
                {"customerId": "CUST-OTHER", "email": "bo@example.com", "fullName": "Bo"},
            ],
            object_type="customer-identity",
        )
    )
    order = {
        "orderStatus": "paid",
        "customerName": "Ana Nguyen",
        "items": [{"productSku": "P-1", "productName": "Tea", "quantity": 1}],
    }
    stored(
        api.post(
            [
                {**order, "orderId": "O-1", "customerId": "guest", "customerEmail": EMAIL.lower()},
                {**order, "orderId": "O-2", "customerId": CUSTOMER_ID, "customerEmail": "x@y.z"},
                {**order, "orderId": "O-3", "customerId": "guest", "customerEmail": "x@y.z"},
            ],
            object_type="order",
        )
    )
    event = {"source": "web", "channel": "Online", "eventCtg": "Other", "eventName": "visit"}
    stored(
        api.post(
            [
                {**event, "sourceId": "V-1", "eventAt": 1_709_251_200_000, "phone": PHONE},
                {**event, "sourceId": "V-2", "eventAt": 1_709_251_200_000, "email": EMAIL},
                {**event, "sourceId": "V-3", "eventAt": 1_709_251_200_000, "email": "bo@x.y"},
            ],
            object_type="user-event",
        )
    )
    return {"records": 6, "events": 5}  # R-1..3, C, O-1, O-2; 3 generated + V-1, V-2


@pytest.fixture
def receiver_url() -> str:
    return "http://127.0.0.1:9/cdp"  # never reached: nothing runs the worker's sends here


# --- the erasure -----------------------------------------------------------------------


def test_erasure_removes_exactly_the_persons_rows_and_none_of_the_other_tenant(
    api_a, api_b, receiver_url
):
    expected = person_load(api_a, receiver_url)
    person_load(api_b, receiver_url)
    before_a, before_b = counts(api_a.tenant), counts(api_b.tenant)
    rows_b = rows(api_b.tenant)
    pending_before = list(
        CallbackDelivery.objects.filter(organization=api_a.tenant.organization).values_list(
            "body", flat=True
        )
    )
    assert any(CUSTOMER_ID in body for body in pending_before)  # the customer's refId

    answer = erased(api_a, {"customerId": CUSTOMER_ID, "email": EMAIL.lower(), "phone": PHONE})

    assert (answer["records"], answer["events"]) == (expected["records"], expected["events"])
    after_a = counts(api_a.tenant)
    assert after_a["records"] == before_a["records"] - 6
    assert after_a["events"] == before_a["events"] - 5
    # R-1 had two history entries, R-2 and R-3 one each; customers and orders keep none.
    assert after_a["history"] == before_a["history"] - 4
    # The remaining records are the other person's, whatever their model.
    keys = set(
        EntityRecord.objects.filter(organization=api_a.tenant.organization).values_list(
            "key", flat=True
        )
    )
    assert keys == {"R-9", "CUST-OTHER", "O-3"}
    events = UserEvent.objects.filter(organization=api_a.tenant.organization)
    assert sorted(events.values_list("source_id", flat=True)) == ["R-9", "V-3"]
    # The callbacks still to send no longer name the person; the request of customers
    # still reports the other one.
    bodies = [
        json.loads(b)
        for b in CallbackDelivery.objects.filter(
            organization=api_a.tenant.organization
        ).values_list("body", flat=True)
    ]
    named = {ref for body in bodies for ref in body["data"]}
    assert named == {"R-9", "CUST-OTHER", "O-3", "V-3"}
    # Deliveries hold only events that still exist.
    remaining = set(events.values_list("event_id", flat=True))
    delivered = [
        i
        for ids in DestinationDelivery.objects.filter(
            organization=api_a.tenant.organization
        ).values_list("event_ids", flat=True)
        for i in ids
    ]
    assert delivered and set(delivered) == remaining
    # The request is recorded: who, what kinds, counts; no identifier.
    erasure = ErasureRequest.objects.get(organization=api_a.tenant.organization)
    assert erasure.erasure_id == answer["erasureId"]
    assert erasure.identifiers == ["customerId", "email", "phone"]
    assert (erasure.records, erasure.events, erasure.history) == (6, 5, 4)
    assert erasure.requested_by.startswith(f"API key {api_a.tenant.api_key.prefix}")
    assert erasure.digests == [] and erasure.suppress is False

    # Tenant B: every row as it was.
    assert counts(api_b.tenant) == before_b
    assert rows(api_b.tenant) == rows_b
    assert not ErasureRequest.objects.filter(organization=api_b.tenant.organization).exists()


def test_the_read_api_answers_404_after_the_erasure_in_that_tenant_only(api_a, api_b, receiver_url):
    person_load(api_a, receiver_url)
    person_load(api_b, receiver_url)
    urls = [
        f"/dhub-i/api/v1.0/records/customer-identity/{quote(CUSTOMER_ID)}",
        f"/dhub-i/api/v1.0/records/custom-model/R-1?momCode={api_a.tenant.mom_code}",
        "/dhub-i/api/v1.0/records/order/O-1",
    ]
    erased(api_a, {"customerId": CUSTOMER_ID, "email": EMAIL})

    for url in urls:
        body = api_a.client.get(
            url, headers={"TOKEN": api_a.token, "API_KEY": api_a.tenant.raw_key}
        )
        assert body.status_code == 404, url
        assert body.json()["errorCode"] == "NOT_FOUND"
    for url in urls:
        url = url.replace(api_a.tenant.mom_code, api_b.tenant.mom_code)
        kept = api_b.client.get(
            url, headers={"TOKEN": api_b.token, "API_KEY": api_b.tenant.raw_key}
        )
        assert kept.status_code == 200, url
    events = api_a.client.get(
        "/dhub-i/api/v1.0/user-events",
        {"sourceId": "V-2"},
        headers={"TOKEN": api_a.token, "API_KEY": api_a.tenant.raw_key},
    ).json()
    assert events["events"] == []
    history = api_a.client.get(
        f"/dhub-i/api/v1.0/record-history/custom-model/R-1?momCode={api_a.tenant.mom_code}",
        headers={"TOKEN": api_a.token, "API_KEY": api_a.tenant.raw_key},
    )
    assert history.status_code == 404


def test_an_erasure_that_matches_nothing_answers_zero_counts(api_a, api_b, receiver_url):
    person_load(api_b, receiver_url)
    answer = erased(api_a, {"email": EMAIL})
    assert (answer["records"], answer["events"]) == (0, 0)
    again = erased(api_a, {"email": EMAIL})
    assert again["erasureId"] != answer["erasureId"]
    assert ErasureRequest.objects.filter(organization=api_a.tenant.organization).count() == 2


def test_email_matches_case_insensitively_and_customer_id_and_phone_exactly(api_a, receiver_url):
    person_load(api_a, receiver_url)
    assert erased(api_a, {"customerId": CUSTOMER_ID.lower()})["records"] == 0
    assert erased(api_a, {"phone": PHONE + " "})["records"] == 0
    # R-2 (upper case), the customer and O-1 (lower case); and V-2's event.
    answer = erased(api_a, {"email": "ana.nguyen@EXAMPLE.COM"})
    assert answer["records"] == 3
    assert not EntityRecord.objects.filter(
        organization=api_a.tenant.organization, key__in=["R-2", CUSTOMER_ID, "O-1"]
    ).exists()


def test_pending_callbacks_lose_the_erased_refids_exactly_and_emails_in_any_case(
    api_a, receiver_url
):
    org = api_a.tenant.organization
    callback_settings_set(organization=org, url=receiver_url, enabled=True)
    org.refresh_from_db()
    stored(
        api_a.post(
            [
                api_a.entry("ana-1", customerId=CUSTOMER_ID),  # erased, by its customerId
                api_a.entry("ANA-1", customerId="CUST-OTHER"),  # another record, kept
                api_a.entry(EMAIL.upper(), customerId="CUST-OTHER"),  # keyed by her email
            ]
        )
    )

    erased(api_a, {"customerId": CUSTOMER_ID, "email": EMAIL.lower()})

    (body,) = CallbackDelivery.objects.filter(organization=org).values_list("body", flat=True)
    # Keys differ by case as records do; an email is the same in any case.
    assert set(json.loads(body)["data"]) == {"ANA-1"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Invalid value of: customerId, email, phone"),
        ({"suppress": True}, "Invalid value of: customerId, email, phone"),
        ({"customerId": None, "email": None}, "Invalid value of: customerId, email, phone"),
        ({"email": ""}, "Invalid value of: email"),
        ({"email": "   "}, "Invalid value of: email"),
        ({"phone": 84901234567}, "Invalid value of: phone"),
        (
            {"customerId": ["C-1"], "email": "a@b.c", "phone": {}},
            "Invalid value of: customerId, phone",
        ),
        ({"email": "a@b.c", "suppress": "yes"}, "Invalid value of: suppress"),
        ({"emial": "a@b.c", "customerId": "C-1"}, "Invalid value of: emial"),
    ],
)
def test_bad_bodies_are_refused_with_the_fields_named(api_a, body, message):
    refused(erase(api_a, body), message)
    assert not ErasureRequest.objects.exists()


def test_bodies_that_are_not_a_json_object_are_refused(api_a):
    for raw in ("[]", "not json", '"a@b.c"'):
        response = erase(api_a, raw, raw=True)
        assert response.status_code == 400
        assert response.json()["errorCode"] == "INVALID_JSON"
    assert not ErasureRequest.objects.exists()


def test_erasure_needs_a_token_and_an_api_key(api_a):
    response = api_a.client.post(
        ERASURE_URL, data=json.dumps({"email": EMAIL}), content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["message"] == "TOKEN and API_KEY headers are required"
    response = api_a.client.get(
        ERASURE_URL, headers={"TOKEN": api_a.token, "API_KEY": api_a.tenant.raw_key}
    )
    assert response.status_code == 405
    assert not ErasureRequest.objects.exists()


# --- suppression -----------------------------------------------------------------------


def test_a_suppressed_identifier_is_refused_per_entry_while_the_others_are_stored(api_a, api_b):
    answer = erased(api_a, {"email": EMAIL, "customerId": CUSTOMER_ID, "suppress": True})
    erasure = ErasureRequest.objects.get(erasure_id=answer["erasureId"])
    assert erasure.suppress and len(erasure.digests) == 2
    assert all(EMAIL.lower() not in d and CUSTOMER_ID not in d for d in erasure.digests)

    body = api_a.post(
        [
            api_a.entry("R-1", email=EMAIL.upper()),
            api_a.entry("R-2", email="someone@else.com"),
            api_a.entry("R-3", customerId=CUSTOMER_ID),
        ]
    ).json()
    assert (body["created"], body["failed"]) == (1, 2)
    assert [r["status"] for r in body["results"]] == [101, 200, 101]
    assert body["results"][0] == {
        "index": 0,
        "refId": "R-1",
        "status": 101,
        "errorMessage": SUPPRESSED_MESSAGE,
    }
    keys = EntityRecord.objects.filter(organization=api_a.tenant.organization).values_list(
        "key", flat=True
    )
    assert list(keys) == ["R-2"]

    # A customer keyed by the suppressed customerId: its result does not repeat it.
    customer = api_a.post(
        [{"customerId": CUSTOMER_ID, "phone": "1", "fullName": "A"}],
        object_type="customer-identity",
    )
    assert customer.status_code == 400
    assert customer.json()["results"] == [
        {"index": 0, "refId": None, "status": 101, "errorMessage": SUPPRESSED_MESSAGE}
    ]
    log = IngestionRequest.objects.filter(organization=api_a.tenant.organization)
    assert CUSTOMER_ID not in json.dumps(list(log.values_list("results", flat=True)))

    # Every object type: user events and orders (customerEmail) too.
    event = {"source": "web", "sourceId": "V", "channel": "Online", "eventCtg": "Other"}
    event_body = api_a.post(
        [{**event, "eventName": "visit", "eventAt": 1_709_251_200_000, "email": EMAIL}],
        object_type="user-event",
    ).json()
    assert event_body["results"][0]["errorMessage"] == SUPPRESSED_MESSAGE
    order = api_a.post(
        [
            {
                "orderId": "O-1",
                "orderStatus": "paid",
                "customerId": "guest",
                "customerName": "A",
                "customerEmail": EMAIL.lower(),
                "items": [{"productSku": "P", "productName": "Tea", "quantity": 1}],
            }
        ],
        object_type="order",
    ).json()
    assert order["results"][0]["errorMessage"] == SUPPRESSED_MESSAGE

    # Tenant B never asked: the same entries are stored there.
    stored_b = api_b.post(
        [api_b.entry("R-1", email=EMAIL), api_b.entry("R-3", customerId=CUSTOMER_ID)]
    )
    assert stored_b.json()["created"] == 2


def test_a_dry_run_reports_the_suppression_too(api_a):
    erased(api_a, {"phone": PHONE, "suppress": True})
    response = api_a.client.post(
        "/dhub-i/api/v1.0/ingest?dryRun=true",
        data=json.dumps(
            {
                "objectType": "custom-model",
                "source": "CRM",
                "entries": [api_a.entry("R-1", phone=PHONE), api_a.entry("R-2")],
            }
        ),
        content_type="application/json",
        headers={"TOKEN": api_a.token, "API_KEY": api_a.tenant.raw_key},
    )
    body = response.json()
    assert [r["status"] for r in body["results"]] == [101, 200]
    assert body["results"][0]["errorMessage"] == SUPPRESSED_MESSAGE


def test_lifting_the_suppression_lets_the_identifiers_in_again(api_a):
    answer = erased(api_a, {"email": EMAIL, "suppress": True})
    refused_entry = api_a.post([api_a.entry("R-1", email=EMAIL)]).json()
    assert refused_entry["results"][0]["status"] == 101

    erasure = ErasureRequest.objects.get(erasure_id=answer["erasureId"])
    assert suppression_lift(erasure=erasure, lifted_by="owner@acme.test") is True
    assert erasure.digests == [] and erasure.suppression_lifted_by == "owner@acme.test"
    assert suppression_lift(erasure=erasure, lifted_by="owner@acme.test") is False

    body = api_a.post([api_a.entry("R-1", email=EMAIL)]).json()
    assert (body["created"], body["failed"]) == (1, 0)


def test_an_erasure_without_suppress_lets_the_person_back(api_a):
    erased(api_a, {"email": EMAIL})
    body = api_a.post([api_a.entry("R-1", email=EMAIL)]).json()
    assert body["created"] == 1


# --- nothing in clear ------------------------------------------------------------------


def _dump() -> str:
    """Every row of every table of the database, as text."""
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        chunks = []
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.append(repr(cursor.fetchall()))
    return "\n".join(chunks)


def test_no_identifier_is_stored_in_clear_anywhere_after_the_erasure(api_a, receiver_url):
    """Tenant A alone holds the person here (the other tests prove tenant B's rows stay):
    after the erasure and the worker's scrub, no table holds an identifier."""
    person_load(api_a, receiver_url)
    # An idempotent request too: its stored answer names the customer.
    idempotent = api_a.post(
        [{"customerId": CUSTOMER_ID, "email": EMAIL, "fullName": "Ana Nguyen"}],
        object_type="customer-identity",
        headers={
            "TOKEN": api_a.token,
            "API_KEY": api_a.tenant.raw_key,
            "Idempotency-Key": "retry-1",
        },
    )
    assert idempotent.status_code == 200
    assert IdempotencyKey.objects.filter(organization=api_a.tenant.organization).exists()
    before = _dump()
    assert CUSTOMER_ID in before and PHONE in before and EMAIL in before

    erased(api_a, {"customerId": CUSTOMER_ID, "email": EMAIL, "phone": PHONE, "suppress": True})
    call_command("run_worker", "--once", stdout=StringIO())  # the log scrub

    erasure = ErasureRequest.objects.get(organization=api_a.tenant.organization)
    assert erasure.logs_scrubbed_at is not None
    dump = _dump()
    for value in (CUSTOMER_ID, EMAIL, EMAIL.lower(), EMAIL.upper(), PHONE):
        assert value not in dump, value
    # The answers of the other person's entries are still in the log.
    assert "CUST-OTHER" in dump
    # The idempotent retry answers the scrubbed answer: same request, no identifier.
    again = api_a.post(
        [{"customerId": CUSTOMER_ID, "email": EMAIL, "fullName": "Ana Nguyen"}],
        object_type="customer-identity",
        headers={
            "TOKEN": api_a.token,
            "API_KEY": api_a.tenant.raw_key,
            "Idempotency-Key": "retry-1",
        },
    )
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["results"][0]["refId"] is None


# --- indexes, not scans ----------------------------------------------------------------


def test_every_lookup_of_an_erasure_can_use_an_index(api_a, api_b, receiver_url):
    """Each SELECT of the erasure's on records and events, planned with sequential scans
    priced out: a lookup whose expression or condition no index matches still shows one."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the plans are PostgreSQL's")
    person_load(api_a, receiver_url)
    person_load(api_b, receiver_url)
    with CaptureQueriesContext(connection) as queries:
        erasure_run(
            organization=api_a.tenant.organization,
            order=ErasureOrder({"customerId": CUSTOMER_ID, "email": EMAIL, "phone": PHONE}),
            requested_by="test",
        )
    lookups = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT")
        and ('FROM "cdp_entityrecord"' in q["sql"] or 'FROM "journeys_userevent"' in q["sql"])
    ]
    assert len(lookups) == 3 + 3 + 3  # records by each kind; events by each kind and source
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in lookups:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan" not in plan, (sql, plan)
            assert "Index" in plan
