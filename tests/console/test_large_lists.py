"""The event log and the ingestion log stay fast however large they grow: the count stops
at a cap (and the page says "more than"), no query counts or scans the whole table, the
filters' choices come from the organization's models and User Events."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cdp import console as console_module
from ingestion.console import console_ingest
from journeys.models import UserEvent
from tests.console.conftest import url, user_event_create


def _send(tenant, keys, config=None):
    body = {
        "objectType": "custom-model",
        "source": "CRM",
        "jeConfigId": config.config_id if config else None,
        "entries": [{"momCode": tenant.mom_code, "refId": key} for key in keys],
    }
    return console_ingest(
        api_key=tenant.api_key, body=json.dumps(body), init_data=False, request_id=uuid.uuid4().hex
    )


@pytest.fixture
def small_cap(monkeypatch):
    monkeypatch.setattr(console_module, "COUNT_CAP", 3)


def _unbounded_counts(queries) -> list[str]:
    """COUNT queries over a table rather than over a LIMITed subquery."""
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    return [sql for sql in counts if not re.search(r"LIMIT \d+", sql, re.IGNORECASE)]


@pytest.mark.parametrize(
    "page", ["journeys_userevent_changelist", "ingestion_ingestionrequest_changelist"]
)
def test_past_the_cap_the_list_says_more_than_and_counts_no_further(
    console, admin_a, tenant_a, tenant_b, small_cap, page
):
    config = user_event_create(tenant_a)
    for n in range(5):
        _send(tenant_a, [f"R-{n}"], config)
    _send(tenant_b, ["B-1"])
    console.force_login(admin_a)

    with CaptureQueriesContext(connection) as queries:
        response = console.get(url(page))

    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'id="capped-count">more than 3 ', html), html[-3000:]
    assert len(response.context["cl"].result_list) == 5  # the page itself is whole
    assert _unbounded_counts(queries.captured_queries) == []
    # DISTINCT over the table: neither filters nor the date hierarchy need one.
    assert not [q for q in queries.captured_queries if "DISTINCT" in q["sql"].upper()]


def test_below_the_cap_the_list_counts_exactly(console, admin_a, tenant_a):
    config = user_event_create(tenant_a)
    _send(tenant_a, ["R-1", "R-2"], config)
    console.force_login(admin_a)

    response = console.get(url("journeys_userevent_changelist"))

    assert "capped-count" not in response.content.decode()
    assert "2 events" in response.content.decode()


def test_filter_choices_come_from_the_organizations_models_and_user_events(
    console, admin_a, tenant_a, tenant_b
):
    mine = user_event_create(tenant_a, event_name="member_joined")
    user_event_create(tenant_b, event_name="globex_only")
    _send(tenant_a, ["R-1"], mine)
    console.force_login(admin_a)

    response = console.get(url("journeys_userevent_changelist"))

    html = response.content.decode()
    assert "?event_name=member_joined" in html
    assert f"?source={tenant_a.mom_code}" in html
    assert "globex_only" not in html and tenant_b.mom_code not in html


def test_the_date_hierarchy_probes_years_months_and_days(console, admin_a, tenant_a):
    config = user_event_create(tenant_a)
    _send(tenant_a, ["R-1"], config)
    event = UserEvent.objects.get()
    console.force_login(admin_a)
    changelist = url("journeys_userevent_changelist")
    at = event.event_at

    years = console.get(changelist)
    months = console.get(changelist, {"event_at__year": at.year})
    days = console.get(changelist, {"event_at__year": at.year, "event_at__month": at.month})

    assert f"event_at__year={at.year}" in years.content.decode()
    assert f"event_at__month={at.month}" in months.content.decode()
    assert f"event_at__day={at.day}" in days.content.decode()
    assert len(days.context["cl"].result_list) == 1


def test_the_source_id_search_is_an_exact_match_the_index_serves(console, admin_a, tenant_a):
    config = user_event_create(tenant_a)
    _send(tenant_a, ["R-1", "r-1", "R-10"], config)
    console.force_login(admin_a)

    with CaptureQueriesContext(connection) as queries:
        response = console.get(url("journeys_userevent_changelist"), {"q": "R-1"})

    assert [e.source_id for e in response.context["cl"].result_list] == ["R-1"]
    searched = [q["sql"] for q in queries.captured_queries if "journeys_userevent" in q["sql"]]
    assert searched and not [sql for sql in searched if "UPPER(" in sql or "LIKE" in sql]


def test_large_lists_offer_no_filter_counts(console, admin_a, tenant_a):
    """Django's "Show counts" would count every filter choice over the whole table."""
    console.force_login(admin_a)
    for name in (
        "ingestion_ingestionrequest_changelist",
        "journeys_userevent_changelist",
        "cdp_entityrecord_changelist",
    ):
        page = console.get(url(name) + "?_facets=True")
        assert page.status_code == 200
        assert "Show counts" not in page.content.decode(), name
        assert page.context["cl"].add_facets is False, name
