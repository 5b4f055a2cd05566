"""Record history (models tagged KEEP_HISTORY): one entry per write that created or changed
a record, written with the write, read through
`GET /dhub-i/api/v1.0/record-history/<objectType>/<key>`, purged after
CDP_RECORD_HISTORY_DAYS.

Every entry is written through the Data Ingestion API, as an integrator does, and read
back both through the Read API and as RecordHistory rows. Tenant B always writes too: none
of its entries may show in tenant A's history, nor A's in B's.
"""

from __future__ import annotations

import base64
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from cdp import services
from cdp.models import DataModel, EntityRecord, ModelKind
from cdp.schema import TAG_KEEP_HISTORY, TAG_SUPPORT_IGNORED_UPDATE_CFS
from ingestion.models import IngestionRequest, RecordHistory
from journeys.models import UserEvent
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.conftest import Tenant
from tests.contract import ERROR_KEYS
from tests.ingestion.conftest import INGEST_URL, Ingest, ingest_for

pytestmark = pytest.mark.django_db

HISTORY_URL = "/dhub-i/api/v1.0/record-history"
RECORDS_URL = "/dhub-i/api/v1.0/records"
HISTORY_KEYS = {"success", "historyKept", "history", "next"}
ENTRY_KEYS = {"requestId", "action", "source", "at", "changes"}
BOTH_TAGS = [TAG_SUPPORT_IGNORED_UPDATE_CFS, TAG_KEEP_HISTORY]


# --- helpers -------------------------------------------------------------------------------


def keep_history(tenant: Tenant, model: DataModel | None = None) -> DataModel:
    """Tag the tenant's Membership model (or `model`) KEEP_HISTORY, keeping its tags."""
    model = model or tenant.model
    model.refresh_from_db()
    return services.custom_model_tags_set(
        organization=tenant.organization,
        data_model=model,
        tags=[*model.tags, TAG_KEEP_HISTORY] if TAG_KEEP_HISTORY not in model.tags else model.tags,
    )


def stop_history(tenant: Tenant) -> DataModel:
    tenant.model.refresh_from_db()
    return services.custom_model_tags_set(
        organization=tenant.organization,
        data_model=tenant.model,
        tags=[t for t in tenant.model.tags if t != TAG_KEEP_HISTORY],
    )


@pytest.fixture
def kept(tenant_a, tenant_b) -> None:
    """Both tenants' Membership models keep history."""
    keep_history(tenant_a)
    keep_history(tenant_b)


def auth(api: Ingest) -> dict[str, str]:
    return {"TOKEN": api.token, "API_KEY": api.tenant.raw_key}


def send(api: Ingest, entries: list[Any], *, query: dict[str, str] | None = None, **kwargs):
    """An ingest request with a query string (`initData`, `dryRun`)."""
    payload = {
        "objectType": kwargs.pop("object_type", "custom-model"),
        "source": kwargs.pop("source", "CRM"),
        "entries": entries,
        **kwargs,
    }
    return api.client.post(
        f"{INGEST_URL}?{urlencode(query)}" if query else INGEST_URL,
        data=json.dumps(payload),
        content_type="application/json",
        headers=auth(api),
    )


def stored(response) -> dict[str, Any]:
    """The answer of an ingest request that stored every entry."""
    body = response.json()
    assert response.status_code == 200, body
    assert body["success"] is True and body["failed"] == 0, body
    return body


def history_get(
    api: Ingest,
    key: str,
    *,
    object_type: str = "custom-model",
    mom_code: str | None = "own",
    **params: Any,
):
    if object_type == "custom-model" and mom_code == "own":
        params["momCode"] = api.tenant.mom_code
    elif mom_code not in (None, "own"):
        params["momCode"] = mom_code
    return api.client.get(f"{HISTORY_URL}/{object_type}/{quote(key)}", params, headers=auth(api))


def history_of(api: Ingest, key: str, **kwargs: Any) -> dict[str, Any]:
    response = history_get(api, key, **kwargs)
    body = response.json()
    assert response.status_code == 200, body
    assert set(body) == HISTORY_KEYS, body
    assert body["success"] is True
    for entry in body["history"]:
        assert set(entry) == ENTRY_KEYS, entry
    return body


def entries_of(api: Ingest, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    body = history_of(api, key, **kwargs)
    assert body["historyKept"] is True
    assert body["next"] is None
    return body["history"]


def record_of(api: Ingest, key: str, object_type: str = "custom-model") -> dict[str, Any]:
    params = {"momCode": api.tenant.mom_code} if object_type == "custom-model" else {}
    response = api.client.get(
        f"{RECORDS_URL}/{object_type}/{quote(key)}", params, headers=auth(api)
    )
    assert response.status_code == 200, response.content
    return response.json()["record"]


def error_of(response, status: int, error_code: str) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == ERROR_KEYS, body
    assert (body["success"], body["errorCode"]) == (False, error_code), body
    assert body["requestId"] == response["X-Request-Id"]
    return body


def rows(tenant: Tenant, key: str | None = None):
    found = RecordHistory.objects.filter(organization=tenant.organization)
    return found.filter(key=key) if key is not None else found


def created_changes(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"from": None, "to": value} for name, value in data.items()}


# --- what an entry holds -------------------------------------------------------------------


