"""The Console's home page is the dashboard of one organization: entries ingested and
rejected per hour (a chart drawn on the server), the top rejection messages, events per
User Event, failing callbacks and destinations. Its numbers are the chosen organization's
only, a member picks only among their own, each number links to the list it counts, and
its queries are few, fixed in number and bounded (by the organization and a time range on
an indexed column, or a LIMIT)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cdp import services
from cdp.console import ConsoleSite, dashboard_window
from ingestion.admin import dashboard as ingestion_dashboard
from ingestion.destinations import destination_create
from ingestion.models import (
    CallbackDelivery,
    CallbackStatus,
    DestinationDelivery,
    IngestionRequest,
)
from journeys.models import (
    JourneyEventConfig,
    UserEvent,
    config_id_generate,
    event_key_generate,
)
from tests.console.conftest import url

# Session, user, memberships, the organizations to choose from; the hourly chart, the
# rejection messages, events per User Event and their names, failed callbacks, failing
# destinations; the admin's "Recent actions".
DASHBOARD_QUERIES = 11


@pytest.fixture
def now(monkeypatch) -> datetime:
    """A fixed "now" at half past an hour, so that no test runs across an hour's end."""
    fixed = timezone.now().replace(minute=30, second=0, microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: fixed)
    return fixed


@pytest.fixture
def window(now) -> tuple[datetime, datetime]:
    return dashboard_window()


def logged(
    tenant,
    at: datetime,
    *,
    created: int = 0,
    updated: int = 0,
    unchanged: int = 0,
    failed: int = 0,
    results: list[dict[str, Any]] | None = None,
) -> IngestionRequest:
    """A row of the Ingestion log at `at` (created_at is set on insert; moved after)."""
    total = created + updated + unchanged + failed
    row = IngestionRequest.objects.create(
        organization=tenant.organization,
        request_id=uuid.uuid4().hex,
        object_type="custom-model",
        total=total,
        created=created,
        updated=updated,
        unchanged=unchanged,
        failed=failed,
        results=results or [],
        status=400 if failed and failed == total else 200,
    )
    IngestionRequest.objects.filter(pk=row.pk).update(created_at=at)
    return row


def rejected(message: str, index: int = 0) -> dict[str, Any]:
    return {"index": index, "refId": f"R-{index}", "status": 101, "errorMessage": message}


def user_event(tenant, event_name: str, trigger: str = "Created") -> JourneyEventConfig:
    """A User Event, stored as is: what it generates is not this module's concern."""
    return JourneyEventConfig.objects.create(
        organization=tenant.organization,
        data_model=tenant.model,
        config_id=config_id_generate(group_key=tenant.group_key, trigger=trigger),
        event_key=event_key_generate(),
        trigger=trigger,
        event_name=event_name,
        category="UserIdentity",
    )


def event(tenant, config, at: datetime, **fields: Any) -> UserEvent:
    return UserEvent.objects.create(
        organization=tenant.organization,
        config=config,
        source="Membership",
        source_id=uuid.uuid4().hex[:10],
        condition="Created",
        event_name=config.event_name if config else "ingested_visit",
        event_at=at,
        created_at=at,
        **fields,
    )


def callback(tenant, status: str) -> CallbackDelivery:
    now = timezone.now()
    return CallbackDelivery.objects.create(
        organization=tenant.organization,
        request_id=uuid.uuid4().hex,
        body="{}",
        status=status,
        next_attempt_at=now,
        created_at=now,
    )


def delivery(tenant, destination, status: str) -> DestinationDelivery:
    now = timezone.now()
    return DestinationDelivery.objects.create(
        organization=tenant.organization,
        destination=destination,
        webhook_id=f"msg_{uuid.uuid4().hex}",
        request_id=uuid.uuid4().hex,
        event_ids=[],
        status=status,
        next_attempt_at=now,
        created_at=now,
    )


