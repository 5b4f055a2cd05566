"""Scale benchmark: does the cost of a request grow with what is stored?

    .venv/bin/python bench/scale_bench.py --records 1000000 --events 1000000

Creates two scratch databases of the bench tenant, each with its own server started as
`make serve` does. One is loaded with RECORDS records of the bench model and EVENTS user
events straight into PostgreSQL (COPY; what years of ingestion would leave), then vacuumed,
analyzed and checkpointed, as a running system would have done by then. `create`
(50-entry batches, concurrency 4) then runs against the two in turns (`--slices`), so that
both see the host as it is in the same minute, and the ratio of their entries/s is
printed. Then, on the loaded one: the Read API (a record by key; pages of user events,
unfiltered, by eventName, by sourceId, and the page after a cursor) and the Console's
event log and ingestion log list pages, signed in as the tenant's admin, p50/p99 each.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import re
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg

from cdp.identifiers import cdp_ids_generate

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
            cdp_ids: list[str] = []
            for n in range(records):
                if not cdp_ids:  # random, as the endpoint assigns them: spread over the index
                    cdp_ids = cdp_ids_generate(10_000)
                data = orjson.dumps(bench.flat(bench.entry(f"STORED-{n}", n, n % 1000))).decode()
                copy.write_row(
                    (org_id, model_id, f"STORED-{n}", cdp_ids.pop(), data, "bench", "now", "now")
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


def deep_cursor(dsn: str) -> str:
    """The cursor of the event halfway down the tenant's log, as the Read API writes it
    (base64url of "ISO time|id"; opaque to clients), to page from there."""
    with psycopg.connect(dsn) as c:
        (count,) = c.execute("SELECT count(*) FROM journeys_userevent").fetchone()
        at, pk = c.execute(
            "SELECT event_at, id FROM journeys_userevent ORDER BY event_at DESC, id DESC"
            " OFFSET %s LIMIT 1",
            (count // 2,),
        ).fetchone()
    raw = f"{at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def measure_reads(port: int, token: str, records: int, dsn: str) -> dict:
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
    results["user events, a page halfway down"] = timed_gets(
        connection,
        [f"/dhub-i/api/v1.0/user-events?limit=50&cursor={deep_cursor(dsn)}"] * 200,
        api,
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
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of each side")
    parser.add_argument(
        "--slices", type=int, default=5, help="the two databases take turns this many times"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    prefix = f"cdp_scale_bench_{os.getpid()}"
    tenant = json.loads(bench.TENANT_FILE.read_text())
    tenant["users"][0]["password"] = PASSWORD
    tenant_file = Path(f"/tmp/{prefix}-tenant.json")
    tenant_file.write_text(json.dumps(tenant))
    # Two databases of the same tenant, each with its own server and cache, which take
    # turns: one stays as the bench leaves it, the other is loaded first.
    sides = {
        "empty": Side(f"{prefix}_empty", PORT + 1, redis_db=5, workers=args.workers),
        "stored": Side(f"{prefix}_stored", PORT, redis_db=3, workers=args.workers),
    }
    out: dict = {"records": args.records, "events": args.events}
    try:
        for side in sides.values():
            side.start(tenant_file)
        stored = sides["stored"]
        began = time.perf_counter()
        load(stored.dsn, *stored.ids, args.records, args.events)
        out["load_seconds"] = round(time.perf_counter() - began, 1)
        settle([side.dsn for side in sides.values()])
        keys = bench.Keys()
        scenario = bench.scenario_of("create")

        def part(side: Side) -> Callable[[float], bench.Run]:
            send = bench.endpoint_sender(side.port, side.token, None, keep_alive=True)
            return lambda seconds: bench.drive(side.name, scenario, 4, seconds, send, keys, [])

        runs = bench.in_turns(
            {name: part(side) for name, side in sides.items()}, args.duration, args.slices
        )
        rates = {}
        for name, run in runs.items():
            summary = run.summary()
            rates[name] = summary["entries_per_s"]
            with psycopg.connect(sides[name].dsn) as c:
                (rows,) = c.execute("SELECT count(*) FROM cdp_entityrecord").fetchone()
            out[f"create, {name} tables"] = {
                **{k: summary[k] for k in ("entries_per_s", "p50_ms", "p99_ms", "errors")},
                "records_at_the_end": rows,
            }
        out["create ratio stored / empty"] = round(rates["stored"] / rates["empty"], 3)
        out.update(measure_reads(stored.port, stored.token, args.records, stored.dsn))
    finally:
        for side in sides.values():
            side.stop(keep_db=args.keep_db)
        tenant_file.unlink(missing_ok=True)
    print(json.dumps(out, indent=2))


class Side:
    """One database of the bench tenant, served as `make serve` does."""

    def __init__(self, db_name: str, port: int, redis_db: int, workers: int) -> None:
        self.name = db_name.rsplit("_", 1)[1]
        self.db_name = db_name
        self.port = port
        self.dsn = bench.ADMIN_DSN.rsplit("/", 1)[0] + f"/{db_name}"
        self.env = bench.server_env(self.dsn, bench.CACHE_URL.rsplit("/", 1)[0] + f"/{redis_db}")
        self.server = bench.Server(self.env, workers, 8, port)
        self.ids: tuple[int, int, int] = (0, 0, 0)
        self.token = ""

    def start(self, tenant_file: Path) -> None:
        bench.scratch_database(self.db_name)
        bench.manage(self.env, "migrate", "--verbosity", "0")
        bench.manage(self.env, "provision", str(tenant_file), "--json")
        with psycopg.connect(self.dsn) as c:
            org_id, model_id = c.execute(
                "SELECT organization_id, id FROM cdp_datamodel WHERE mom_code = %s",
                (bench.MOM_CODE,),
            ).fetchone()
            (config_id,) = c.execute("SELECT id FROM journeys_journeyeventconfig").fetchone()
        self.ids = (org_id, model_id, config_id)
        self.server.start()
        self.token = bench.token_get(self.port)

    def stop(self, keep_db: bool) -> None:
        self.server.stop()
        if not keep_db:
            with psycopg.connect(bench.ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def settle(dsns: list[str]) -> None:
    """What a running system has done by the time it holds what was loaded: VACUUM and
    ANALYZE (autovacuum: hint bits, the visibility map, statistics) and a checkpoint (the
    load's dirty pages written out), so that neither falls into the timed turns."""
    for dsn in dsns:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("VACUUM (ANALYZE)")
    with psycopg.connect(dsns[0], autocommit=True) as connection:
        connection.execute("CHECKPOINT")


if __name__ == "__main__":
    main()
