"""Constant query count per ingest request (DESIGN §9): the same number of SQL queries for
1 entry and for 50, whatever the mix of created, updated and rejected entries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from journeys.services import journey_event_config_create

pytestmark = pytest.mark.django_db

MAX_QUERIES = 15


def _queries(api, entries, **kwargs) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = api.post(entries, **kwargs)
    return len(captured), response.json()


def _mixed_batch(api, mom_codes: list[str] | None = None) -> list[dict]:
    """50 entries, interleaved: 20 new keys, 20 existing keys with a change, 10 rejected."""
    codes = mom_codes or [api.tenant.mom_code]
    batch = []
    for i in range(50):
        code = codes[i % len(codes)]
        kind = i % 5
        if kind in (0, 1):
            batch.append({"momCode": code, "refId": f"NEW-{i:02}", "customFieldLong01": i})
        elif kind in (2, 3):
            batch.append({"momCode": code, "refId": f"OLD-{i:02}", "customField01": "changed"})
        elif i % 2:
            batch.append({"momCode": code, "refId": f"BAD-{i:02}", "customFieldLong01": "4.2"})
        else:
            batch.append({"refId": f"BAD-{i:02}"})  # no momCode
    return batch


def _seed(api, mom_codes: list[str] | None = None) -> None:
    """The keys the mixed batch updates (and a few more), stored beforehand."""
    codes = mom_codes or [api.tenant.mom_code]
    old = [
        {"momCode": codes[i % len(codes)], "refId": f"OLD-{i:02}", "customField01": "old"}
        for i in range(50)
    ]
    assert api.post(old).json()["created"] == 50


COUNTS = {"total": 50, "created": 20, "updated": 20, "unchanged": 0, "failed": 10}


def _counts(body: dict) -> dict:
    return {k: body[k] for k in COUNTS}


def test_one_entry_and_fifty_mixed_entries_run_the_same_queries(api_a):
    _seed(api_a)

    one, one_body = _queries(api_a, [api_a.entry("SOLO", customField01="x")])
    fifty, fifty_body = _queries(api_a, _mixed_batch(api_a))

    assert (one_body["created"], one_body["failed"]) == (1, 0)
    assert _counts(fifty_body) == COUNTS
    assert one == fifty
    assert fifty <= MAX_QUERIES


def test_query_count_does_not_grow_with_the_number_of_models(api_a):
    other = api_a.custom_model("Other", ["customField01", "customFieldLong01"])
    codes = [api_a.tenant.mom_code, other.mom_code]
    _seed(api_a, codes)

    one, _ = _queries(api_a, [api_a.entry("SOLO", customField01="x")])
    fifty, body = _queries(api_a, _mixed_batch(api_a, codes))

    assert _counts(body) == COUNTS
    assert api_a.records(other).count() == 25 + 10  # seeded OLD keys + new keys
    assert one == fifty <= MAX_QUERIES


def test_updates_and_rejections_alone_run_no_more_queries(api_a):
    _seed(api_a)
    one_update, _ = _queries(api_a, [api_a.entry("OLD-00", customField01="one")])
    fifty_updates, body = _queries(
        api_a, [api_a.entry(f"OLD-{i:02}", customField01="fifty") for i in range(50)]
    )
    assert body["updated"] == 50
    assert one_update == fifty_updates <= MAX_QUERIES

    one_rejected, _ = _queries(api_a, [{"refId": "X"}])
    fifty_rejected, body = _queries(api_a, [{"refId": f"X-{i}"} for i in range(50)])
    assert body["failed"] == 50
    assert one_rejected == fifty_rejected <= MAX_QUERIES


def test_query_count_is_constant_with_a_user_event_config(api_a):
    config = journey_event_config_create(
        organization=api_a.tenant.organization,
        data_model=api_a.tenant.model,
        trigger="Created",
        settings={"eventName": "membership_created", "category": "UserIdentity"},
    )
    _seed(api_a)

    one, one_body = _queries(
        api_a, [api_a.entry("SOLO", customField01="x")], jeConfigId=config.config_id
    )
    fifty, fifty_body = _queries(api_a, _mixed_batch(api_a), jeConfigId=config.config_id)

    assert one_body["events"]["generated"] == 1, one_body
    assert fifty_body["events"]["generated"] == fifty_body["created"] == 20
    assert one == fifty <= MAX_QUERIES


def test_hot_path_stays_under_the_query_budget(api_a, django_assert_max_num_queries):
    _seed(api_a)
    with django_assert_max_num_queries(MAX_QUERIES):
        response = api_a.post(_mixed_batch(api_a))
    assert response.status_code == 200