class _Elements(HTMLParser):
    """Every start tag of a page, with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


def elements(html: str, tag: str, css_class: str = "") -> list[dict[str, str]]:
    parser = _Elements()
    parser.feed(html)
    return [
        attrs
        for name, attrs in parser.tags
        if name == tag and (not css_class or css_class in attrs.get("class", "").split())
    ]


def href(html: str, element_id: str) -> str:
    (found,) = [a for a in elements(html, "a") if a.get("id") == element_id]
    return found["href"]


def panel(html: str, key: str) -> str:
    """The HTML of one dashboard panel."""
    start = html.index(f'id="dashboard-{key}"')
    end = html.find('<section class="module dashboard-panel"', start)
    return html[start : end if end != -1 else None]


# --- the chart ----------------------------------------------------------------------------


def test_the_chart_has_24_bars_as_high_as_each_hours_entries(
    console, admin_a, tenant_a, tenant_b, window
):
    start, end = window
    logged(tenant_a, start + timedelta(minutes=5), created=20, updated=10, failed=4)
    logged(tenant_a, start + timedelta(minutes=50), failed=6)  # the same hour: 30 + 10
    logged(tenant_a, start + timedelta(hours=5, minutes=1), unchanged=10)
    logged(tenant_a, end - timedelta(minutes=1), created=5, failed=5)  # the current hour
    logged(tenant_a, start - timedelta(seconds=1), created=1000)  # before the window
    logged(tenant_b, start + timedelta(hours=5), created=999, failed=999)  # B's
    console.force_login(admin_a)

    html = console.get(url("index")).content.decode()

    ingested = elements(html, "rect", "bar-ingested")
    rejected_bars = elements(html, "rect", "bar-rejected")
    assert len(ingested) == len(rejected_bars) == 24
    # The tallest hour holds 40 entries: the scale tops at 50, 120 units high.
    expected_ingested = [0.0] * 24
    expected_rejected = [0.0] * 24
    expected_ingested[0], expected_rejected[0] = 72.0, 24.0  # 30 and 10 of 50
    expected_ingested[5] = 24.0  # 10
    expected_ingested[23], expected_rejected[23] = 12.0, 12.0  # 5 and 5
    assert [float(bar["height"]) for bar in ingested] == expected_ingested
    assert [float(bar["height"]) for bar in rejected_bars] == expected_rejected
    # Rejected entries stack on the ingested ones; every bar stands on the axis.
    assert float(ingested[0]["y"]) == 128.0 - 72.0
    assert float(rejected_bars[0]["y"]) == 128.0 - 96.0
    assert float(ingested[7]["y"]) == 128.0
    hours = [g["data-hour"] for g in elements(html, "g", "dashboard-hour")]
    assert hours[0] == timezone.localtime(start).isoformat()
    assert hours[-1] == timezone.localtime(end - timedelta(hours=1)).isoformat()
    numbers = panel(html, "ingestion")
    assert re.search(r"<strong>45</strong> entries ingested", numbers)
    assert re.search(r"<strong>15</strong> rejected", numbers)
    assert "in 4 requests" in numbers
    # Drawn on the server: no script, nothing from elsewhere.
    assert "<script" not in numbers and "http" not in numbers.replace(
        "http://www.w3.org/2000/svg", ""
    )


def test_the_scale_is_a_round_number_above_the_tallest_hour():
    assert [ingestion_dashboard.chart_scale(n) for n in (0, 1, 3, 40, 120, 5000, 5001)] == [
        1,
        1,
        5,
        50,
        200,
        5000,
        10000,
    ]


# --- whose numbers --------------------------------------------------------------------------


@pytest.fixture
def both_organizations(tenant_a, tenant_b, window):
    """Data in both organizations; A's user is also a viewer of B."""
    start, _ = window
    services.member_add(organization=tenant_b.organization, user=tenant_a.user, role="viewer")
    logged(
        tenant_a,
        start + timedelta(hours=1),
        created=11,
        failed=1,
        results=[rejected("rejected-in-a")],
    )
    logged(
        tenant_b,
        start + timedelta(hours=2),
        created=22,
        failed=2,
        results=[rejected("rejected-in-b")],
    )
    config_a = user_event(tenant_a, "a_joined")
    config_b = user_event(tenant_b, "b_joined")
    event(tenant_a, config_a, start + timedelta(hours=3))
    for _ in range(2):
        event(tenant_b, config_b, start + timedelta(hours=3))
    callback(tenant_a, CallbackStatus.FAILED)
    for _ in range(3):
        callback(tenant_b, CallbackStatus.FAILED)
    destination_a, _ = destination_create(
        organization=tenant_a.organization, name="warehouse-a", url="https://a.example/hook"
    )
    destination_b, _ = destination_create(
        organization=tenant_b.organization, name="warehouse-b", url="https://b.example/hook"
    )
    delivery(tenant_a, destination_a, CallbackStatus.FAILED)
    for _ in range(4):
        delivery(tenant_b, destination_b, CallbackStatus.FAILED)
    return config_a, config_b


