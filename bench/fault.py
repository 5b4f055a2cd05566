"""`make fault`: kill the database, then the cache, under ingest load, and print what the
clients saw. Never touches the shared PostgreSQL or Redis: it starts its own scratch
PostgreSQL (initdb as the postgres user, port 55432) and Redis (port 56379), the server
as `make serve` does (gunicorn with gunicorn.conf.py) on them, and four clients sending
10-entry `create` requests with new keys.

Phases: steady, PostgreSQL killed (`pg_ctl stop -m immediate`), PostgreSQL back, Redis
killed, Redis back. For each phase it counts the answers by status, the 503s with a
Retry-After header, and the time from a restart to the first stored request; at the end
every entry a client was told was stored (200, result status 200) is looked up in the
database: acknowledged entries lost must be 0.

    .venv/bin/python bench/fault.py [--phase-seconds 6]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import ingest_bench as bench  # noqa: E402

PG_PORT, REDIS_PORT, HTTP_PORT = 55432, 56379, 8797
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def as_postgres(*command: str) -> None:
    subprocess.run(["su", "postgres", "-c", " ".join(command)], check=True, capture_output=True)


class Scratch:
    """A PostgreSQL cluster and a Redis of the script's own."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cdp-fault-"))
        shutil.chown(self.dir, "postgres")
        self.data = self.dir / "pg"
        self.redis: subprocess.Popen | None = None

    def pg_start(self) -> None:
        as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D", str(self.data),
            "-o", f"'-p {PG_PORT} -k {self.dir} -c listen_addresses=127.0.0.1'",
            "-l", str(self.dir / "pg.log"),
            "-w", "start",
        )  # fmt: skip

    def pg_kill(self) -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def redis_start(self) -> None:
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def redis_kill(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.wait()

    def __enter__(self) -> Scratch:
        as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.pg_start()
        self.redis_start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis_kill()
        subprocess.run(
            ["su", "postgres", "-c", f"{PG_BIN / 'pg_ctl'} -D {self.data} -m immediate stop"],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


class Load:
    """Clients sending batches of new keys; every answer recorded with its phase."""

    def __init__(self, token: str, clients: int = 4) -> None:
        self.token, self.clients = token, clients
        self.phase = "steady"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.retry_after: collections.Counter = collections.Counter()
        self.first_stored: dict[str, float] = {}
        self.acknowledged: list[str] = []
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(clients)]

    def send(self, keys: list[str]) -> tuple[int, dict, str | None]:
        body = json.dumps(
            {
                "objectType": "custom-model",
                "source": "fault",
                "entries": [bench.entry(k, i, 100) for i, k in enumerate(keys)],
            }
        )
        headers = {
            "Content-Type": "application/json",
            "TOKEN": self.token,
            "API_KEY": bench.API_KEY,
        }
        connection = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=30)
        try:
            connection.request("POST", bench.INGEST_PATH, body, headers)
            response = connection.getresponse()
            payload = response.read()
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = {}
            return response.status, parsed, response.getheader("Retry-After")
        except OSError:
            return 0, {}, None
        finally:
            connection.close()

    def run(self, client: int) -> None:
        n = 0
        while not self.stop.is_set():
            keys = [f"F{client}-{n}-{i}" for i in range(10)]
            n += 1
            phase = self.phase
            status, body, retry_after = self.send(keys)
            with self.lock:
                self.statuses[phase][status] += 1
                if status == 503 and retry_after:
                    self.retry_after[phase] += 1
                if status == 200:
                    self.first_stored.setdefault(phase, time.monotonic())
                    self.acknowledged += [
                        r["refId"] for r in body.get("results", []) if r.get("status") == 200
                    ]
            if status != 200:
                time.sleep(0.05)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase-seconds", type=float, default=6.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the scratch PostgreSQL is made with `su postgres`")

    with Scratch() as scratch:
        dsn = f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres"
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "CACHE_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
            "SECRET_KEY": "fault-only",
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "CDP_INGEST_RATE_LIMITS": "1000000/1",
            "LOG_LEVEL": "ERROR",
        }
        bench.manage(env, "migrate", "--verbosity", "0")
        bench.manage(env, "provision", str(bench.TENANT_FILE))
        server = bench.Server(env, workers=2, threads=8, port=HTTP_PORT)
        server.start()
        try:
            load = Load(bench.token_get(HTTP_PORT))
            load.start()
            marks: dict[str, float] = {}

            def phase(name: str, action=None) -> None:
                # A request is counted in the phase it started in: those that started
                # while the kill or the restart was under way count in the new phase.
                load.phase = name
                marks[name] = time.monotonic()
                if action is not None:
                    action()
                marks[name + " done"] = time.monotonic()
                time.sleep(args.phase_seconds)

            time.sleep(args.phase_seconds)
            phase("postgresql down", scratch.pg_kill)
            phase("postgresql back", scratch.pg_start)
            phase("redis down", scratch.redis_kill)
            phase("redis back", scratch.redis_start)
            load.finish()
        finally:
            server.stop()

        with psycopg.connect(dsn) as connection:
            stored = {
                key
                for (key,) in connection.execute(
                    "SELECT key FROM cdp_entityrecord WHERE source = 'fault'"
                )
            }
    lost = [key for key in load.acknowledged if key not in stored]
    print(f"{'phase':<18} {'answers by status':<40} {'503 with Retry-After':>20}  recovery")
    for name in ("steady", "postgresql down", "postgresql back", "redis down", "redis back"):
        counts = ", ".join(f"{s}: {c}" for s, c in sorted(load.statuses[name].items()))
        recovery = ""
        if name.endswith("back") and name in load.first_stored:
            after = load.first_stored[name] - marks[name]
            took = marks[name + " done"] - marks[name]
            recovery = f"first 200 {after:.2f} s after the restart began (it took {took:.2f} s)"
        print(f"{name:<18} {counts:<40} {load.retry_after[name]:>20}  {recovery}")
    print(f"acknowledged entries: {len(load.acknowledged)}, lost: {len(lost)}")
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
