"""Scale benchmark: does the cost of a request grow with what is stored?

    .venv/bin/python bench/scale_bench.py --records 1000000 --events 1000000

Creates a scratch database, provisions the bench tenant, starts the server as `make serve`
does, and measures `create` (50-entry batches, concurrency 4) on the empty tables. Then it
loads RECORDS records of the bench model and EVENTS user events straight into PostgreSQL
(COPY; what years of ingestion would leave), analyzes, and measures again: `create`, the
Read API (a record by key; pages of user events, unfiltered, by eventName, by sourceId,
and the page after a cursor) and the Console's event log and ingestion log list pages,
signed in as the tenant's admin. Prints p50/p99 for each.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_bench as bench  # the same tenant, entries, server and load generator

PORT = 8797
PASSWORD = "bench-console-password"
EVENT_NAMES = [f"bench_event_{n}" for n in range(10)]


def load(dsn: str, org_id: int, model_id: int, config_id: int, records: int, events: int) -> None:
    """COPY the stored rows: records shaped like the bench entries, events of ten names
    spread over the records' keys and a year of time."""
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY cdp_entityrecord (organization_id, data_model_id, key, cdp_id, data, source,"
            " created_at, updated_at) FROM STDIN"
        ) as copy:
            for n in range(records):
                data = orjson.dumps(bench.flat(bench.entry(f"STORED-{n}", n, n % 1000))).decode()
                copy.write_row(
                    (org_id, model_id, f"STORED-{n}", f"S{n:019d}", data, "bench", "now", "now")
                )
        start = time.time() - 365 * 86400
        with cursor.copy(
            "COPY journeys_userevent (organization_id, config_id, event_id, source, source_id,"
            " condition, channel, event_ctg, event_ctg2, event_ctg3, event_name, event_at,"
            " value, event_labels, event_label2s, event_label3s, customer_id, email, phone,"
            " note, properties, request_id, created_at) FROM STDIN"
        ) as copy:
            for n in range(events):
                at = time.strftime(
                    "%Y-%m-%d %H:%M:%S+00", time.gmtime(start + n * 365 * 86400 / events)
                )
                copy.write_row(
                    (
                        org_id,
                        None,
                        f"{n:032x}",
                        bench.MOM_CODE,
                        f"STORED-{n % max(records, 1)}",
                        "Changed",
                        "Online",
                        "UserIdentity",
                        "",
                        "",
                        EVENT_NAMES[n % len(EVENT_NAMES)],
                        at,
                        n % 1000,
                        "[]",
                        "[]",
                        "[]",
                        f"C-{n % 9973}",
                        "",
                        "",
                        "",
                        "{}",
                        "",
                        at,
                    )
                )
        connection.commit()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("ANALYZE")


def timed_gets(connection: http.client.HTTPConnection, paths: list[str], headers: dict) -> dict:
    latencies = []
    for path in paths:
        began = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        latencies.append((time.perf_counter() - began) * 1000)
        assert response.status == 200, (path, response.status, body[:300])
    latencies.sort()
    return {
        "requests": len(paths),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2),
    }