def test_create_two_updates_and_an_unchanged_resend_give_three_entries(api_a, api_b, kept):
    created = stored(
        api_a.post(
            [
                api_a.entry(
                    "R-1",
                    customerId="C-1",
                    phone="0901",
                    tags=["a", "b"],
                    customFieldTexts={"customField01": "gold"},
                    customFieldLongs={"customFieldLong01": 3},
                    customFieldListTexts={"customFieldList01": ["golf", "chess"]},
                    customFieldTimestamps={"customFieldTimestamp01": 1704164645000},
                )
            ]
        )
    )
    at_created = record_of(api_a, "R-1")["updatedAt"]
    # Tenant B writes the same key, in its own model, between A's writes.
    b_created = stored(api_b.post([api_b.entry("R-1", customField01="B's")]))

    first = stored(
        api_a.post(
            [
                api_a.entry(
                    "R-1",
                    phone=None,  # a clear
                    customFieldTexts={"customField01": "silver"},
                    customFieldListTexts={"customFieldList01": ["golf"]},  # a list replaced
                    customFieldDoubles={"customFieldDouble01": 1.5},  # a new field
                )
            ],
            source="POS",
        )
    )
    at_first = record_of(api_a, "R-1")["updatedAt"]
    # customField01 is in ignoredUpdateCfs: kept as stored, not a change.
    resend = [api_a.entry("R-1", customField01="platinum", customField02="Bob", tags=["c"])]
    second = stored(api_a.post(resend, ignored=["customField01"], source="App"))
    at_second = record_of(api_a, "R-1")["updatedAt"]
    b_updated = stored(api_b.post([api_b.entry("R-1", customField01="B's too")]))
    unchanged = stored(api_a.post(resend, ignored=["customField01"], source="App"))

    assert [created["created"], first["updated"], second["updated"], unchanged["unchanged"]] == [
        1,
        1,
        1,
        1,
    ]
    assert entries_of(api_a, "R-1") == [
        {
            "requestId": second["requestId"],
            "action": "updated",
            "source": "App",
            "at": at_second,
            "changes": {
                "customField02": {"from": None, "to": "Bob"},
                "tags": {"from": ["a", "b"], "to": ["c"]},
            },
        },
        {
            "requestId": first["requestId"],
            "action": "updated",
            "source": "POS",
            "at": at_first,
            "changes": {
                "phone": {"from": "0901", "to": None},
                "customField01": {"from": "gold", "to": "silver"},
                "customFieldList01": {"from": ["golf", "chess"], "to": ["golf"]},
                "customFieldDouble01": {"from": None, "to": 1.5},
            },
        },
        {
            "requestId": created["requestId"],
            "action": "created",
            "source": "CRM",
            "at": at_created,
            "changes": {
                "refId": {"from": None, "to": "R-1"},
                "customerId": {"from": None, "to": "C-1"},
                "phone": {"from": None, "to": "0901"},
                "tags": {"from": None, "to": ["a", "b"]},
                "customField01": {"from": None, "to": "gold"},
                "customFieldLong01": {"from": None, "to": 3},
                "customFieldList01": {"from": None, "to": ["golf", "chess"]},
                "customFieldTimestamp01": {"from": None, "to": 1704164645000},
            },
        },
    ]
    assert at_created <= at_first <= at_second
    assert api_a.data("R-1")["customField01"] == "silver"
    # The rows: three of A's, two of B's, none for the unchanged re-send.
    assert rows(api_a.tenant).count() == 3
    assert not rows(api_a.tenant).filter(request_id=unchanged["requestId"]).exists()
    assert set(rows(api_a.tenant).values_list("data_model", flat=True)) == {api_a.tenant.model.pk}
    assert entries_of(api_b, "R-1") == [
        {
            "requestId": b_updated["requestId"],
            "action": "updated",
            "source": "CRM",
            "at": record_of(api_b, "R-1")["updatedAt"],
            "changes": {"customField01": {"from": "B's", "to": "B's too"}},
        },
        {
            "requestId": b_created["requestId"],
            "action": "created",
            "source": "CRM",
            "at": entries_of(api_b, "R-1")[1]["at"],
            "changes": created_changes({"refId": "R-1", "customField01": "B's"}),
        },
    ]
    assert rows(api_b.tenant).count() == 2


def test_created_entry_holds_every_field_of_the_stored_record(api_a, kept):
    answer = stored(
        api_a.post(
            [
                api_a.entry(
                    "R-1",
                    email="r1@example.test",
                    customFieldBool01=False,  # a falsy value is still a value
                    customFieldLong01=0,
                    customField02=None,  # a null on create is no field
                )
            ]
        )
    )

    (entry,) = entries_of(api_a, "R-1")
    record = record_of(api_a, "R-1")
    assert record["data"] == {
        "refId": "R-1",
        "email": "r1@example.test",
        "customFieldBool01": False,
        "customFieldLong01": 0,
    }
    assert entry == {
        "requestId": answer["requestId"],
        "action": "created",
        "source": "CRM",
        "at": record["createdAt"],
        "changes": created_changes(record["data"]),
    }
    assert record["createdAt"] == record["updatedAt"]


def test_clearing_every_custom_field_shows_each_from_old_to_null(api_a, kept):
    api_a.post([api_a.entry("R-1", customField01="gold", customFieldLong01=7, tags=["x"])])

    cleared = stored(
        api_a.post([api_a.entry("R-1", customField01=None, customFieldLong01=None, tags=None)])
    )

    newest = entries_of(api_a, "R-1")[0]
    assert (newest["requestId"], newest["action"]) == (cleared["requestId"], "updated")
    assert newest["changes"] == {
        "customField01": {"from": "gold", "to": None},
        "customFieldLong01": {"from": 7, "to": None},
        "tags": {"from": ["x"], "to": None},
    }
    assert api_a.data("R-1") == {"refId": "R-1"}