def test_the_numbers_are_only_the_chosen_organizations(
    console, admin_a, tenant_a, tenant_b, both_organizations
):
    console.force_login(admin_a)

    first = console.get(url("index"))
    chosen = console.get(url("index"), {"organization": tenant_b.organization.pk})

    # Without a choice: the first organization by name (Acme Retail before Globex).
    assert first.context["dashboard_organization"] == tenant_a.organization
    assert chosen.context["dashboard_organization"] == tenant_b.organization
    for response, mine, theirs in (
        (
            first,
            ("11", "1", "rejected-in-a", "a_joined", "warehouse-a"),
            ("rejected-in-b", "b_joined"),
        ),
        (
            chosen,
            ("22", "2", "rejected-in-b", "b_joined", "warehouse-b"),
            ("rejected-in-a", "a_joined"),
        ),
    ):
        html = response.content.decode()
        ingested, failed, message, user_event, destination = mine
        assert f"<strong>{ingested}</strong> entries ingested" in html
        assert f"<strong>{failed}</strong> rejected" in html
        assert message in panel(html, "rejections")
        assert user_event in panel(html, "user-events")
        assert destination in panel(html, "deliveries")
        for other in theirs:
            assert other not in html
    assert "<strong>1</strong> failed callback delivery" in first.content.decode()
    assert "<strong>3</strong> failed callback deliveries" in chosen.content.decode()
    # The choice lists both, the chosen one selected.
    options = elements(chosen.content.decode(), "option")
    assert [o["value"] for o in options] == [
        str(tenant_a.organization.pk),
        str(tenant_b.organization.pk),
    ]
    assert "selected" in options[1] and "selected" not in options[0]


def test_a_member_cannot_pick_another_organizations_dashboard(
    console, admin_a, tenant_a, tenant_b, now
):
    console.force_login(admin_a)

    for wanted in (tenant_b.organization.pk, 999_999, "x", "-1"):
        response = console.get(url("index"), {"organization": wanted})
        assert response.status_code == 404, wanted
    own = console.get(url("index"), {"organization": tenant_a.organization.pk})
    assert own.status_code == 200
    # A member of one organization gets no choice to make.
    assert not elements(own.content.decode(), "select")


def test_a_superuser_picks_any_organization(console, superuser, tenant_a, tenant_b, now):
    console.force_login(superuser)

    response = console.get(url("index"), {"organization": tenant_b.organization.pk})

    assert response.status_code == 200
    assert response.context["dashboard_organization"] == tenant_b.organization


def test_without_an_organization_the_home_page_has_no_dashboard(console, superuser, now):
    console.force_login(superuser)

    response = console.get(url("index"))

    assert response.status_code == 200
    assert 'id="dashboard"' not in response.content.decode()


# --- the links ----------------------------------------------------------------------------


