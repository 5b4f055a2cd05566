"""An import that grows a table past autovacuum's threshold analyzes it before it returns
(PostgreSQL): the requests that follow a bulk load plan on what the table now holds,
whether autovacuum runs or not."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from cdp.models import EntityRecord
from ingestion.file_import import records_import
from journeys.models import UserEvent
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.ops.test_import_records import run, write_ndjson

pytestmark = pytest.mark.django_db

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's statistics"
)


def _file(tmp_path: Path, tenant, count: int, prefix: str = "S") -> Path:
    return write_ndjson(
        tmp_path / f"{prefix}-{count}.ndjson",
        [{"momCode": tenant.mom_code, "refId": f"{prefix}-{i}"} for i in range(count)],
    )


def _analyze(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def _counted(table: str) -> float:
    """The rows the table's statistics count (pg_class.reltuples; -1: never analyzed)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        (rows,) = cursor.fetchone()
    return rows


def _threshold(counted: float) -> float:
    """Autovacuum's analyze threshold for a table whose statistics count `counted` rows,
    from this server's settings."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('autovacuum_analyze_threshold')::int,"
            " current_setting('autovacuum_analyze_scale_factor')::float8"
        )
        base, scale = cursor.fetchone()
    return base + scale * max(counted, 0)


@pytest.mark.postgres
@on_postgres
def test_an_import_past_the_threshold_analyzes_the_records_it_grew(tmp_path, tenant_a, tenant_b):
    run(_file(tmp_path, tenant_b, 30, "B"), tenant_b)
    _analyze("cdp_entityrecord")
    assert _counted("cdp_entityrecord") == 30
    count = int(_threshold(30)) + 7  # past the threshold (53 with PostgreSQL's defaults)

    out, _ = run(_file(tmp_path, tenant_a, count, "A"), tenant_a)

    assert f"created {count:,}" in out
    assert "Statistics refreshed (ANALYZE): cdp_entityrecord." in out
    assert _counted("cdp_entityrecord") == count + 30
    assert EntityRecord.objects.filter(organization=tenant_b.organization).count() == 30


@pytest.mark.postgres
@on_postgres
def test_an_import_under_the_threshold_leaves_the_statistics_to_autovacuum(
    tmp_path, tenant_a, tenant_b
):
    run(_file(tmp_path, tenant_b, 30, "B"), tenant_b)
    _analyze("cdp_entityrecord")
    count = int(_threshold(30)) - 10

    out, _ = run(_file(tmp_path, tenant_a, count), tenant_a)

    assert f"created {count:,}" in out
    assert "Statistics refreshed" not in out
    assert _counted("cdp_entityrecord") == 30


@pytest.mark.postgres
@on_postgres
def test_a_table_analyzed_empty_with_pages_is_analyzed_after_the_first_batch(
    tmp_path, tenant_a, tenant_b
):
    # Tenant B's records, deleted: the table keeps their pages, and its statistics, taken
    # now, count no rows. The planner would read it as empty however much it grew.
    run(_file(tmp_path, tenant_b, 30, "B"), tenant_b)
    EntityRecord.objects.filter(organization=tenant_b.organization).delete()
    _analyze("cdp_entityrecord")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples, relpages > 0 FROM pg_class WHERE oid = 'cdp_entityrecord'::regclass"
        )
        assert cursor.fetchone() == (0, True)
    count = 20  # under autovacuum's threshold: only the empty statistics call for it

    out, _ = run(_file(tmp_path, tenant_a, count), tenant_a)

    assert f"created {count:,}" in out
    assert "Statistics refreshed (ANALYZE): cdp_entityrecord." in out
    assert _counted("cdp_entityrecord") == count


@pytest.mark.postgres
@on_postgres
def test_a_rerun_writes_nothing_so_it_analyzes_nothing(tmp_path, tenant_a):
    _analyze("cdp_entityrecord")
    path = _file(tmp_path, tenant_a, int(_threshold(0)) + 20)
    first, _ = run(path, tenant_a)
    _analyze("cdp_entityrecord")  # the statistics count the rows; now far fewer change

    second, _ = run(path, tenant_a)

    assert "Statistics refreshed (ANALYZE): cdp_entityrecord." in first
    assert "created 0, updated 0, unchanged" in second
    assert "Statistics refreshed" not in second


@pytest.mark.postgres
@on_postgres
def test_the_events_an_import_fires_are_analyzed_with_the_records(tmp_path, tenant_a, tenant_b):
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Created",
        settings=UserEventSettings(event_name="member_imported", category="UserIdentity"),
    )
    for table in ("cdp_entityrecord", "journeys_userevent"):
        _analyze(table)
    count = int(_threshold(0)) + 10

    out, _ = run(_file(tmp_path, tenant_a, count), tenant_a, "--je-config-id", config.config_id)
    # Tenant B's import fires no event: its records alone pass the threshold.
    out_b, _ = run(_file(tmp_path, tenant_b, count, "B"), tenant_b)

    assert f"user events generated {count:,}" in out
    assert "Statistics refreshed (ANALYZE): cdp_entityrecord, journeys_userevent." in out
    assert _counted("journeys_userevent") == count
    assert "Statistics refreshed (ANALYZE): cdp_entityrecord." in out_b


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the other databases")
def test_elsewhere_nothing_is_analyzed(tmp_path, tenant_a):
    stats = records_import(
        organization=tenant_a.organization,
        path=_file(tmp_path, tenant_a, 80),
        file_format="ndjson",
        object_type="custom-model",
        source="import",
        on_reject=lambda reject: None,
    )

    assert (stats.created, stats.analyzed) == (80, [])
    assert stats.rows_written[EntityRecord] == 80


def test_a_user_event_import_counts_events_not_records(tmp_path, tenant_a):
    entries = [
        {
            "source": "PurchaseOrder",
            "sourceId": f"PO-{i}",
            "channel": "Online",
            "eventCtg": "Transaction",
            "eventName": "purchase",
            "eventAt": 1_700_000_000_000 + i,
        }
        for i in range(12)
    ]
    rejects: list = []

    stats = records_import(
        organization=tenant_a.organization,
        path=write_ndjson(tmp_path / "events.ndjson", entries),
        file_format="ndjson",
        object_type="user-event",
        source="import",
        on_reject=rejects.append,
    )

    assert (stats.created, rejects) == (12, [])
    assert (stats.rows_written[EntityRecord], stats.rows_written[UserEvent]) == (0, 12)
    assert UserEvent.objects.filter(organization=tenant_a.organization).count() == 12
