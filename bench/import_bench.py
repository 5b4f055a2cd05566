"""Bulk import benchmark: `import_records` against PostgreSQL's own COPY of the same rows.

    make bench BENCH_ARGS=...            (the ingest benchmark; this one is separate:)
    .venv/bin/python bench/import_bench.py --records 1000000

Creates a scratch database, provisions the bench tenant (bench/bench-tenant.json), writes
an NDJSON file of generated records (ten fields each, custom fields grouped, as the ingest
benchmark's entries), runs `manage.py import_records FILE --init-data` as an operator
would and times it; then COPYs the same rows (as the import stores them: flat data, a
cdpId, the key) into a table of the records' shape and indexes, in one transaction: the
ceiling. Prints records/s for both and their ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_bench as bench  # the same tenant, entries and scratch database

ROOT = bench.ROOT


def records_file(path: Path, count: int) -> None:
    with path.open("wb") as handle:
        for n in range(count):
            handle.write(orjson.dumps(bench.entry(f"IMP-{n}", n, n % 1000)) + b"\n")


def copy_ceiling(dsn: str, path: Path, org_id: int, model_id: int) -> float:
    """COPY the rows the import stores, in one transaction; seconds taken (the file is read
    and the rows formed before the clock starts)."""
    buffer = io.BytesIO()
    with path.open("rb") as handle:
        for n, line in enumerate(handle):
            record = orjson.loads(line)
            data = orjson.dumps(bench.flat(record)).decode()
            row = [str(org_id), str(model_id), record["refId"], f"{n:020d}", data, "import"]
            escaped = "\t".join(v.replace("\\", "\\\\") for v in row)
            buffer.write(f"{escaped}\tnow\tnow\n".encode())
    with psycopg.connect(dsn) as connection:
        connection.execute("CREATE TABLE copy_ceiling (LIKE cdp_entityrecord INCLUDING ALL)")
        connection.commit()
        began = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY copy_ceiling (organization_id, data_model_id, key, cdp_id, data, source,"
                " created_at, updated_at) FROM STDIN"
            ) as copy,
        ):
            copy.write(buffer.getvalue())
        connection.commit()
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    db_name = f"cdp_import_bench_{os.getpid()}"
    dsn = bench.scratch_database(db_name)
    env = bench.server_env(dsn)
    path = ROOT / "bench" / "results" / f"import-{args.records}.ndjson"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        bench.manage(env, "migrate", "--verbosity", "0")
        bench.manage(env, "provision", str(bench.TENANT_FILE), "--json")
        if not path.exists():
            records_file(path, args.records)
        began = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "import_records",
                str(path),
                "--org",
                bench.GROUP_KEY,
                "--object-type",
                "custom-model",
                "--init-data",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        imported_seconds = time.perf_counter() - began
        with psycopg.connect(dsn) as c:
            org_id, model_id = c.execute(
                "SELECT organization_id, id FROM cdp_datamodel WHERE mom_code = %s",
                (bench.MOM_CODE,),
            ).fetchone()
            stored = c.execute("SELECT count(*) FROM cdp_entityrecord").fetchone()[0]
        copy_seconds = copy_ceiling(dsn, path, org_id, model_id)
    finally:
        if not args.keep_db:
            with psycopg.connect(bench.ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

    print(result.stdout.strip())
    print(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "")
    m = bench.machine()
    print(f"Machine: {m['cpu']}, {m['cores']} cores, PostgreSQL {m['postgresql']}")
    rate, ceiling = args.records / imported_seconds, args.records / copy_seconds
    print(
        json.dumps(
            {
                "records": args.records,
                "stored": stored,
                "import_seconds": round(imported_seconds, 1),
                "import_records_per_s": round(rate),
                "copy_seconds": round(copy_seconds, 1),
                "copy_records_per_s": round(ceiling),
                "ratio": round(rate / ceiling, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