def test_each_number_links_to_its_list_filtered_the_same_way(
    console, admin_a, tenant_a, tenant_b, both_organizations, window
):
    start, _ = window
    config_a, _ = both_organizations
    logged(tenant_a, start + timedelta(hours=1), created=3)  # ingested, none rejected
    logged(tenant_a, start - timedelta(hours=1), created=1, failed=1)  # before the window
    event(tenant_a, config_a, start - timedelta(minutes=1))  # before the window
    event(tenant_a, None, start + timedelta(hours=1), ingested=True)  # no User Event
    other_config = user_event(tenant_a, "a_other", trigger="Changed")
    event(tenant_a, other_config, start + timedelta(hours=2))
    callback(tenant_a, CallbackStatus.DELIVERED)
    other, _ = destination_create(
        organization=tenant_a.organization, name="crm-a", url="https://crm.example/hook"
    )
    delivery(tenant_a, other, CallbackStatus.DELIVERED)
    console.force_login(admin_a)
    html = console.get(url("index")).content.decode()

    def listed(link: str) -> Any:
        response = console.get(link.replace("&amp;", "&"))
        assert response.status_code == 200, link  # the admin redirects unknown filters
        return response.context["cl"]

    # The Ingestion log: the window's requests; with rejected entries only.
    log = listed(href(html, "dashboard-ingested"))
    assert sorted(r.created for r in log.result_list) == [3, 11]
    log = listed(href(html, "dashboard-rejected"))
    assert [r.failed for r in log.result_list] == [1]
    # A bar: its hour's requests.
    hour_one = ingestion_dashboard.ingestion_log_url(
        organization=tenant_a.organization,
        start=start + timedelta(hours=1),
        end=start + timedelta(hours=2),
    )
    assert hour_one in [a["href"] for a in elements(html, "a")]
    assert sorted(r.created for r in listed(hour_one).result_list) == [3, 11]
    # The Event log: this User Event's events of the window.
    event_links = {a["data-config"]: a["href"] for a in elements(html, "a") if "data-config" in a}
    assert set(event_links) == {str(config_a.pk), str(other_config.pk)}
    events = listed(event_links[str(config_a.pk)])
    assert [e.config_id for e in events.result_list] == [config_a.pk]
    # Failed callbacks, failed deliveries of the destination.
    callbacks = listed(href(html, "dashboard-callbacks-failed"))
    assert [c.status for c in callbacks.result_list] == [CallbackStatus.FAILED]
    assert {c.organization_id for c in callbacks.result_list} == {tenant_a.organization.pk}
    (destination_link,) = [
        a["href"]
        for a in elements(panel(html, "deliveries"), "a")
        if "destination__id" in a["href"]
    ]
    deliveries = listed(destination_link)
    assert [(d.destination.name, d.status) for d in deliveries.result_list] == [
        ("warehouse-a", CallbackStatus.FAILED)
    ]
    # Only failing destinations are listed.
    assert "crm-a" not in panel(html, "deliveries")


# --- events per User Event ---------------------------------------------------------------


def test_user_events_are_listed_most_events_first_then_by_name(
    console, admin_a, tenant_a, tenant_b, window, monkeypatch
):
    start, end = window
    few = user_event(tenant_a, "few")
    beta = user_event(tenant_a, "beta", trigger="Changed")
    alpha = user_event(tenant_a, "alpha", trigger="Changed")
    for config, count in ((few, 1), (beta, 3), (alpha, 3)):
        for n in range(count):
            event(tenant_a, config, start + timedelta(hours=n))
    event(tenant_a, few, end)  # after the window
    theirs = user_event(tenant_b, "theirs")
    for _ in range(5):
        event(tenant_b, theirs, start)
    console.force_login(admin_a)

    def listed() -> list[tuple[str, str]]:
        html = panel(console.get(url("index")).content.decode(), "user-events")
        return re.findall(r'<a href="[^"]+">([a-z]+)</a>.*?data-config="\d+">(\d+)</a>', html, re.S)

    assert listed() == [("alpha", "3"), ("beta", "3"), ("few", "1")]
    monkeypatch.setattr("journeys.dashboard.USER_EVENTS_SHOWN", 2)
    assert listed() == [("alpha", "3"), ("beta", "3")]