def test_a_null_for_a_field_never_stored_writes_no_entry(api_a, kept):
    api_a.post([api_a.entry("R-1", customField01="gold")])

    answer = stored(api_a.post([api_a.entry("R-1", customField02=None, email=None)]))

    assert answer["unchanged"] == 1
    assert [e["action"] for e in entries_of(api_a, "R-1")] == ["created"]
    assert rows(api_a.tenant).count() == 1


def test_ignored_fields_alone_changing_writes_no_entry(api_a, kept):
    api_a.post([api_a.entry("R-1", customField01="gold")])

    answer = stored(
        api_a.post([api_a.entry("R-1", customField01="silver")], ignored=["customField01"])
    )

    assert answer["unchanged"] == 1
    assert [e["action"] for e in entries_of(api_a, "R-1")] == ["created"]
    assert api_a.data("R-1")["customField01"] == "gold"


def test_a_key_sent_twice_in_one_request_gives_two_entries_in_order(api_a, api_b, kept):
    answer = stored(
        api_a.post(
            [
                api_a.entry("R-1", customField01="first"),
                api_a.entry("R-2", customField01="other"),
                api_a.entry("R-1", customField01="second", customField02="x"),
                api_a.entry("R-1", customField01="second", customField02="x"),  # unchanged
                api_a.entry("R-1", customField02=None),
            ]
        )
    )
    stored(api_b.post([api_b.entry("R-1", customField01="B")]))

    assert [r["action"] for r in answer["results"]] == [
        "created",
        "created",
        "updated",
        "unchanged",
        "updated",
    ]
    at = record_of(api_a, "R-1")["updatedAt"]
    request_id = answer["requestId"]
    assert entries_of(api_a, "R-1") == [
        {
            "requestId": request_id,
            "action": "updated",
            "source": "CRM",
            "at": at,
            "changes": {"customField02": {"from": "x", "to": None}},
        },
        {
            "requestId": request_id,
            "action": "updated",
            "source": "CRM",
            "at": at,
            "changes": {
                "customField01": {"from": "first", "to": "second"},
                "customField02": {"from": None, "to": "x"},
            },
        },
        {
            "requestId": request_id,
            "action": "created",
            "source": "CRM",
            "at": at,
            "changes": created_changes({"refId": "R-1", "customField01": "first"}),
        },
    ]
    assert [e["action"] for e in entries_of(api_a, "R-2")] == ["created"]
    # In entry order by id: R-1 created, R-2 created, R-1 updated twice.
    assert list(rows(api_a.tenant).order_by("pk").values_list("key", "action")) == [
        ("R-1", "created"),
        ("R-2", "created"),
        ("R-1", "updated"),
        ("R-1", "updated"),
    ]
    assert rows(api_b.tenant).count() == 1


def test_rejected_entries_write_no_history(api_a, api_b, kept):
    api_a.post([api_a.entry("R-1", customField01="gold")])

    partly = api_a.post(
        [
            api_a.entry("R-1", customFieldLong01="many"),  # rejected: not an integer
            api_a.entry("R-2", customFieldLong01="many"),  # rejected: no record either
            api_a.entry("R-3", customField01="ok"),
        ]
    )
    body = partly.json()
    assert partly.status_code == 200, body
    assert (body["failed"], body["created"]) == (2, 1)
    every = api_a.post([api_a.entry("R-1", customFieldLong01="x"), {"refId": "R-4"}])
    assert every.status_code == 400, every.content
    assert every.json()["failed"] == 2

    assert [e["action"] for e in entries_of(api_a, "R-1")] == ["created"]
    assert [e["action"] for e in entries_of(api_a, "R-3")] == ["created"]
    error_of(history_get(api_a, "R-2"), 404, "NOT_FOUND")
    assert sorted(rows(api_a.tenant).values_list("key", flat=True)) == ["R-1", "R-3"]
    assert not rows(api_a.tenant).filter(request_id=every.json()["requestId"]).exists()
    assert not RecordHistory.objects.filter(organization=api_b.tenant.organization).exists()


def test_a_model_without_the_tag_keeps_no_history(api_a, api_b):
    keep_history(api_b.tenant)  # only B's model keeps history
    api_a.post([api_a.entry("R-1", customField01="gold")])
    api_a.post([api_a.entry("R-1", customField01="silver")])
    api_b.post([api_b.entry("R-1", customField01="gold")])

    body = history_of(api_a, "R-1")

    assert body == {"success": True, "historyKept": False, "history": [], "next": None}
    assert not rows(api_a.tenant).exists()
    assert rows(api_b.tenant).count() == 1
    assert history_of(api_b, "R-1")["historyKept"] is True
    # Its paging parameters are checked all the same.
    error_of(history_get(api_a, "R-1", limit="x"), 400, "MISSING_INFO")


def test_another_custom_model_of_the_tenant_keeps_its_own_history(api_a, kept):
    """Only the tagged model keeps history; the same key in another model is another record."""
    visit = api_a.custom_model("Visit", ["customField01"])
    logged = api_a.custom_model("Logged", ["customField01"], tags=[TAG_KEEP_HISTORY])

    answer = stored(
        api_a.post(
            [
                api_a.entry("R-1", customField01="member"),
                {"momCode": visit.mom_code, "refId": "R-1", "customField01": "visit"},
                {"momCode": logged.mom_code, "refId": "R-1", "customField01": "logged"},
            ]
        )
    )

    assert answer["created"] == 3
    assert [e["changes"] for e in entries_of(api_a, "R-1")] == [
        created_changes({"refId": "R-1", "customField01": "member"})
    ]
    assert history_of(api_a, "R-1", mom_code=visit.mom_code) == {
        "success": True,
        "historyKept": False,
        "history": [],
        "next": None,
    }
    assert [e["changes"] for e in entries_of(api_a, "R-1", mom_code=logged.mom_code)] == [
        created_changes({"refId": "R-1", "customField01": "logged"})
    ]
    assert sorted(rows(api_a.tenant).values_list("data_model", flat=True)) == sorted(
        [api_a.tenant.model.pk, logged.pk]
    )


