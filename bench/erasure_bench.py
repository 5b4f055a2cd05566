"""Erasure latency: `POST /dhub-i/api/v1.0/erasure` in an organization of N records and N
events, beside PostgreSQL's own ceiling (the same deletes as bare SQL), in one run.

    .venv/bin/python bench/erasure_bench.py --records 1000000

What it does: creates a scratch PostgreSQL database, migrates it, provisions the bench
tenant, COPYs N records shaped like the bench's entries (a unique email and phone each; a
customerId shared by about N / 9,973 records) and N user events carrying the same
identifiers, analyzes, and prints the plans of the erasure's lookups (each must be an
index scan). Then it times erasures through the endpoint (in this process, Django's test
client: the whole view, validation and transaction included): by email (one person's
record and event) and by customerId with suppress (about 100 records and events each),
each beside the same rows deleted by hand-written SQL in one transaction. Last, how long
building the three record indexes takes on this table (what the migration costs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest_bench as bench  # noqa: E402

ERASURE_URL = "/dhub-i/api/v1.0/erasure"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20, help="erasures of each kind")
    args = parser.parse_args()

    with bench.provisioned_django("erasure", CDP_INGEST_RATE_LIMITS="1000000000/1") as dsn:
        from django.test import Client

        from cdp.models import DataModel

        model = DataModel.objects.get(mom_code=bench.MOM_CODE)
        org_id = model.organization_id
        began = time.perf_counter()
        load(dsn, org_id, model.pk, args.records)
        print(f"{args.records} records and events COPYed in {time.perf_counter() - began:.0f} s")
        plans(dsn, org_id)

        client = Client()
        token = client.post(
            "/api/accounts/authen",
            {"username": bench.USERNAME, "apiKey": bench.API_KEY, "cdpGKey": bench.GROUP_KEY},
            content_type="application/json",
        ).json()["token"]
        headers = {"TOKEN": token, "API_KEY": bench.API_KEY}

        def endpoint(body: dict) -> tuple[float, dict]:
            began = time.perf_counter()
            response = client.post(
                ERASURE_URL, json.dumps(body), content_type="application/json", headers=headers
            )
            seconds = time.perf_counter() - began
            assert response.status_code == 200, response.content
            return seconds, response.json()

        step = args.records // (args.runs * 2 + 1)
        rows = []
        for kind in ("email", "customerId"):
            times, ceilings, erased = [], [], []
            for run in range(args.runs):
                if kind == "email":
                    n = step * (run + 1)
                    body, where = {"email": f"USER{n}@bench.test"}, ("email", f"user{n}@bench.test")
                else:
                    n = run * 2
                    body = {"customerId": f"C-{n}", "suppress": True}
                    where = ("customerId", f"C-{n}")
                    ceilings.append(ceiling_seconds(dsn, org_id, "customerId", f"C-{n + 1}"))
                if kind == "email":
                    ceilings.append(
                        ceiling_seconds(dsn, org_id, "email", f"user{n + step // 2}@bench.test")
                    )
                seconds, answer = endpoint(body)
                assert answer["records"] >= 1, (where, answer)
                times.append(seconds)
                erased.append(answer["records"] + answer["events"])
            rows.append((kind, times, ceilings, erased))
        rebuild = index_build_seconds(dsn)

    print(f"{'by':>11}  {'rows':>5}  {'p50 ms':>7}  {'max ms':>7}  {'ceiling p50':>11}  ratio")
    for kind, times, ceilings, erased in rows:
        p50, p50_c = statistics.median(times) * 1000, statistics.median(ceilings) * 1000
        print(
            f"{kind:>11}  {statistics.median(erased):>5.0f}  {p50:>7.1f}  "
            f"{max(times) * 1000:>7.1f}  {p50_c:>11.1f}  {p50_c / p50:.2f}"
        )
    worst = max(max(times) for _, times, _, _ in rows)
    print(f"erasure at {args.records} records: slowest {worst * 1000:.0f} ms (target < 1000 ms)")
    print(f"building the three record indexes on this table: {rebuild:.1f} s")


def load(dsn: str, organization_id: int, model_id: int, count: int) -> None:
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY cdp_entityrecord (organization_id, data_model_id, key, cdp_id, data, source,"
            " created_at, updated_at) FROM STDIN"
        ) as copy:
            for n in range(count):
                data = orjson.dumps(bench.flat(bench.entry(f"R-{n:08d}", n, 100))).decode()
                key = f"R-{n:08d}"
                copy.write_row(
                    (organization_id, model_id, key, f"B{n:019d}", data, "bench", "now", "now")
                )
        with cursor.copy(
            "COPY journeys_userevent (organization_id, event_id, source, source_id, condition,"
            " channel, event_ctg, event_ctg2, event_ctg3, event_name, event_at, event_labels,"
            " event_label2s, event_label3s, customer_id, email, phone, note, properties,"
            " request_id, created_at, ingested) FROM STDIN"
        ) as copy:
            for n in range(count):
                entry = bench.entry(f"R-{n:08d}", n, 100)
                ids = (entry["customerId"], entry["email"], entry["phone"])
                copy.write_row(
                    (
                        *(organization_id, f"{n:032x}", "web", f"V-{n:08d}", "Created"),
                        *("Online", "Other", "", "", "visit", "now", "[]", "[]", "[]"),
                        *ids,
                        *("", "{}", "bench", "now", True),
                    )
                )
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("ANALYZE")


LOOKUPS = {
    "customerId": (
        "SELECT id FROM cdp_entityrecord WHERE organization_id = %s AND data ?| '{customerId}'"
        " AND left(data->>'customerId', 255) = left(%s, 255) AND data->>'customerId' = %s"
    ),
    "email": (
        "SELECT id FROM cdp_entityrecord WHERE organization_id = %s"
        " AND data ?| '{email,customerEmail}'"
        " AND left(lower(coalesce(data->>'email', data->>'customerEmail')), 255)"
        " = left(lower(%s), 255)"
        " AND lower(coalesce(data->>'email', data->>'customerEmail')) = lower(%s)"
    ),
}
EVENT_LOOKUPS = {
    "customerId": (
        "SELECT id FROM journeys_userevent WHERE organization_id = %s AND customer_id <> ''"
        " AND left(customer_id, 255) = left(%s, 255) AND customer_id = %s"
    ),
    "email": (
        "SELECT id FROM journeys_userevent WHERE organization_id = %s AND email <> ''"
        " AND left(lower(email), 255) = left(lower(%s), 255) AND lower(email) = lower(%s)"
    ),
}


def plans(dsn: str, organization_id: int) -> None:
    """The plan of each lookup the erasure makes: an index scan, not a sequential one."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        for table, lookups in (("records", LOOKUPS), ("events", EVENT_LOOKUPS)):
            for kind, sql in lookups.items():
                value = "user1@bench.test" if kind == "email" else "C-1"
                (plan,) = connection.execute(
                    "EXPLAIN (FORMAT JSON) " + sql, (organization_id, value, value)
                ).fetchone()
                node = plan[0]["Plan"]
                names = [node["Node Type"]] + [p["Node Type"] for p in node.get("Plans", [])]
                index = node.get("Index Name") or next(
                    (p.get("Index Name") for p in node.get("Plans", []) if p.get("Index Name")),
                    None,
                )
                print(f"plan, {table} by {kind}: {' > '.join(names)} on {index}")
                assert "Seq Scan" not in names, plan


def ceiling_seconds(dsn: str, organization_id: int, kind: str, value: str) -> float:
    """Another person's records and events deleted by the database alone: the lookups as
    above, one DELETE each, one transaction."""
    with psycopg.connect(dsn) as connection:
        began = time.perf_counter()
        for lookups, table in (
            (LOOKUPS, "cdp_entityrecord"),
            (EVENT_LOOKUPS, "journeys_userevent"),
        ):
            connection.execute(
                f"DELETE FROM {table} WHERE organization_id = %s AND id IN ({lookups[kind]})",
                (organization_id, organization_id, value, value),
            )
        connection.commit()
        return time.perf_counter() - began


def index_build_seconds(dsn: str) -> float:
    with psycopg.connect(dsn, autocommit=True) as connection:
        began = time.perf_counter()
        for name in ("record_org_customer_id", "record_org_email", "record_org_phone"):
            connection.execute(f"REINDEX INDEX {name}")
        return time.perf_counter() - began


if __name__ == "__main__":
    main()