def test_the_chart_follows_a_half_hour_time_zone(
    console, admin_a, tenant_a, tenant_b, settings, now
):
    """In a zone half an hour off UTC, the bars are the zone's hours, on either database."""
    settings.TIME_ZONE = "Asia/Kolkata"
    start, end = dashboard_window()
    assert timezone.localtime(start).minute == 0 and start.minute == 30
    logged(tenant_a, start, created=7)  # the first bar
    logged(tenant_a, start - timedelta(seconds=1), created=100)  # before it
    logged(tenant_a, start + timedelta(minutes=59), failed=3)  # still the first bar
    logged(tenant_a, end - timedelta(seconds=1), updated=2)  # the last bar
    console.force_login(admin_a)

    html = console.get(url("index")).content.decode()

    bars = elements(html, "g", "dashboard-hour")
    assert bars[0]["data-hour"] == timezone.localtime(start).isoformat()
    heights = [
        (float(i["height"]), float(r["height"]))
        for i, r in zip(
            elements(html, "rect", "bar-ingested"),
            elements(html, "rect", "bar-rejected"),
            strict=True,
        )
    ]
    # The tallest hour holds 10 entries (7 + 3): the scale tops at 10.
    assert heights[0] == (84.0, 36.0)
    assert heights[23] == (24.0, 0.0)
    assert all(pair == (0.0, 0.0) for pair in heights[1:23])


# --- the rejection messages ------------------------------------------------------------


def test_the_top_rejection_messages_are_counted_over_the_latest_rejecting_requests(
    console, admin_a, tenant_a, tenant_b, window, monkeypatch
):
    start, _ = window
    stored = {"index": 0, "refId": "R-0", "status": 200, "cdpId": "x"}
    logged(
        tenant_a,
        start + timedelta(hours=1),
        created=1,
        failed=1,
        results=[stored, rejected("momCode: required", 1)],
    )
    latest = logged(
        tenant_a,
        start + timedelta(hours=2),
        failed=3,
        results=[
            rejected("momCode: required", 0),
            rejected("momCode: required", 1),
            rejected("customFieldLong01: not an integer", 2),
        ],
    )
    logged(tenant_a, start - timedelta(minutes=1), failed=1, results=[rejected("too old")])
    logged(tenant_b, start + timedelta(hours=1), failed=1, results=[rejected("Globex's")])
    console.force_login(admin_a)

    html = panel(console.get(url("index")).content.decode(), "rejections")

    rows = re.findall(r"<td class=\"dashboard-message\">([^<]+) <a[^>]*href=\"([^\"]+)\"", html)
    assert [(message, link) for message, link in rows] == [
        ("momCode: required", url("ingestion_ingestionrequest_change", latest.pk)),
        ("customFieldLong01: not an integer", url("ingestion_ingestionrequest_change", latest.pk)),
    ]
    counts = re.findall(r'<td class="dashboard-count"><a [^>]*>(\d+)</a>', html)
    assert counts == ["3", "2", "1", "1"]  # entries and requests of each
    assert "too old" not in html and "Globex" not in html
    assert "Counted over the 2 requests that rejected entries" in html

    monkeypatch.setattr(ingestion_dashboard, "REJECTION_REQUESTS", 1)
    html = panel(console.get(url("index")).content.decode(), "rejections")
    counts = re.findall(r'<td class="dashboard-count"><a [^>]*>(\d+)</a>', html)
    assert counts == ["2", "1", "1", "1"]  # the latest request only
    assert "Counted over the latest 1 requests" in html


