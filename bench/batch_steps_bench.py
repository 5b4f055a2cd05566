"""A staged batch's statements in PostgreSQL, one by one, beside COPY of the same rows.

    .venv/bin/python bench/batch_steps_bench.py [--batches 150] [--batch-size 1000]

What an import batch (and any plan of STAGING_FROM rows or more) asks of the database,
on the records' own table (a scratch database, migrated, the bench tenant provisioned),
timed statement by statement from this client, in µs a record, for each way of writing
the rows:

- `upsert`: every row through INSERT … ON CONFLICT DO UPDATE (the write two rounds
  ago), the staging tables emptied by TRUNCATE at the start of each transaction;
- `insert`: the rows the read did not find staged, then by a plain INSERT (the write of
  the round after), no TRUNCATE (the tables are emptied by every commit);
- `copy`: the same rows COPYed straight into the records' table, as the writer now
  does with a large plan's new records (the changed ones still go by staging).

Each variant writes batches of new keys into the same table, the three in turns (so that
the table grows under each the same), and reads them first under their key locks, as the
writer does.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from hashlib import blake2b
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_bench as bench  # the same tenant, entries and scratch database

STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS staged_keys (model_id bigint, key text)"
    " ON COMMIT DELETE ROWS;"
    " CREATE TEMP TABLE IF NOT EXISTS staged_records"
    " (model_id bigint, key text, cdp_id text, data jsonb) ON COMMIT DELETE ROWS"
)
COLUMNS = "organization_id, data_model_id, key, cdp_id, data, source, created_at, updated_at"


def batch(
    name: str, c: psycopg.Connection, org: int, model: int, b: int, size: int, steps: Counter
) -> None:
    """Write batch `b` of new keys the `name` way, adding each step's seconds to `steps`."""

    def step(label: str, action) -> None:
        began = time.perf_counter()
        action()
        steps[label] += time.perf_counter() - began

    keys = [f"{name}-{b}-{i}" for i in range(size)]
    rows = [
        (
            model,
            k,
            f"{name[0]}{b:09d}{i:010d}",
            orjson.dumps(bench.flat(bench.entry(k, i, 100))),
        )
        for i, k in enumerate(keys)
    ]
    locks = sorted(
        int.from_bytes(blake2b(f"{org}:{model}:{k}".encode(), digest_size=8).digest(), "big")
        - (1 << 63)
        for k in keys
    )
    step("begin, staging tables", lambda: c.execute(f"BEGIN; {STAGING}"))
    if name == "upsert":
        step("truncate", lambda: c.execute("TRUNCATE staged_keys, staged_records"))
    step(
        "key locks",
        lambda: c.execute(
            "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(k)"
            " FROM unnest(%s::bigint[]) AS k) AS l",
            (locks,),
        ),
    )

    def copy_keys() -> None:
        with c.cursor().copy("COPY staged_keys (model_id, key) FROM STDIN") as copy:
            for k in keys:
                copy.write_row((model, k))

    step("copy keys", copy_keys)
    step(
        "read",
        lambda: c.execute(
            "SELECT k.key, r.cdp_id FROM staged_keys k CROSS JOIN LATERAL ("
            " SELECT r.cdp_id FROM cdp_entityrecord r WHERE r.organization_id = %s"
            " AND r.data_model_id = k.model_id AND r.key = k.key OFFSET 0) AS r",
            (org,),
        ).fetchall(),
    )
    if name == "copy":

        def copy_rows() -> None:
            with c.cursor().copy(f"COPY cdp_entityrecord ({COLUMNS}) FROM STDIN") as copy:
                for m, k, cdp_id, data in rows:
                    copy.write_row((org, m, k, cdp_id, data.decode(), "bench", "now", "now"))

        step("write rows", copy_rows)
    else:

        def stage_rows() -> None:
            sql = "COPY staged_records (model_id, key, cdp_id, data) FROM STDIN"
            with c.cursor().copy(sql) as copy:
                for m, k, cdp_id, data in rows:
                    copy.write_row((m, k, cdp_id, data.decode()))

        step("copy rows to staging", stage_rows)
        conflict = (
            " ON CONFLICT (organization_id, data_model_id, key) DO UPDATE"
            " SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at"
            if name == "upsert"
            else ""
        )
        step(
            "write rows",
            lambda: c.execute(
                f"INSERT INTO cdp_entityrecord AS r ({COLUMNS})"
                " SELECT %s, t.model_id, t.key, t.cdp_id, t.data, 'bench', now(), now()"
                f" FROM staged_records t ORDER BY t.model_id, t.key{conflict}",
                (org,),
            ),
        )
    step("commit", lambda: c.execute("COMMIT"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    names = ("upsert", "insert", "copy")
    seconds: dict[str, Counter] = {name: Counter() for name in names}
    with (
        bench.provisioned_django("batch_steps", CACHE_URL="redis://127.0.0.1:6379/4") as dsn,
        psycopg.connect(dsn, autocommit=True) as c,
    ):
        org, model = c.execute(
            "SELECT organization_id, id FROM cdp_datamodel WHERE mom_code = %s",
            (bench.MOM_CODE,),
        ).fetchone()
        c.execute(STAGING)
        # In turns, so that the table grows under each the same.
        for b in range(args.batches):
            for name in names:
                batch(name, c, org, model, b, args.batch_size, seconds[name])
    records = args.batches * args.batch_size
    results = {
        name: {label: s * 1e6 / records for label, s in steps.items()}
        for name, steps in seconds.items()
    }
    labels = list(dict.fromkeys(label for steps in results.values() for label in steps))
    m = bench.machine()
    print(f"Machine: {m['cpu']}, {m['cores']} cores, PostgreSQL {m['postgresql']}")
    print(f"µs a record, batches of {args.batch_size}, {args.batches} batches each")
    print(f"{'step':24s}" + "".join(f"{name:>10s}" for name in results))
    for label in [*labels, "total"]:
        cells = [
            sum(steps.values()) if label == "total" else steps.get(label)
            for steps in results.values()
        ]
        print(f"{label:24s}" + "".join(f"{'' if v is None else f'{v:.2f}':>10s}" for v in cells))


if __name__ == "__main__":
    main()
