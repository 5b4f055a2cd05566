"""How PostgreSQL plans the locked read's records lookup: once per connection (a generic
plan) only when the table's statistics show rows enough for the unique key to win, for
every execution (custom plans) before; the generic plan stays one probe of the unique
key per key as the table grows."""

from __future__ import annotations

import pytest
from django.db import connection

from cdp.models import EntityRecord, Organization
from ingestion import writer
from ingestion.writer import GENERIC_LOOKUP_FROM, GENERIC_LOOKUP_PER_ORGANIZATION, _pg_statements
from tests.conftest import records_bulk_create
from tests.ingestion.conftest import ingest_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

if connection.vendor != "postgresql":
    pytest.skip("PostgreSQL's planner only", allow_module_level=True)


def _analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {EntityRecord._meta.db_table}, {Organization._meta.db_table}")


def _lookup_plans() -> tuple[int, int]:
    """The records lookup's (generic, custom) plans on this connection so far."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE name = 'cdp_records'"
        )
        return cursor.fetchone()


def _generic_lookup_plan() -> str:
    """The lookup's generic plan as the planner makes it now, on a connection's first use
    (a statement of its own, not the connection's prepared one)."""
    types, body = _pg_statements()["cdp_records"]
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cursor.execute(f"PREPARE plan_probe ({types}) AS {body}")
            cursor.execute("""EXPLAIN EXECUTE plan_probe('[[1, "K"]]', 1)""")
            return "\n".join(row for (row,) in cursor.fetchall())
        finally:
            cursor.execute("ROLLBACK")
            cursor.execute("DEALLOCATE ALL")
            writer._prepared.pop(connection.connection, None)


def _store(api, count: int, prefix: str = "S") -> None:
    """`count` records of the tenant's model, written in bulk as an import leaves them."""
    if not api.records().filter(key="TEMPLATE").exists():
        assert api.post([api.entry("TEMPLATE", customField01="stored")]).json()["created"] == 1
    template = api.data("TEMPLATE")
    records_bulk_create(api.tenant, count, prefix, lambda n, key: {**template, "refId": key})


@pytest.fixture
def empty_statistics():
    """The records' table analyzed empty, before and after the test (statistics are not
    rolled back with the rows)."""
    EntityRecord.objects.all().delete()
    _analyze()
    yield
    EntityRecord.objects.all().delete()
    _analyze()


def test_on_a_table_analyzed_empty_a_generic_plan_would_scan_the_tenant(empty_statistics):
    # Why the lookup is not planned once from the start: every index of the organization
    # ties on a table the statistics say is empty, and the one taken may be another than
    # the unique key, with the key as a filter over all of the tenant's rows.
    plan = _generic_lookup_plan()
    assert "record_unique_key" not in plan
    assert "Filter:" in plan


def test_the_lookup_is_planned_each_time_until_statistics_show_rows(
    empty_statistics, tenant_a, tenant_b
):
    api_a, api_b = ingest_for(tenant_a), ingest_for(tenant_b)
    connection.close()  # a connection of its own: its statements prepared by this test
    for i in range(3):
        assert api_a.post([api_a.entry(f"A-{i}")]).json()["created"] == 1
        assert api_b.post([api_b.entry(f"B-{i}")]).json()["created"] == 1
    generic, custom = _lookup_plans()
    assert (generic, custom) == (0, 6)

    _store(api_a, GENERIC_LOOKUP_FROM + 200)
    _store(api_b, 300)
    _analyze()
    assert "record_unique_key" in _generic_lookup_plan()

    connection.close()
    for api, prefix in ((api_a, "A"), (api_b, "B")):
        body = api.post(
            [api.entry("S-00007", customField01=f"changed-{prefix}"), api.entry(f"{prefix}-9")]
        ).json()
        assert (body["created"], body["updated"]) == (1, 1), body
        assert api.data("S-00007")["customField01"] == f"changed-{prefix}"
    # Planned once for the connection, executed twice.
    assert _lookup_plans() == (2, 0)
    assert api_a.records().count() == GENERIC_LOOKUP_FROM + 200 + 3 + 1 + 1
    assert api_b.records().count() == 300 + 3 + 1 + 1


def test_many_organizations_of_few_records_keep_the_lookup_planned_each_time(
    empty_statistics, tenant_a
):
    # 1,200 records, but fewer than ten per organization on average: an organization's
    # rows may be estimated at one, where the indexes of the organization tie again.
    api = ingest_for(tenant_a)
    _store(api, GENERIC_LOOKUP_FROM + 200)
    organizations = Organization.objects.count()
    spare = (GENERIC_LOOKUP_FROM + 201) // GENERIC_LOOKUP_PER_ORGANIZATION + 1 - organizations
    Organization.objects.bulk_create(Organization(name=f"Spare {i}") for i in range(spare))
    try:
        _analyze()
        connection.close()
        assert api.post([api.entry("S-00003", customField01="x")]).json()["updated"] == 1
        assert _lookup_plans() == (0, 1)
    finally:
        Organization.objects.filter(name__startswith="Spare ").delete()


def test_the_generic_plan_probes_the_unique_key_whatever_the_table_grows_to(
    empty_statistics, tenant_a
):
    api = ingest_for(tenant_a)
    _store(api, GENERIC_LOOKUP_FROM)
    _analyze()
    connection.close()
    assert api.post([api.entry("FIRST")]).json()["created"] == 1
    assert _lookup_plans() == (1, 0)
    # The table grows tenfold without a new ANALYZE: the plan made at the first request
    # still probes the unique key (the connection's own plan, explained).
    _store(api, 9 * GENERIC_LOOKUP_FROM, prefix="T")
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(
            """EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
            EXECUTE cdp_records(%s, %s)""",
            [f'[[{tenant_a.model.id}, "S-00042"]]', tenant_a.organization.id],
        )
        plan = "\n".join(row for (row,) in cursor.fetchall())
        cursor.execute("ROLLBACK")
    assert "record_unique_key" in plan and "Filter:" not in plan, plan
    assert "rows=1 loops=1" in plan.split("Index Scan")[1], plan
