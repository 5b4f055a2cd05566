"""The Console's home page (the dashboard) at a million rows: the whole page through
Django's test client, beside the bare SQL of the same queries, in one run.

    .venv/bin/python bench/dashboard_bench.py --rows 1000000 --days 30

What it does: creates a scratch PostgreSQL database, migrates it, provisions the bench
tenant (and a second organization, whose rows every query must skip), adds four more
User Events, COPYs `--rows` Ingestion log rows and `--rows` user events into the bench
organization spread evenly over the last `--days` days (every 20th request rejected
three of its 50 entries, with one of eight messages; the events spread over the five
User Events, every tenth one ingested), `--others` of each into the second organization
over the same days, and outbox rows (callbacks and three destinations' deliveries, a
fifth of them failed); the two large tables' secondary indexes are dropped for the COPY
and built again after it, as a bulk load does. Vacuums and analyzes, prints the plan of
each query of the dashboard on the large tables (with `--days` 4 or more, each must be
an index scan on the index the dashboard's modules name), then times `--runs` page loads
of /console/ (signed in as the bench admin; the first, cold, load included) and the same
queries as bare SQL over psycopg. About two minutes at a million rows.

`--days 30`: about 33,000 of each per day, a busy tenant. `--days 1`: all of them in the
dashboard's 24 hours, the worst case (the hourly chart and the events per User Event
read every row of the window; the rejection messages stop at 500 requests).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.string import TextLoader

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest_bench as bench  # noqa: E402

MESSAGES = [
    "momCode: required",
    "refId: required",
    "customFieldLong01: not an integer",
    "customFieldDouble01: not a number",
    "customFieldTimestamp01: not a timestamp",
    "customFieldBool01: not a boolean",
    "customField01: longer than 255 characters",
    "email: not an email address",
]
# The tables the dashboard reads, and the index each query of them must use.
INDEXES = {
    "ingestion_ingestionrequest": "ingestionrequest_org_time",
    "journeys_userevent": "userevent_org_time",
    "ingestion_callbackdelivery": "callbackdelivery_org_status",
    "ingestion_destinationdelivery": "destdelivery_org_dest_status",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument("--outbox", type=int, default=50_000, help="rows of each outbox")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="cProfile one page load")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="EXPLAIN ANALYZE each query, as planned and with sequential scans priced out",
    )
    args = parser.parse_args()

    with bench.provisioned_django("dashboard") as dsn:
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from cdp import services
        from cdp.models import DataModel
        from journeys.models import JourneyEventConfig, config_id_generate, event_key_generate

        model = DataModel.objects.get(mom_code=bench.MOM_CODE)
        organization = model.organization
        for n in range(4):
            JourneyEventConfig.objects.create(
                organization=organization,
                data_model=model,
                config_id=config_id_generate(group_key=bench.GROUP_KEY, trigger="Changed"),
                event_key=event_key_generate(),
                trigger="Changed",
                event_name=f"bench_changed_{n}",
                category="UserIdentity",
            )
        configs = list(
            JourneyEventConfig.objects.filter(organization=organization).values_list(
                "pk", flat=True
            )
        )
        other = services.organization_create(name="Other Co")
        now = datetime.now(UTC)
        began = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as loading, loading.cursor() as cursor:
            rebuild = indexes_drop(cursor, ["ingestion_ingestionrequest", "journeys_userevent"])
            load(dsn, organization.pk, configs, args.rows, args.days, now)
            load(dsn, other.pk, [], args.others, args.days, now)
            cursor.execute("SET maintenance_work_mem = '256MB'")
            for statement in rebuild:
                cursor.execute(statement)
        outboxes(dsn, organization.pk, args.outbox, now)
        with psycopg.connect(dsn, autocommit=True) as analyzing:
            # What autovacuum does to a table that grows by inserts: its statistics, and
            # the visibility map that lets the chart and the events be index-only scans.
            analyzing.execute("VACUUM ANALYZE")
        print(
            f"{args.rows:,} requests and {args.rows:,} events over {args.days:g} days"
            f" (+{args.others:,} of each in another organization), {args.outbox:,} rows per"
            f" outbox: loaded in {time.perf_counter() - began:.0f} s"
        )

        user = get_user_model().objects.get(username=bench.USERNAME)
        services.console_access_grant(user=user)
        client = Client()
        client.force_login(user)
        page = f"/console/?organization={organization.pk}"
        with CaptureQueriesContext(connection) as captured:
            response = client.get(page)
        assert response.status_code == 200, response.status_code
        queries = [
            q["sql"] for q in captured.captured_queries if any(t in q["sql"] for t in INDEXES)
        ]
        plans(dsn, queries, strict=args.days >= 4)
        if args.explain:
            explain(dsn, queries)

        times = []
        for _ in range(args.runs):
            began = time.perf_counter()
            response = client.get(page)
            times.append(time.perf_counter() - began)
            assert response.status_code == 200
        bare = bare_sql(dsn, queries, args.runs)
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(client.get, page)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        counts = window_counts(dsn, organization.pk, now)

    print(
        f"in the dashboard's 24 hours: {counts[0]:,} requests ({counts[1]:,} rejecting)"
        f" and {counts[2]:,} events"
    )
    print(f"{'':>34}  {'p50 ms':>7}  {'max ms':>7}")
    print(f"{'the page (test client)':>34}  {ms(statistics.median(times))}  {ms(max(times))}")
    totals = [sum(run) for run in zip(*bare.values(), strict=True)]
    print(
        f"{'its queries, bare SQL (sum)':>34}  {ms(statistics.median(totals))}  {ms(max(totals))}"
    )
    for label, runs in bare.items():
        print(f"{label:>34}  {ms(statistics.median(runs))}  {ms(max(runs))}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:>7.1f}"


def load(
    dsn: str,
    organization_id: int,
    configs: list[int],
    count: int,
    days: float,
    now: datetime,
) -> None:
    """`count` log rows and `count` events of the organization, newest at `now`, evenly
    spaced over `days` days."""
    span = timedelta(days=days) / max(count, 1)
    stored = [
        {"index": n, "refId": f"R-{n}", "status": 200, "cdpId": f"C{n:019d}"} for n in range(47)
    ]
    rejecting = [  # the results of a request that rejected 3 of 50, by its first message
        orjson.dumps(
            [
                *stored,
                *(
                    {
                        "index": 47 + k,
                        "refId": f"R-{47 + k}",
                        "status": 101,
                        "errorMessage": MESSAGES[(first + k) % len(MESSAGES)],
                    }
                    for k in range(3)
                ),
            ]
        ).decode()
        for first in range(len(MESSAGES))
    ]
    accepted = orjson.dumps(stored[:5]).decode()
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY ingestion_ingestionrequest (organization_id, request_id, object_type, source,"
            " init_data, total, created, updated, unchanged, failed, events_generated,"
            " events_suppressed, events_dropped, results, warnings, status, error_code,"
            " message, duration_ms, idempotency_key, replays, created_at) FROM STDIN"
        ) as copy:
            for n in range(count):
                at = now - span * n
                if n % 20 == 0:
                    results = rejecting[(n // 20) % len(MESSAGES)]
                    counts, code = (50, 20, 27, 0, 3), "INVALID_ENTRIES"
                else:
                    results, counts, code = accepted, (5, 2, 3, 0, 0), ""
                copy.write_row(
                    (
                        *(organization_id, f"{organization_id}-{n:024x}", "custom-model", "CRM"),
                        *(False, *counts, 0, 0, 0, results, "[]", 200, code, ""),
                        *(12.5, "", 0, at),
                    )
                )
        with cursor.copy(
            "COPY journeys_userevent (organization_id, config_id, event_id, source, source_id,"
            " condition, channel, event_ctg, event_ctg2, event_ctg3, event_name, event_at,"
            " event_labels, event_label2s, event_label3s, customer_id, email, phone, note,"
            " properties, request_id, created_at, ingested) FROM STDIN"
        ) as copy:
            for n in range(count):
                at = now - span * n
                ingested = not configs or n % 10 == 0
                config = None if ingested else configs[n % len(configs)]
                copy.write_row(
                    (
                        *(organization_id, config, f"{organization_id}-{n:030x}", "Bench"),
                        *(f"R-{n:08d}", "Created", "Online", "UserIdentity", "", ""),
                        *("visit" if ingested else "bench", at, "[]", "[]", "[]"),
                        *("", "", "", "", "{}", "bench", at, ingested),
                    )
                )
        connection.commit()


def indexes_drop(cursor: psycopg.Cursor[Any], tables: list[str]) -> list[str]:
    """Drop the tables' indexes and unique constraints but their primary keys, as a bulk
    load does: building each once after the COPY is faster than keeping it up to date row
    by row. Returns the statements that build them again, exactly as they were."""
    cursor.execute(
        "SELECT format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', conrelid::regclass, conname,"
        " pg_get_constraintdef(oid)), format('ALTER TABLE %%s DROP CONSTRAINT %%I',"
        " conrelid::regclass, conname) FROM pg_constraint"
        " WHERE conrelid = ANY(%s::regclass[]) AND contype = 'u'",
        (tables,),
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid), format('DROP INDEX %%s', i.indexrelid::regclass)"
        " FROM pg_index i WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        (tables,),
    )
    indexes = cursor.fetchall()
    for _, drop in [*constraints, *indexes]:
        cursor.execute(drop)
    return [create for create, _ in [*constraints, *indexes]]


def outboxes(dsn: str, organization_id: int, count: int, now: datetime) -> None:
    """`count` callback deliveries and `count` deliveries over three destinations, a fifth
    of each failed, the rest delivered."""
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        destinations = []
        for name in ("warehouse", "crm", "ads"):
            cursor.execute(
                "INSERT INTO ingestion_destination (organization_id, name, url, enabled, events,"
                " secret, created_at, updated_at) VALUES (%s, %s, %s, true, '[]', 'whsec_x',"
                " now(), now()) RETURNING id",
                (organization_id, name, f"https://{name}.example/hook"),
            )
            row = cursor.fetchone()
            assert row is not None
            destinations.append(row[0])
        with cursor.copy(
            "COPY ingestion_callbackdelivery (organization_id, request_id, api_key_prefix, body,"
            " entries, status, attempts, next_attempt_at, locked_by, last_error, created_at)"
            " FROM STDIN"
        ) as copy:
            for n in range(count):
                status = "failed" if n % 5 == 0 else "delivered"
                at = now - timedelta(seconds=n)
                copy.write_row(
                    (organization_id, f"cb{n:030x}", "", "{}", 1, status, 1, at, "", "", at)
                )
        with cursor.copy(
            "COPY ingestion_destinationdelivery (organization_id, destination_id, webhook_id,"
            " request_id, event_ids, status, attempts, next_attempt_at, locked_by, last_error,"
            " created_at) FROM STDIN"
        ) as copy:
            for n in range(count):
                status = "failed" if n % 5 == 0 else "delivered"
                at = now - timedelta(seconds=n)
                copy.write_row(
                    (
                        *(organization_id, destinations[n % 3], f"msg_{n:030x}", f"d{n:030x}"),
                        *("[]", status, 1, at, "", "", at),
                    )
                )
        connection.commit()


def _label(sql: str) -> str:
    table = next(t for t in INDEXES if f'FROM "{t}"' in sql or f"FROM {t}" in sql)
    if "LATERAL" in sql:
        return "entries per hour"
    if '"results"' in sql:
        return "rejection messages (500 requests)"
    if table == "journeys_userevent":
        return "events per User Event"
    return "failed callbacks" if table == "ingestion_callbackdelivery" else "failing destinations"


def plans(dsn: str, queries: list[str], *, strict: bool) -> None:
    """Each query's plan: index scans on the index the dashboard's modules name. Only
    `strict`ly when the 24 hours are a small part of the table: when they hold most of it,
    a sequential scan is the planner's right choice."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        for sql in queries:
            rows = connection.execute("EXPLAIN " + sql).fetchall()
            plan = "\n".join(row[0] for row in rows)
            used = sorted({index for index in INDEXES.values() if index in plan})
            scans = sorted({table for table in INDEXES if f"Seq Scan on {table}" in plan})
            shown = ", ".join([*used, *(f"Seq Scan on {table}" for table in scans)])
            print(f"plan, {_label(sql)}: {shown}")
            if strict:
                assert not scans, plan  # a small table's may be scanned
                for table, index in INDEXES.items():
                    if f'"{table}"' in sql:
                        assert index in plan, plan


