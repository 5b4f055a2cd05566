"""Backfill throughput: `user_event_backfill` over N stored records, beside PostgreSQL's
own ceiling (one INSERT … SELECT of the same events), in one run.

    .venv/bin/python bench/backfill_bench.py --records 1000000

What it does: creates a scratch PostgreSQL database, migrates it, provisions the bench
tenant (bench/bench-tenant.json: its Created User Event passes records with
customFieldLong01 >= 500), COPYs N records shaped like the bench's entries (every other
one passing), and times the backfill (ingestion/backfill.py, in this process, as the
command and the task run it): events written per second. Then the ceiling: the same
number of events written by one SQL statement from the records, in the database alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest_bench as bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()

    with bench.provisioned_django("backfill") as dsn:
        from cdp.models import DataModel
        from ingestion.backfill import user_event_backfill
        from journeys.models import JourneyEventConfig

        model = DataModel.objects.get(mom_code=bench.MOM_CODE)
        config = JourneyEventConfig.objects.get(
            organization=model.organization, ref="bench_created"
        )
        began = time.perf_counter()
        load(dsn, model.organization_id, model.pk, args.records)
        loaded = time.perf_counter() - began

        began = time.perf_counter()
        if os.environ.get("BACKFILL_PROFILE"):
            import cProfile
            import pstats

            profile = cProfile.Profile()
            run = profile.runcall(
                user_event_backfill, organization=model.organization, config_id=config.config_id
            )
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        else:
            run = user_event_backfill(organization=model.organization, config_id=config.config_id)
        seconds = time.perf_counter() - began
        ceiling = ceiling_seconds(dsn, model.organization_id, model.pk)

    print(f"{args.records} records COPYed in {loaded:.1f} s")
    print(f"{'target':>9}  {'records':>8}  {'events':>7}  {'seconds':>7}  {'events/s':>9}")
    print(
        f"{'backfill':>9}  {run.records:>8}  {run.generated:>7}  {seconds:>7.1f}  "
        f"{run.generated / seconds:>9.0f}"
    )
    print(
        f"{'ceiling':>9}  {run.records:>8}  {run.generated:>7}  {ceiling:>7.1f}  "
        f"{run.generated / ceiling:>9.0f}"
    )
    print(
        f"backfill: {run.generated / seconds:.0f} events/s (target 20,000), "
        f"ratio {ceiling / seconds:.2f} of the database's own"
    )


def load(dsn: str, organization_id: int, model_id: int, count: int) -> None:
    with (
        psycopg.connect(dsn) as connection,
        connection.cursor() as cursor,
        cursor.copy(
            "COPY cdp_entityrecord (organization_id, data_model_id, key, cdp_id, data, source,"
            " created_at, updated_at) FROM STDIN"
        ) as copy,
    ):
        for n in range(count):
            points = 900 if n % 2 == 0 else 100
            data = orjson.dumps(bench.flat(bench.entry(f"R-{n:08d}", n, points))).decode()
            copy.write_row(
                (
                    organization_id,
                    model_id,
                    f"R-{n:08d}",
                    f"B{n:019d}",
                    data,
                    "bench",
                    "now",
                    "now",
                )
            )
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("ANALYZE")


def ceiling_seconds(dsn: str, organization_id: int, model_id: int) -> float:
    """The same events (one per passing record) written by the database alone, into a
    copy of the events table with its indexes, in one statement."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE ceiling_event (LIKE journeys_userevent INCLUDING ALL)")
        began = time.perf_counter()
        connection.execute(
            """INSERT INTO ceiling_event (organization_id, config_id, event_id, source,
                source_id, condition, channel, event_ctg, event_ctg2, event_ctg3, event_name,
                event_at, value, event_labels, event_label2s, event_label3s, customer_id,
                email, phone, note, properties, request_id, created_at, ingested)
            SELECT organization_id, NULL, md5(key), 'bench', key, 'Created', 'Online',
                'UserIdentity', '', '', 'bench_created', now(),
                (data->>'customFieldLong01')::float, '[]', '[]', '[]',
                coalesce(data->>'customerId', ''), coalesce(data->>'email', ''), '', '',
                jsonb_build_object('tier', data->'customField01', 'backfill', true),
                'x', now(), false
            FROM cdp_entityrecord
            WHERE organization_id = %s AND data_model_id = %s
                AND (data->>'customFieldLong01')::bigint >= 500""",
            (organization_id, model_id),
        )
        return time.perf_counter() - began


if __name__ == "__main__":
    main()
