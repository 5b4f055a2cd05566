"""How PostgreSQL runs the Read API's page of user events after a cursor: the cursor bounds
the index range the scan starts from, so a page deep in a tenant's events costs what the
first page costs (a filter instead would read every newer event first)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.ingestion.test_read_api import EVENTS_URL, event_entry, get, ingest, ok

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

if connection.vendor != "postgresql":
    pytest.skip("PostgreSQL's plans", allow_module_level=True)

T0 = 1_700_000_000_000


def _events_page_sql(client, tenant, token, **params) -> tuple[dict, str]:
    """The page's answer, and the SQL of the query that read its events."""
    with CaptureQueriesContext(connection) as queries:
        body = ok(get(client, EVENTS_URL, tenant, token, **params))
    (sql,) = [q["sql"] for q in queries.captured_queries if "journeys_userevent" in q["sql"]]
    return body, sql


def _index_scan(sql: str) -> str:
    """The plan of `sql` with index scans as the only way in (the test's tables are too
    small for the planner to prefer them on its own); the settings last until the test's
    transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN (COSTS OFF) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_page_after_a_cursor_starts_the_index_scan_at_the_cursor(
    client, tenant_a, token_a, tenant_b, token_b
):
    for tenant, token, prefix in ((tenant_a, token_a, "A"), (tenant_b, token_b, "B")):
        ingest(
            client,
            tenant,
            token,
            "user-event",
            [event_entry(f"{prefix}-{n}", T0 + 1_000 * (n // 2)) for n in range(8)],
        )
    first = ok(get(client, EVENTS_URL, tenant_a, token_a, limit=3))

    page, sql = _events_page_sql(client, tenant_a, token_a, limit=3, cursor=first["next"])
    plan = _index_scan(sql)

    # Pairs of events share a time: the page boundary falls inside a tie.
    assert [e["sourceId"] for e in first["events"]] == ["A-7", "A-6", "A-5"]
    assert [e["sourceId"] for e in page["events"]] == ["A-4", "A-3", "A-2"]
    assert "Index Scan using userevent_org_time" in plan, plan
    index_cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "organization_id" in index_cond and "event_at <=" in index_cond, plan