def test_switching_the_tag_on_later_starts_history_from_then(api_a, api_b):
    api_a.post([api_a.entry("R-1", customField01="gold")])
    api_a.post([api_a.entry("R-1", customField01="silver")])
    api_b.post([api_b.entry("R-1", customField01="gold")])
    assert not RecordHistory.objects.exists()

    keep_history(api_a.tenant)
    later = stored(api_a.post([api_a.entry("R-1", customField01="bronze")]))
    b_later = stored(api_b.post([api_b.entry("R-1", customField01="silver")]))

    assert entries_of(api_a, "R-1") == [
        {
            "requestId": later["requestId"],
            "action": "updated",
            "source": "CRM",
            "at": record_of(api_a, "R-1")["updatedAt"],
            "changes": {"customField01": {"from": "silver", "to": "bronze"}},
        }
    ]
    assert b_later["updated"] == 1
    assert not rows(api_b.tenant).exists()  # B's model was never tagged
    assert history_of(api_b, "R-1")["historyKept"] is False

    # Switched off again: no more entries, and the history is not shown.
    stop_history(api_a.tenant)
    stored(api_a.post([api_a.entry("R-1", customField01="iron")]))
    assert history_of(api_a, "R-1") == {
        "success": True,
        "historyKept": False,
        "history": [],
        "next": None,
    }
    assert list(rows(api_a.tenant).values_list("request_id", flat=True)) == [later["requestId"]]


# --- tenants -------------------------------------------------------------------------------


def test_tenant_b_cannot_read_tenant_a_history(api_a, api_b, kept):
    stored(api_a.post([api_a.entry("R-1", customField01="A's secret")]))
    stored(api_a.post([api_a.entry("A-ONLY", customField01="A's")]))

    # A's momCode, or B's own for a key only A has: as if it did not exist.
    with_a_code = error_of(
        history_get(api_b, "R-1", mom_code=api_a.tenant.mom_code), 404, "NOT_FOUND"
    )
    assert with_a_code["message"] == "No custom-model record with key R-1"
    assert "A's secret" not in json.dumps(with_a_code)
    error_of(history_get(api_b, "A-ONLY"), 404, "NOT_FOUND")
    assert not rows(api_b.tenant).exists()


def test_same_mom_code_and_key_in_two_tenants_keep_two_histories(api_a, api_b, kept):
    """Tenant B's model takes tenant A's momCode (momCodes are unique per tenant): the
    same objectType, momCode and key in both, yet each reads its own history only."""
    shared = services.custom_model_create(
        organization=api_b.tenant.organization,
        name="Copy",
        mom_code=api_a.tenant.mom_code,
        tags=[TAG_KEEP_HISTORY],
    )
    services.field_definition_create(
        organization=api_b.tenant.organization, data_model=shared, name="customField01"
    )
    code = api_a.tenant.mom_code
    a_answers = [
        stored(api_a.post([{"momCode": code, "refId": "R-1", "customField01": v}]))
        for v in ("a1", "a2")
    ]
    b_answers = [
        stored(api_b.post([{"momCode": code, "refId": "R-1", "customField01": v}]))
        for v in ("b1", "b2", "b3")
    ]

    a_history = entries_of(api_a, "R-1", mom_code=code)
    b_history = entries_of(api_b, "R-1", mom_code=code)

    assert [e["requestId"] for e in a_history] == [a["requestId"] for a in reversed(a_answers)]
    assert [e["requestId"] for e in b_history] == [b["requestId"] for b in reversed(b_answers)]
    assert [e["changes"]["customField01"] for e in a_history] == [
        {"from": "a1", "to": "a2"},
        {"from": None, "to": "a1"},
    ]
    assert [e["changes"]["customField01"] for e in b_history] == [
        {"from": "b2", "to": "b3"},
        {"from": "b1", "to": "b2"},
        {"from": None, "to": "b1"},
    ]
    assert rows(api_a.tenant).count() == 2 and rows(api_b.tenant).count() == 3
    assert set(rows(api_b.tenant).values_list("data_model", flat=True)) == {shared.pk}
    # B's cursors do not reach into A's entries either.
    page = history_of(api_b, "R-1", mom_code=code, limit=1)
    rest = history_of(api_b, "R-1", mom_code=code, limit=200, cursor=page["next"])
    assert [e["requestId"] for e in page["history"] + rest["history"]] == [
        b["requestId"] for b in reversed(b_answers)
    ]


def test_history_needs_the_read_api_authentication(api_a, api_b, kept):
    api_a.post([api_a.entry("R-1", customField01="gold")])
    url = f"{HISTORY_URL}/custom-model/R-1"
    params = {"momCode": api_a.tenant.mom_code}

    missing = api_a.client.get(url, params)
    wrong_key = api_a.client.get(
        url, params, headers={"TOKEN": api_a.token, "API_KEY": api_b.tenant.raw_key}
    )
    lower = api_a.client.get(
        url, params, headers={"token": api_a.token, "api_key": api_a.tenant.raw_key}
    )

    assert missing.status_code == 401, missing.content
    assert missing.json()["success"] is False
    assert wrong_key.status_code == 401, wrong_key.content
    assert "gold" not in missing.content.decode() + wrong_key.content.decode()
    assert lower.status_code == 200, lower.content
    assert [e["action"] for e in lower.json()["history"]] == ["created"]