def explain(dsn: str, queries: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        for sql in queries:
            for seqscan in ("on", "off"):
                connection.execute(f"SET enable_seqscan = {seqscan}")
                rows = connection.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()
                print(f"--- {_label(sql)}, enable_seqscan {seqscan}")
                print("\n".join(row[0] for row in rows))


def bare_sql(dsn: str, queries: list[str], runs: int) -> dict[str, list[float]]:
    """Each query, as Django sent it, over psycopg: its rows fetched, nothing decoded."""
    timed: dict[str, list[float]] = {_label(sql): [] for sql in queries}
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.adapters.register_loader("jsonb", TextLoader)  # the JSON as its text
        for _ in range(runs):
            for sql in queries:
                began = time.perf_counter()
                connection.execute(sql).fetchall()
                timed[_label(sql)].append(time.perf_counter() - began)
    return timed


def window_counts(dsn: str, organization_id: int, now: datetime) -> tuple[int, int, int]:
    hour = now.replace(minute=0, second=0, microsecond=0)
    start = hour + timedelta(hours=1) - timedelta(hours=24)
    with psycopg.connect(dsn, autocommit=True) as connection:
        requests, rejecting = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE failed > 0) FROM ingestion_ingestionrequest"
            " WHERE organization_id = %s AND created_at >= %s",
            (organization_id, start),
        ).fetchone() or (0, 0)
        (events,) = connection.execute(
            "SELECT count(*) FROM journeys_userevent WHERE organization_id = %s AND event_at >= %s",
            (organization_id, start),
        ).fetchone() or (0,)
    return requests, rejecting, events


if __name__ == "__main__":
    main()