def console_session(port: int) -> dict[str, str]:
    """Sign in to the Console as the bench admin; the headers of a signed-in browser."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/console/login/")
    response = connection.getresponse()
    page = response.read().decode()
    cookies = {}
    for header, value in response.getheaders():
        if header.lower() == "set-cookie":
            name, _, rest = value.partition("=")
            cookies[name] = rest.split(";", 1)[0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": bench.USERNAME, "password": PASSWORD}
    )
    connection.request(
        "POST",
        "/console/login/",
        form,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "Referer": f"http://127.0.0.1:{port}/console/login/",
        },
    )
    response = connection.getresponse()
    response.read()
    assert response.status == 302, response.status
    for header, value in response.getheaders():
        if header.lower() == "set-cookie":
            name, _, rest = value.partition("=")
            cookies[name] = rest.split(";", 1)[0]
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def measure_reads(port: int, token: str, records: int) -> dict:
    api = {"TOKEN": token, "API_KEY": bench.API_KEY}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    rng = random.Random(7)
    keys = [f"STORED-{rng.randrange(max(records, 1))}" for _ in range(300)]
    results = {
        "record by key": timed_gets(
            connection,
            [f"/dhub-i/api/v1.0/records/custom-model/{k}?momCode={bench.MOM_CODE}" for k in keys],
            api,
        ),
        "user events, newest page": timed_gets(
            connection, ["/dhub-i/api/v1.0/user-events?limit=50"] * 200, api
        ),
        "user events by eventName": timed_gets(
            connection,
            [
                f"/dhub-i/api/v1.0/user-events?eventName={rng.choice(EVENT_NAMES)}"
                for _ in range(200)
            ],
            api,
        ),
        "user events by source and sourceId": timed_gets(
            connection,
            [
                f"/dhub-i/api/v1.0/user-events?source={bench.MOM_CODE}&sourceId={k}"
                for k in keys[:200]
            ],
            api,
        ),
    }
    connection.request("GET", "/dhub-i/api/v1.0/user-events?limit=50", headers=api)
    cursor = json.loads(connection.getresponse().read())["next"]
    results["user events, page after a cursor"] = timed_gets(
        connection, [f"/dhub-i/api/v1.0/user-events?limit=50&cursor={cursor}"] * 200, api
    )
    console = console_session(port)
    events_page = "/console/journeys/userevent/"
    pages = {
        "Console event log": events_page,
        "Console event log, by event name": f"{events_page}?event_name={EVENT_NAMES[3]}",
        "Console event log, page 50": "/console/journeys/userevent/?p=50",
        "Console event log, sourceId search": "/console/journeys/userevent/?q=STORED-12345",
        "Console ingestion log": "/console/ingestion/ingestionrequest/",
    }
    for name, path in pages.items():
        results[name] = timed_gets(connection, [path] * 30, console)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    db_name = f"cdp_scale_bench_{os.getpid()}"
    with psycopg.connect(bench.ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    dsn = bench.ADMIN_DSN.rsplit("/", 1)[0] + f"/{db_name}"
    env = {
        **os.environ,
        "DATABASE_URL": dsn.replace("postgresql://", "postgres://"),
        "CACHE_URL": os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/3"),
        "SECRET_KEY": "bench-only-secret-key",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CDP_INGEST_RATE_LIMITS": "1000000000/1",
        "LOG_LEVEL": "WARNING",
    }
    tenant = json.loads(bench.TENANT_FILE.read_text())
    tenant["users"][0]["password"] = PASSWORD
    tenant_file = Path(f"/tmp/{db_name}-tenant.json")
    tenant_file.write_text(json.dumps(tenant))
    server = bench.Server(env, args.workers, 8, PORT)
    out: dict = {"records": args.records, "events": args.events}
    try:
        bench.manage(env, "migrate", "--verbosity", "0")
        bench.manage(env, "provision", str(tenant_file), "--json")
        with psycopg.connect(dsn) as c:
            org_id, model_id = c.execute(
                "SELECT organization_id, id FROM cdp_datamodel WHERE mom_code = %s",
                (bench.MOM_CODE,),
            ).fetchone()
            (config_id,) = c.execute("SELECT id FROM journeys_journeyeventconfig").fetchone()
        server.start()
        token = bench.token_get(PORT)
        keys = bench.Keys()
        send = bench.endpoint_sender(PORT, token, None, keep_alive=True)
        scenario = bench.scenario_of("create")
        empty = bench.drive("endpoint", scenario, 4, args.duration, send, keys, []).summary()
        out["create, empty tables"] = {k: empty[k] for k in ("entries_per_s", "p50_ms", "p99_ms")}
        began = time.perf_counter()
        load(dsn, org_id, model_id, config_id, args.records, args.events)
        out["load_seconds"] = round(time.perf_counter() - began, 1)
        full = bench.drive("endpoint", scenario, 4, args.duration, send, keys, []).summary()
        out["create, stored rows"] = {k: full[k] for k in ("entries_per_s", "p50_ms", "p99_ms")}
        out["create ratio stored / empty"] = round(
            full["entries_per_s"] / empty["entries_per_s"], 3
        )
        out.update(measure_reads(PORT, token, args.records))
    finally:
        server.stop()
        tenant_file.unlink(missing_ok=True)
        if not args.keep_db:
            with psycopg.connect(bench.ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