# --- pages ---------------------------------------------------------------------------------


def _five_entries(api: Ingest) -> list[str]:
    """Five entries of R-1, one request each; their requestIds, newest first."""
    ids = [stored(api.post([api.entry("R-1", customFieldLong01=n)]))["requestId"] for n in range(5)]
    return ids[::-1]


def test_limit_and_cursor_walk_the_pages_newest_first(api_a, api_b, kept):
    newest_first = _five_entries(api_a)
    _five_entries(api_b)

    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = history_of(api_a, "R-1", **params)
        assert body["historyKept"] is True
        pages.append([e["requestId"] for e in body["history"]])
        cursor = body["next"]
        if cursor is None:
            break

    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert [e["requestId"] for e in entries_of(api_a, "R-1")] == newest_first
    # The oldest's changes, the newest's: created from nothing, then 3 → 4.
    full = entries_of(api_a, "R-1")
    assert full[-1]["changes"] == created_changes({"refId": "R-1", "customFieldLong01": 0})
    assert full[0]["changes"] == {"customFieldLong01": {"from": 3, "to": 4}}
    # An exact last page has no next.
    assert history_of(api_a, "R-1", limit=5)["next"] is None
    assert history_of(api_a, "R-1", limit=4)["next"] is not None


def test_cursor_is_stable_when_newer_entries_arrive(api_a, kept):
    newest_first = _five_entries(api_a)
    first = history_of(api_a, "R-1", limit=2)

    newer = stored(api_a.post([api_a.entry("R-1", customFieldLong01=99)]))["requestId"]
    rest = history_of(api_a, "R-1", limit=200, cursor=first["next"])

    assert [e["requestId"] for e in rest["history"]] == newest_first[2:]
    assert rest["next"] is None
    assert [e["requestId"] for e in entries_of(api_a, "R-1")] == [newer, *newest_first]


def test_default_limit_is_50_and_200_is_allowed(api_a, kept):
    values = list(range(51))
    # 51 entries: a key sent 50 times in one request, then once more.
    stored(api_a.post([api_a.entry("R-1", customFieldLong01=v) for v in values[:50]]))
    stored(api_a.post([api_a.entry("R-1", customFieldLong01=values[50])]))

    default = history_of(api_a, "R-1")
    everything = history_of(api_a, "R-1", limit=200)
    rest = history_of(api_a, "R-1", cursor=default["next"])

    assert len(default["history"]) == 50 and default["next"] is not None
    assert len(everything["history"]) == 51 and everything["next"] is None
    assert everything["history"][:50] == default["history"]
    assert rest["history"] == everything["history"][50:]
    assert rest["history"][0]["action"] == "created" and rest["next"] is None
    tos = [e["changes"]["customFieldLong01"]["to"] for e in everything["history"]]
    assert tos == values[::-1]


@pytest.mark.parametrize("limit", ["0", "201", "x", "-1", "1.5", " "])
def test_bad_limit_answers_400(api_a, api_b, kept, limit):
    api_a.post([api_a.entry("R-1", customField01="gold")])

    response = history_get(api_a, "R-1", limit=limit)

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: limit"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "!!!",
        _b64("not a cursor"),
        _b64("hx"),
        _b64("h"),
        _b64("h1.5"),
        "/w",  # not UTF-8
    ],
)
def test_bad_cursor_answers_400(api_a, kept, cursor):
    api_a.post([api_a.entry("R-1", customField01="gold")])

    response = history_get(api_a, "R-1", cursor=cursor)

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: cursor"


@pytest.mark.parametrize("cursor", [_b64("h" + "9" * 30), _b64("h-" + "9" * 30)])
def test_a_cursor_past_any_id_answers_no_server_error(api_a, kept, cursor):
    """A cursor never handed out, with an id out of the column's range: a 400 or a page,
    never a 500."""
    api_a.post([api_a.entry("R-1", customField01="gold")])

    response = history_get(api_a, "R-1", cursor=cursor)

    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: cursor"


# --- which records -------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"momCode": ""}, {"momCode": "  "}])
def test_custom_model_without_mom_code_answers_400(api_a, kept, params):
    api_a.post([api_a.entry("R-1", customField01="gold")])

    response = api_a.client.get(f"{HISTORY_URL}/custom-model/R-1", params, headers=auth(api_a))

    assert error_of(response, 400, "MISSING_INFO")["message"] == "Invalid value of: momCode"


@pytest.mark.parametrize(
    ("object_type", "key", "mom_code"),
    [
        ("custom-model", "R-2", "own"),  # unknown key
        ("custom-model", "r-1", "own"),  # keys are exact
        ("custom-model", "R-1", "M-AAAAA-O-AAAAA-M"),  # unknown momCode
        ("customer-identity", "R-1", None),  # the key of another model
        ("order", "R-1", None),
        ("nope", "R-1", None),
    ],
)
def test_no_such_record_answers_404(api_a, kept, object_type, key, mom_code):
    api_a.post([api_a.entry("R-1", customField01="gold")])

    response = history_get(api_a, key, object_type=object_type, mom_code=mom_code)

    body = error_of(response, 404, "NOT_FOUND")
    assert body["message"] == f"No {object_type} record with key {key}"