# --- the queries ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 5])
def test_the_dashboard_makes_a_fixed_number_of_queries(
    console, admin_a, tenant_a, tenant_b, window, django_assert_num_queries, size
):
    """However many requests, events, User Events and destinations: the same queries."""
    start, _ = window
    for n in range(size):
        logged(tenant_a, start + timedelta(hours=n), created=n, failed=1, results=[rejected("x")])
        config = user_event(tenant_a, f"joined_{n}")
        event(tenant_a, config, start + timedelta(hours=n))
        destination, _ = destination_create(
            organization=tenant_a.organization, name=f"d-{n}", url="https://d.example/hook"
        )
        delivery(tenant_a, destination, CallbackStatus.FAILED)
        callback(tenant_a, CallbackStatus.FAILED)
    console.force_login(admin_a)

    with django_assert_num_queries(DASHBOARD_QUERIES):
        response = console.get(url("index"), {"organization": tenant_a.organization.pk})

    assert response.status_code == 200
    assert len(elements(response.content.decode(), "td", "dashboard-count")) == (
        2 + size + size  # a rejection message's two; each User Event's; each destination's
    )


BIG_TABLES = {"ingestion_ingestionrequest": "created_at", "journeys_userevent": "event_at"}
OUTBOXES = ("ingestion_callbackdelivery", "ingestion_destinationdelivery")


def _dashboard_queries(console, tenant) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = console.get(url("index"), {"organization": tenant.organization.pk})
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries]


def test_every_query_of_a_large_table_is_bounded(
    console, admin_a, tenant_a, tenant_b, both_organizations
):
    """The log and the events by the organization and a range of an indexed time column;
    the outboxes by the organization, counted through a LIMIT."""
    console.force_login(admin_a)

    queries = _dashboard_queries(console, tenant_a)

    touched = set()
    for sql in queries:
        bounded = False
        for table, column in BIG_TABLES.items():
            if f'FROM "{table}"' in sql:
                touched.add(table)
                assert f'"{table}"."organization_id" = ' in sql, sql
                assert f'"{table}"."{column}" >= ' in sql, sql
                assert f'"{table}"."{column}" < ' in sql, sql
                bounded = True
        for table in OUTBOXES:
            if f'"{table}"' in sql:
                touched.add(table)
                assert '"organization_id" = ' in sql, sql
                assert re.search(r"LIMIT \d+\)", sql), sql
        if "COUNT(*)" in sql.upper() and not bounded:
            assert re.search(r"LIMIT \d+\)", sql), sql  # never a count of a whole table
    assert touched == {*BIG_TABLES, *OUTBOXES}


LARGE_TABLES = (*BIG_TABLES, *OUTBOXES)


@pytest.mark.postgres
def test_no_query_of_a_large_table_scans_it(
    console, admin_a, tenant_a, tenant_b, both_organizations
):
    """Planned with sequential scans priced out (the tables here are tiny): each large
    table is read through an index. Which index at a million rows, bench/dashboard_bench.py
    prints and asserts (here the planner may take any that leads with the organization)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the plans are PostgreSQL's")
    console.force_login(admin_a)

    queries = _dashboard_queries(console, tenant_a)

    planned = set()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in queries:
            tables = [t for t in LARGE_TABLES if f'"{t}"' in sql]
            if not tables:
                continue
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan" not in plan, (sql, plan)
            for table in tables:
                assert re.search(rf"Index (Only )?Scan using \w+ on {table}", plan), (sql, plan)
                planned.add(table)
    assert planned == set(LARGE_TABLES)


# --- the registry ---------------------------------------------------------------------------


def test_a_dashboard_panel_key_is_registered_once():
    site = ConsoleSite(name="dashboard-test")
    site.register_dashboard_panel("a", template="x.html", context=lambda r, o: {}, order=2)
    site.register_dashboard_panel("b", template="y.html", context=lambda r, o: {}, order=1)

    with pytest.raises(ImproperlyConfigured):
        site.register_dashboard_panel("a", template="z.html", context=lambda r, o: {})
    assert [panel.key for panel in site.dashboard_panels()] == ["b", "a"]