def test_a_key_with_a_slash_and_spaces(api_a, kept):
    answer = stored(api_a.post([api_a.entry("a/b c", customField01="gold")]))

    (entry,) = entries_of(api_a, "a/b c")

    assert entry["requestId"] == answer["requestId"]
    assert entry["changes"]["refId"] == {"from": None, "to": "a/b c"}


ORDER = {
    "orderId": "O-1",
    "orderStatus": "new",
    "customerId": "C-1",
    "customerName": "An",
    "customerEmail": "an@example.test",
    "items": [{"productSku": "SKU-1", "productName": "Tea"}],
}


def test_system_model_keeps_its_spec_tags_so_no_history(api_a, api_b, kept):
    order_model = api_a.system_model("order")
    assert order_model.tags == []

    # Tags are set on custom models only: the system model is refused, and unchanged.
    with pytest.raises(ValidationError) as refused:
        services.custom_model_tags_set(
            organization=api_a.tenant.organization, data_model=order_model, tags=[TAG_KEEP_HISTORY]
        )
    assert refused.value.message_dict == {"model": ["Unknown custom model."]}
    order_model.refresh_from_db()
    assert order_model.tags == []
    # Nor through another organization's call.
    with pytest.raises(ValidationError):
        services.custom_model_tags_set(
            organization=api_b.tenant.organization,
            data_model=api_a.tenant.model,
            tags=[TAG_KEEP_HISTORY],
        )

    created = stored(api_a.post([ORDER], object_type="order"))
    updated = stored(api_a.post([{**ORDER, "orderStatus": "paid"}], object_type="order"))
    stored(api_b.post([ORDER], object_type="order"))

    assert (created["created"], updated["updated"]) == (1, 1)
    assert history_of(api_a, "O-1", object_type="order") == {
        "success": True,
        "historyKept": False,
        "history": [],
        "next": None,
    }
    assert record_of(api_a, "O-1", "order")["data"]["orderStatus"] == "paid"
    assert not RecordHistory.objects.exists()
    error_of(history_get(api_a, "O-2", object_type="order"), 404, "NOT_FOUND")


def test_user_event_entries_write_no_history(api_a, api_b, kept):
    """`user-event` entries are events, not records: even were its model tagged (forced
    here; the services refuse tags on system models), they keep no history."""
    user_event_model = api_a.system_model("user-event")
    user_event_model.tags = [*user_event_model.tags, TAG_KEEP_HISTORY]
    user_event_model.save(update_fields=["tags"])
    event = {
        "source": "web",
        "sourceId": "S-1",
        "channel": "Online",
        "eventCtg": "Other",
        "eventName": "page_view",
        "eventAt": 1_709_251_200_000,
    }

    first = stored(api_a.post([event], object_type="user-event"))
    again = stored(
        api_a.post(
            [event, {**event, "sourceId": "S-2"}, {**event, "sourceId": "S-3"}],
            object_type="user-event",
        )
    )
    stored(api_a.post([api_a.entry("R-1", customField01="gold")]))

    assert first["created"] == 1
    assert (again["unchanged"], again["created"]) == (1, 2)
    assert UserEvent.objects.filter(organization=api_a.tenant.organization).count() == 3
    assert list(rows(api_a.tenant).values_list("key", "data_model")) == [
        ("R-1", api_a.tenant.model.pk)
    ]
    assert not rows(api_a.tenant).filter(data_model=user_event_model).exists()
    error_of(history_get(api_a, "S-1", object_type="user-event"), 404, "NOT_FOUND")
    assert not rows(api_b.tenant).exists()


# --- flags ---------------------------------------------------------------------------------


def test_init_data_writes_history_and_only_suppresses_events(api_a, api_b, kept):
    config = journey_event_config_create(
        organization=api_a.tenant.organization,
        data_model=api_a.tenant.model,
        trigger="Created",
        settings=UserEventSettings(event_name="membership_created", category="UserIdentity"),
    )

    created = stored(
        send(
            api_a,
            [api_a.entry("R-1", customField01="gold")],
            query={"initData": "true"},
            jeConfigId=config.config_id,
        )
    )
    updated = stored(
        send(api_a, [api_a.entry("R-1", customField01="silver")], query={"initData": "true"})
    )

    assert created["initData"] is True
    assert created["events"] == {"generated": 0, "suppressed": 1, "dropped": 0}
    assert not UserEvent.objects.filter(organization=api_a.tenant.organization).exists()
    assert [(e["requestId"], e["action"], e["changes"]) for e in entries_of(api_a, "R-1")] == [
        (updated["requestId"], "updated", {"customField01": {"from": "gold", "to": "silver"}}),
        (
            created["requestId"],
            "created",
            created_changes({"refId": "R-1", "customField01": "gold"}),
        ),
    ]
    assert rows(api_a.tenant).count() == 2
    assert not rows(api_b.tenant).exists()


def test_dry_run_writes_no_history(api_a, api_b, kept):
    real = stored(api_a.post([api_a.entry("R-1", customField01="gold")]))
    stored(api_b.post([api_b.entry("R-1", customField01="gold")]))
    before = list(RecordHistory.objects.order_by("pk").values())

    dry_update = send(
        api_a,
        [api_a.entry("R-1", customField01="silver"), api_a.entry("R-NEW", customField01="x")],
        query={"dryRun": "true"},
    )
    dry_body = dry_update.json()

    assert dry_update.status_code == 200, dry_body
    assert dry_body["dryRun"] is True
    assert [r["action"] for r in dry_body["results"]] == ["updated", "created"]
    assert dry_body["results"][0]["changes"] == {"customField01": {"from": "gold", "to": "silver"}}
    assert list(RecordHistory.objects.order_by("pk").values()) == before
    assert [e["requestId"] for e in entries_of(api_a, "R-1")] == [real["requestId"]]
    error_of(history_get(api_a, "R-NEW"), 404, "NOT_FOUND")

    # The same request for real then writes what the dry run showed.
    for_real = stored(
        send(
            api_a,
            [api_a.entry("R-1", customField01="silver"), api_a.entry("R-NEW", customField01="x")],
        )
    )
    newest = entries_of(api_a, "R-1")[0]
    assert (newest["requestId"], newest["changes"]) == (
        for_real["requestId"],
        dry_body["results"][0]["changes"],
    )
    assert rows(api_a.tenant).count() == 3


def test_a_replayed_request_writes_no_second_entry(api_a, kept):
    headers = {**auth(api_a), "Idempotency-Key": "retry-0001"}
    body = json.dumps(
        {
            "objectType": "custom-model",
            "source": "CRM",
            "entries": [api_a.entry("R-1", customField01="gold")],
        }
    )

    first = api_a.client.post(
        INGEST_URL, data=body, content_type="application/json", headers=headers
    )
    retry = api_a.client.post(
        INGEST_URL, data=body, content_type="application/json", headers=headers
    )

    assert first.status_code == retry.status_code == 200
    assert retry.json()["requestId"] == first.json()["requestId"]
    assert [e["requestId"] for e in entries_of(api_a, "R-1")] == [first.json()["requestId"]]
    assert rows(api_a.tenant).count() == 1


def test_a_failed_write_leaves_no_entry(api_a, kept, failing_log_write):
    """The entries are written in the write's transaction: when its last row (the log
    row) fails, no record and no history entry stays."""
    with pytest.raises(Exception):  # noqa: B017 - the database's own error
        api_a.post([api_a.entry("R-1", customField01="gold")])

    assert not api_a.records().exists()
    assert not RecordHistory.objects.exists()


def test_import_keeps_history_too(tmp_path: Path, tenant_a, tenant_b):
    """`import_records` goes through the same plan: past the staging threshold (rows by
    COPY on PostgreSQL) each created record gets its entry, a re-run none."""
    keep_history(tenant_a)
    path = tmp_path / "big.ndjson"
    path.write_text(
        "".join(
            json.dumps(
                {"momCode": tenant_a.mom_code, "refId": f"T-{i:04d}", "customFieldLong01": i}
            )
            + "\n"
            for i in range(600)
        )
    )

    def run() -> None:
        call_command(
            "import_records",
            str(path),
            "--org",
            tenant_a.group_key,
            "--object-type",
            "custom-model",
            "--source",
            "export",
            stdout=StringIO(),
            stderr=StringIO(),
        )

    run()
    run()

    assert rows(tenant_a).count() == 600
    assert set(rows(tenant_a).values_list("action", "source")) == {("created", "export")}
    entry = rows(tenant_a).get(key="T-0007")
    assert entry.changes == created_changes({"refId": "T-0007", "customFieldLong01": 7})
    log = IngestionRequest.objects.filter(organization=tenant_a.organization, created__gt=0).get()
    assert entry.request_id == log.request_id
    assert not rows(tenant_b).exists()


# --- purge ---------------------------------------------------------------------------------


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_record_history", *args, stdout=out)
    return out.getvalue().strip()


def _aged(api: Ingest, key: str, days_old: int) -> RecordHistory:
    stored(api.post([api.entry(key, customField01="v")]))
    entry = rows(api.tenant, key).get()
    RecordHistory.objects.filter(pk=entry.pk).update(
        created_at=timezone.now() - timedelta(days=days_old)
    )
    return entry


def test_purge_deletes_entries_past_the_retention_in_every_organization(api_a, api_b, kept):
    old = [_aged(api_a, "OLD-A1", 91), _aged(api_a, "OLD-A2", 200), _aged(api_b, "OLD-B", 95)]
    young = [_aged(api_a, "YOUNG-A", 89), _aged(api_b, "YOUNG-B", 0)]

    assert purge() == "Deleted 3 record history entries older than 90 days."

    assert set(RecordHistory.objects.values_list("pk", flat=True)) == {e.pk for e in young}
    assert not RecordHistory.objects.filter(pk__in=[e.pk for e in old]).exists()
    # The records stay; their history is gone.
    assert EntityRecord.objects.filter(key__in=["OLD-A1", "OLD-A2", "OLD-B"]).count() == 3
    assert history_of(api_a, "OLD-A1")["history"] == []
    assert [e["action"] for e in entries_of(api_b, "YOUNG-B")] == ["created"]
    assert purge() == "Deleted 0 record history entries older than 90 days."


def test_purge_takes_older_than_and_the_setting(api_a, api_b, kept, settings):
    _aged(api_a, "A-40", 40)
    _aged(api_b, "B-20", 20)
    _aged(api_b, "B-5", 5)

    assert purge("--older-than", "30") == "Deleted 1 record history entry older than 30 days."
    settings.CDP_RECORD_HISTORY_DAYS = 10
    assert purge() == "Deleted 1 record history entry older than 10 days."
    assert purge("--older-than", "1") == "Deleted 1 record history entry older than 1 day."
    assert not RecordHistory.objects.exists()


@pytest.mark.parametrize("days", ["0", "-3"])
def test_purge_refuses_less_than_a_day(api_a, kept, days):
    _aged(api_a, "R-100", 100)  # past the default retention: a fallback would delete it
    _aged(api_a, "R-0", 0)

    with pytest.raises(CommandError, match="at least 1 day"):
        purge("--older-than", days)

    assert rows(api_a.tenant).count() == 2


# --- concurrency ---------------------------------------------------------------------------

THREADS = 6
ROUNDS = 10
KEYS = [f"K-{i:02}" for i in range(5)]
OWN_FIELDS = [f"customField1{i}" for i in range(THREADS)]


def _apply(state: dict[str, Any], changes: dict[str, dict[str, Any]], where: str) -> None:
    for name, change in changes.items():
        assert state.get(name) == change["from"], (where, name, state.get(name), change)
        assert change["from"] != change["to"], (where, name, change)
        if change["to"] is None:
            state.pop(name, None)
        else:
            state[name] = change["to"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_on_the_same_keys_keep_a_consistent_chain(tenant_a, tenant_b, settings):
    """Six threads, ten successive requests each, all on the same five keys (each in its
    own order): per key, the history in id order replays to the stored record, each
    entry's `from` being what the one before left, one entry per request."""
    settings.CDP_INGEST_RATE_LIMITS = [(1_000_000, 1)]  # not what is tested here
    keep_history(tenant_a)
    keep_history(tenant_b)
    for name in OWN_FIELDS:
        services.field_definition_create(
            organization=tenant_a.organization, data_model=tenant_a.model, name=name
        )
    integrators = [ingest_for(tenant_a) for _ in range(THREADS)]
    api, other = integrators[0], ingest_for(tenant_b)
    seeded = stored(api.post([api.entry(k, customField02="seed") for k in KEYS]))
    stored(other.post([other.entry(k, customField01="B") for k in KEYS]))
    barrier = threading.Barrier(THREADS)

    def work(thread: int) -> list[tuple[int, dict[str, Any]]]:
        try:
            barrier.wait(timeout=30)
            answers = []
            for round_ in range(ROUNDS):
                keys = KEYS[:]
                random.Random(thread * 100 + round_).shuffle(keys)
                entries = [
                    api.entry(
                        k,
                        # Shared fields, written by every thread with its own values:
                        customField01=f"t{thread}-r{round_}",
                        customFieldLong01=thread * 100 + round_,
                        # Set and cleared in turns by every thread.
                        customField02=None if round_ % 2 else f"t{thread}",
                        **{OWN_FIELDS[thread]: f"r{round_}"},
                    )
                    for k in keys
                ]
                response = integrators[thread].post(entries)
                answers.append((response.status_code, response.json()))
            return answers
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(work, i) for i in range(THREADS)]
        answers = [a for f in futures for a in f.result(timeout=300)]

    request_ids = set()
    for status, body in answers:
        assert status == 200, body
        assert body["success"] is True and body["updated"] == len(KEYS), body
        request_ids.add(body["requestId"])
    assert len(request_ids) == THREADS * ROUNDS
    for key in KEYS:
        entries = list(rows(tenant_a, key).order_by("pk"))
        assert len(entries) == 1 + THREADS * ROUNDS, key
        assert entries[0].action == "created"
        assert entries[0].request_id == seeded["requestId"]
        assert {e.action for e in entries[1:]} == {"updated"}
        assert {e.request_id for e in entries[1:]} == request_ids
        state: dict[str, Any] = {}
        for n, entry in enumerate(entries):
            _apply(state, entry.changes, f"{key} entry {n}")
        record = api.record(key)
        assert state == record.data, key
        assert entries[-1].created_at == record.updated_at
        # The API's pages, newest first, are the same chain reversed.
        api_history = history_of(api, key, limit=200)["history"]
        assert [e["requestId"] for e in api_history] == [e.request_id for e in reversed(entries)]
    # Tenant B's seed only.
    assert rows(tenant_b).count() == len(KEYS)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_times_follow_the_chain(tenant_a, settings):
    """`at` is the write's time: in a record's history, newest first, the times never go
    up (a later entry is never older than the one before it)."""
    settings.CDP_INGEST_RATE_LIMITS = [(1_000_000, 1)]  # not what is tested here
    keep_history(tenant_a)
    integrators = [ingest_for(tenant_a) for _ in range(THREADS)]
    api = integrators[0]
    stored(api.post([api.entry(k, customField01="seed") for k in KEYS]))
    barrier = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        try:
            barrier.wait(timeout=30)
            for round_ in range(ROUNDS):
                entries = [api.entry(k, customField01=f"t{thread}-r{round_}") for k in KEYS]
                assert integrators[thread].post(entries).status_code == 200
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for future in [pool.submit(work, i) for i in range(THREADS)]:
            future.result(timeout=300)

    for key in KEYS:
        times = [e["at"] for e in history_of(api, key, limit=200)["history"]]
        assert len(times) == 1 + THREADS * ROUNDS
        assert times == sorted(times, reverse=True), key
        assert times[0] == record_of(api, key)["updatedAt"]


def test_keep_history_is_set_beside_the_other_tags(tenant_a):
    """The fixtures' Membership model keeps SUPPORT_IGNORED_UPDATE_CFS when KEEP_HISTORY is
    switched on and off (the ignoredUpdateCfs test above relies on it)."""
    assert tenant_a.model.kind == ModelKind.CUSTOM
    assert tenant_a.model.tags == [TAG_SUPPORT_IGNORED_UPDATE_CFS]
    assert keep_history(tenant_a).tags == BOTH_TAGS
    assert stop_history(tenant_a).tags == [TAG_SUPPORT_IGNORED_UPDATE_CFS]
