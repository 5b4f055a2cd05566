"""Ingest benchmark: the endpoint against PostgreSQL's own ceiling, side by side, in one run.

    make bench                      # the four scenarios, then the create ratio on the last line
    .venv/bin/python bench/ingest_bench.py --scaling --plot docs/performance.png
    .venv/bin/python bench/ingest_bench.py --soak 300 --scenarios create

What it does: creates a scratch PostgreSQL database, migrates it, provisions the bench
tenant (bench/bench-tenant.json), starts gunicorn (--workers, default 2) with the shared
cache on Redis, and drives POST /dhub-i/api/v1.0/ingest from threads in this process at a
given concurrency. The load generator is deliberately light (keep-alive-less HTTP/1.1 on
loopback, bodies built from a template); its own CPU use is measured and reported so a
reader can see it did not starve the server. The same batches are also written straight
to PostgreSQL with psycopg (one INSERT … ON CONFLICT and one transaction per batch, same
concurrency, a table with the same shape and indexes): the ceiling. The two take turns
(--slices of each run), so that a shared host's drifting speed falls on both. The ratio
endpoint ÷ ceiling (entries/s) is what the hot path costs above the database's own work.

Only the standard library, psycopg and orjson (project dependencies); matplotlib for --plot.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from cdp.server_worker import connections_per_worker

ROOT = Path(__file__).resolve().parent.parent
TENANT_FILE = ROOT / "bench" / "bench-tenant.json"
TENANT = json.loads(TENANT_FILE.read_text())
USERNAME = TENANT["users"][0]["username"]
API_KEY = TENANT["users"][0]["apiKeys"][0]["key"]
GROUP_KEY = TENANT["organization"]["groupKey"]
MOM_CODE = TENANT["models"][0]["momCode"]
# The same fields, tagged KEEP_HISTORY.
HISTORY_MOM_CODE = TENANT["models"][1]["momCode"]
ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
INGEST_PATH = "/dhub-i/api/v1.0/ingest"
SCENARIOS = ("create", "create-key", "update", "update-history", "events", "events-dest", "small")


# --------------------------------------------------------------------------------------
# Batches: the same ones for the endpoint and for the ceiling.


class Keys:
    """Unique record keys across threads and scenarios."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0

    def take(self, prefix: str, count: int) -> list[str]:
        with self._lock:
            start = self._next
            self._next += count
        return [f"{prefix}-{n}" for n in range(start, start + count)]


def entry(key: str, n: int, points: int, mom_code: str = MOM_CODE) -> dict[str, Any]:
    """A custom-model entry of about ten fields, custom fields grouped as real clients do."""
    return {
        "momCode": mom_code,
        "refId": key,
        "customerId": f"C-{n % 9973}",
        "email": f"user{n}@bench.test",
        "phone": f"+8490{n % 10_000_000:07d}",
        "createdAt": 1_700_000_000 + n,
        "customFieldTexts": {"customField01": ("gold", "silver")[n % 2], "customField02": "Hanoi"},
        "customFieldLongs": {"customFieldLong01": points, "customFieldLong02": n % 31},
        "customFieldDoubles": {"customFieldDouble01": n / 7},
        "customFieldBooleans": {"customFieldBool01": n % 3 == 0},
        "customFieldTimestamps": {"customFieldTimestamp01": 1_700_000_000_000 + n},
        "customFieldListTexts": {"customFieldList01": ["shoes", "bags"]},
    }


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """What the endpoint stores: custom fields flat, times in ms (for the ceiling's rows)."""
    data = {k: v for k, v in record.items() if not k.startswith("customField") and k != "momCode"}
    data["createdAt"] = record["createdAt"] * 1000
    for group in ("Texts", "Longs", "Doubles", "Booleans", "Timestamps", "ListTexts"):
        data.update(record.get(f"customField{group}", {}))
    return data


@dataclass
class Scenario:
    name: str
    batch_size: int
    with_event: bool = False
    existing_share: float = 0.0  # of each batch, keys that exist and change
    keyed: bool = False  # each request with its own Idempotency-Key
    mom_code: str = MOM_CODE

    def batches(self, keys: Keys, existing: list[str], thread: int) -> Iterator[list[dict]]:
        counter = 0
        while True:
            counter += 1
            n_existing = int(self.batch_size * self.existing_share)
            chosen = (
                [
                    existing[(thread * 7919 + counter * 31 + i) % len(existing)]
                    for i in range(n_existing)
                ]
                if n_existing
                else []
            )
            fresh = keys.take(f"{self.name}{thread}", self.batch_size - n_existing)
            yield [
                # Half the entries pass the bench User Event's filter (points >= 500).
                entry(key, counter * 100 + i, 900 if i % 2 == 0 else 100 + counter, self.mom_code)
                for i, key in enumerate([*chosen, *fresh])
            ]


def scenario_of(name: str, batch_size: int = 50) -> Scenario:
    return {
        "create": Scenario("create", batch_size),
        "create-key": Scenario("create-key", batch_size, keyed=True),
        "update": Scenario("update", batch_size, existing_share=0.5),
        "update-history": Scenario(
            "update-history", batch_size, existing_share=0.5, mom_code=HISTORY_MOM_CODE
        ),
        "events": Scenario("events", batch_size, with_event=True),
        # `events` with one destination on: its deliveries are queued by the same write.
        "events-dest": Scenario("events-dest", batch_size, with_event=True),
        "small": Scenario("small", 1),
    }[name]


# --------------------------------------------------------------------------------------
# Measuring.


@dataclass
class Run:
    target: str
    scenario: str
    batch_size: int
    concurrency: int
    seconds: float
    requests: int = 0
    entries: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    client_cpu_percent: float = 0.0
    server_cpu_ms_per_request: float | None = None  # the workers' CPU (user + system)
    server_rss_mb: float | None = None
    error_sample: str = ""
    db_cpu_seconds: float = 0.0  # PostgreSQL's processes' CPU (user + system)
    # How the workers shared the connections, sampled once a slice ("2:2": slices).
    worker_connections: dict[str, int] = field(default_factory=dict)

    def add(self, other: Run) -> None:
        """Fold a later slice of the same target and scenario into this run."""
        cpu = self.client_cpu_percent * self.seconds + other.client_cpu_percent * other.seconds
        self.seconds += other.seconds
        self.client_cpu_percent = round(cpu / self.seconds, 1)
        self.requests += other.requests
        self.entries += other.entries
        self.errors += other.errors
        self.latencies_ms += other.latencies_ms
        self.error_sample = self.error_sample or other.error_sample
        self.db_cpu_seconds += other.db_cpu_seconds
        for split, slices in other.worker_connections.items():
            self.worker_connections[split] = self.worker_connections.get(split, 0) + slices

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms) or [0.0]

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2)

        data = asdict(self)
        data.pop("latencies_ms")
        data.update(
            db_cpu_ms_per_request=round(
                data.pop("db_cpu_seconds") * 1000 / max(1, self.requests), 2
            ),
            requests_per_s=round(self.requests / self.seconds, 1),
            entries_per_s=round(self.entries / self.seconds, 1),
            p50_ms=pct(0.50),
            p95_ms=pct(0.95),
            p99_ms=pct(0.99),
            mean_ms=round(statistics.fmean(lat), 2),
        )
        return data


Sender = Callable[[int, list[dict]], tuple[bool, str]]


def drive(
    target: str,
    scenario: Scenario,
    concurrency: int,
    seconds: float,
    send: Sender,
    keys: Keys,
    existing: list[str],
) -> Run:
    """Run `send` from `concurrency` threads for `seconds`; count, time and check it."""
    run = Run(target, scenario.name, scenario.batch_size, concurrency, seconds)
    lock = threading.Lock()
    start_line = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker(thread: int) -> None:
        batches = scenario.batches(keys, existing, thread)
        latencies, requests, entries, errors, sample = [], 0, 0, 0, ""
        start_line.wait()
        while time.perf_counter() < deadline[0]:
            batch = next(batches)
            began = time.perf_counter()
            ok, detail = send(thread, batch)
            latencies.append((time.perf_counter() - began) * 1000)
            requests += 1
            if ok:
                entries += len(batch)
            else:
                errors += 1
                sample = sample or detail[:300]
        with lock:
            run.latencies_ms += latencies
            run.requests += requests
            run.entries += entries
            run.errors += errors
            run.error_sample = run.error_sample or sample

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    cpu_before = time.process_time()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_line.wait()
    for t in threads:
        t.join()
    run.seconds = time.perf_counter() - began
    run.client_cpu_percent = round(100 * (time.process_time() - cpu_before) / run.seconds, 1)
    return run


def in_turns(
    parts: dict[str, Callable[[float], Run]], seconds: float, slices: int
) -> dict[str, Run]:
    """Each target's part in turn, `slices` times of `seconds / slices` each, and each
    target's parts summed: the targets see the host as it is in the same minute (a shared
    host's speed drifts from one minute to the next)."""
    runs: dict[str, Run] = {}
    for _ in range(slices):
        for target, part in parts.items():
            ran = part(seconds / slices)
            if target in runs:
                runs[target].add(ran)
            else:
                runs[target] = ran
    return runs


# --------------------------------------------------------------------------------------
# The endpoint.


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


class Server:
    """The production server as `make serve` starts it: gunicorn with the repository's
    gunicorn.conf.py (WEB_CONCURRENCY workers)."""

    def __init__(self, env: dict[str, str], workers: int, threads: int, port: int) -> None:
        self.env, self.workers, self.threads, self.port = env, workers, threads, port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
        env = {**self.env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        env["WEB_CONCURRENCY"] = str(self.workers)
        command = [gunicorn, "-c", str(ROOT / "gunicorn.conf.py")]
        if self.threads == 0:
            # gunicorn's sync workers, on the WSGI application. They drop every header
            # with an underscore unless told otherwise, the API's API_KEY with them
            # (make serve's guard keeps that one alone, cdp/asgi.py).
            command += ["--worker-class", "sync", "--header-map", "dangerous"]
            command += ["cdp.wsgi:application"]
        else:
            env["WEB_THREADS"] = str(self.threads)
        if _listening(self.port):
            # Measuring someone else's server (an interrupted run's gunicorn, say) would
            # give its figures as this code's.
            raise RuntimeError(
                f"port {self.port} is taken: stop what listens there (pgrep -af gunicorn)"
                " or pass --port"
            )
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
        for _ in range(100):
            if self.process.poll() is not None:
                break
            if _listening(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not start")

    def rss_mb(self) -> float:
        """Resident memory of the master and its workers, from /proc."""
        assert self.process is not None
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        total_kb = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        return round(total_kb / 1024, 1)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the workers have used so far, from /proc: the live
        workers' own, and the master's count of its reaped children, which holds the
        workers gunicorn has recycled (`max_requests`) since."""
        assert self.process is not None

        _, master = proc_stat(self.process.pid)
        ticks = int(master[13]) + int(master[14])  # cutime, cstime: the reaped children
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        for pid in children.read_text().split() if children.exists() else ():
            ticks += proc_cpu_ticks(proc_stat(pid)[1])
        return ticks / os.sysconf("SC_CLK_TCK")

    def connections_split(self) -> str:
        """Each worker's established connections, busiest first: "2:2", "3:1"."""
        assert self.process is not None
        try:
            counts = connections_per_worker(self.process.pid, self.port)
        except OSError:  # a worker recycled while it was read
            return "?"
        return ":".join(str(n) for n in sorted(counts.values(), reverse=True))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)


def proc_stat(pid: int | str) -> tuple[str, list[str]]:
    """A process's command name and the fields of /proc/PID/stat after it (the third on:
    the name is in parentheses and may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    name, _, rest = text.partition(" (")[2].rpartition(")")
    return name, rest.split()


def proc_cpu_ticks(fields: list[str]) -> int:
    """utime + stime (fields 14 and 15 of /proc/PID/stat), in clock ticks."""
    return int(fields[11]) + int(fields[12])


def postgres_cpu_seconds() -> float:
    """CPU time (user + system) of this machine's PostgreSQL processes so far, from /proc:
    the processes alive now, and the children each has reaped (cutime + cstime, fields
    16 and 17). A backend that exits (a recycled gunicorn worker's connection, an
    autovacuum worker) moves its time into the postmaster's reaped children's, so the
    total never goes back between two readings."""
    ticks = 0
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            name, fields = proc_stat(entry.name)
        except OSError:  # gone meanwhile
            continue
        if name == "postgres":
            ticks += proc_cpu_ticks(fields) + int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def token_get(port: int) -> str:
    body = json.dumps({"username": USERNAME, "apiKey": API_KEY, "cdpGKey": GROUP_KEY})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/api/accounts/authen", body, {"Content-Type": "application/json"})
    return json.loads(connection.getresponse().read())["token"]


def http_post(port: int, head: bytes, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on a fresh connection (`Connection: close`), on a raw socket: the
    load generator should cost the shared cores as little as it can."""
    request = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response[9:12]), response.partition(b"\r\n\r\n")[2]


class KeepAlive:
    """One persistent HTTP/1.1 connection per thread, as integrators' HTTP clients keep
    them; reconnects when the server closes (sync workers close after every answer)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        request = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        for _attempt in range(2):
            sock = getattr(self.local, "sock", None)
            if sock is None:
                sock = self.local.sock = socket.create_connection(("127.0.0.1", self.port), 30)
                self.local.buffer = b""
            try:
                sock.sendall(request)
                return self._response(sock)
            except (ConnectionError, OSError):
                sock.close()
                self.local.sock = None
        raise ConnectionError("the server closed the connection twice")

    def _response(self, sock: socket.socket) -> tuple[int, bytes]:
        data = self.local.buffer
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        # Field names are case-insensitive (uvicorn sends them lower-cased).
        fields = {k.lower(): v for k, v in (line.split(b": ", 1) for line in lines[1:])}
        length = int(fields[b"content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            rest += chunk
        self.local.buffer = rest[length:]
        if fields.get(b"connection", b"").lower() == b"close":
            sock.close()
            self.local.sock = None
        return int(lines[0][9:12]), rest[:length]


def endpoint_sender(
    port: int, token: str, config_id: str | None, keep_alive: bool = False, keyed: bool = False
) -> Sender:
    connection = "keep-alive" if keep_alive else "close"
    head = (
        f"POST {INGEST_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n"
        f"Content-Type: application/json\r\nTOKEN: {token}\r\nAPI_KEY: {API_KEY}\r\n"
    ).encode()
    body_head = {"objectType": "custom-model", "source": "bench", "jeConfigId": config_id}
    pool = KeepAlive(port) if keep_alive else None

    def send(thread: int, batch: list[dict]) -> tuple[bool, str]:
        body = orjson.dumps({**body_head, "entries": batch})
        this_head = head + b"Idempotency-Key: %s\r\n" % uuid.uuid4().hex.encode() if keyed else head
        status, payload = pool.post(this_head, body) if pool else http_post(port, this_head, body)
        ok = status == 200 and payload.startswith(b'{"success":true')
        return ok, f"{status} {payload[:200]!r}"

    return send


# --------------------------------------------------------------------------------------
# The ceiling: the same batches straight into a table of the same shape, with psycopg.

CEILING_SQL = """
INSERT INTO bench_ceiling
    (organization_id, data_model_id, key, cdp_id, data, source, created_at, updated_at)
SELECT %s, %s, t.key, t.cdp_id, t.data, 'bench', now(), now()
FROM jsonb_to_recordset(%s::jsonb) AS t(key text, cdp_id text, data jsonb)
ORDER BY t.key
ON CONFLICT (organization_id, data_model_id, key) DO UPDATE
SET data = bench_ceiling.data || EXCLUDED.data, updated_at = EXCLUDED.updated_at
WHERE bench_ceiling.data IS DISTINCT FROM bench_ceiling.data || EXCLUDED.data
"""


def ceiling_sender(dsn: str, org_id: int, model_id: int, concurrency: int):
    connections = [psycopg.connect(dsn, autocommit=False) for _ in range(concurrency)]

    def send(thread: int, batch: list[dict]) -> tuple[bool, str]:
        rows = [{"key": e["refId"], "cdp_id": e["refId"][-20:], "data": flat(e)} for e in batch]
        connection = connections[thread]
        with connection.cursor() as cursor:
            cursor.execute(CEILING_SQL, (org_id, model_id, psycopg.types.json.Jsonb(rows)))
        connection.commit()
        return True, ""

    def close() -> None:
        for c in connections:
            c.close()

    return send, close


# --------------------------------------------------------------------------------------


# A Redis URL with its database number; the scale bench also uses database 5 of it.
CACHE_URL = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/3")


def scratch_database(db_name: str) -> str:
    """Create a database for one bench run; its DSN."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    return ADMIN_DSN.rsplit("/", 1)[0] + f"/{db_name}"


def server_env(dsn: str, cache_url: str = CACHE_URL) -> dict[str, str]:
    """The environment the benches run `manage.py` and the server in: production settings
    on the scratch database, without the per-key rate limits (the benches measure
    throughput)."""
    return {
        **os.environ,
        "DATABASE_URL": dsn.replace("postgresql://", "postgres://"),
        "CACHE_URL": cache_url,
        "SECRET_KEY": "bench-only-secret-key",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CDP_INGEST_RATE_LIMITS": "1000000000/1",
        "LOG_LEVEL": "WARNING",
    }


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def destination_switch(env: dict[str, str], organization_id: int, *, on: bool) -> None:
    """The bench organization's one destination, on or off, through the services (so that
    the servers' cached routes follow). Nothing delivers during the run: the scenario
    measures the queuing, in the ingest write; bench/destination_bench.py the sending."""
    code = (
        "from cdp.models import Organization\n"
        "from ingestion.destinations import destination_create, destination_update\n"
        "from ingestion.models import Destination\n"
        f"org = Organization.objects.get(pk={organization_id})\n"
        "d = Destination.objects.filter(organization=org, name='bench').first()\n"
        "if d is None:\n"
        "    destination_create(organization=org, name='bench', url='http://127.0.0.1:9/hooks')\n"
        "else:\n"
        f"    destination_update(destination=d, enabled={on})\n"
    )
    manage({**env, "CDP_CALLBACK_ALLOW_PRIVATE": "true"}, "shell", "-c", code)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    with psycopg.connect(ADMIN_DSN) as c:
        pg_version = c.execute("SHOW server_version").fetchone()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "kernel": platform.release(),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = [
        ("scenario", "scenario"),
        ("target", "target"),
        ("batch", "batch_size"),
        ("conc", "concurrency"),
        ("req/s", "requests_per_s"),
        ("entries/s", "entries_per_s"),
        ("p50 ms", "p50_ms"),
        ("p95 ms", "p95_ms"),
        ("p99 ms", "p99_ms"),
        ("errors", "errors"),
        ("srv cpu ms/req", "server_cpu_ms_per_request"),
        ("db cpu ms/req", "db_cpu_ms_per_request"),
        ("rss MB", "server_rss_mb"),
        ("client cpu%", "client_cpu_percent"),
        ("ratio", "ratio"),
    ]
    widths = [max(len(title), *(len(str(r.get(key, ""))) for r in rows)) for title, key in columns]
    print("  ".join(title.rjust(w) for (title, _), w in zip(columns, widths, strict=True)))
    for r in rows:
        cells = [str(r.get(key, "") if r.get(key) is not None else "") for _, key in columns]
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))


@contextmanager
def provisioned_django(name: str, **env: str) -> Iterator[str]:
    """A scratch PostgreSQL database, this process's Django set up on it, migrated, with
    the bench tenant provisioned; yields its DSN and drops it afterwards. For the benches
    that time services in-process (backfill, erasure, dashboard); `env` adds settings."""
    db_name = f"cdp_{name}_{os.getpid()}"
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{db_name}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    os.environ.update(
        DATABASE_URL=dsn.replace("postgresql://", "postgres://"),
        SECRET_KEY="bench-only",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="testserver",
        DJANGO_SETTINGS_MODULE="cdp.settings",
        **env,
    )
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        with open(os.devnull, "w") as quiet:
            call_command("provision", str(TENANT_FILE), stdout=quiet)
        yield dsn
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def suppressions_add(connection: psycopg.Connection, organization_id: int, count: int) -> None:
    """An erasure request that suppresses `count` identifiers no bench entry carries: every
    entry is then checked against them (cdp/suppression.py), and all are stored."""
    digests = [f"email:{hashlib.sha256(f'erased-{n}'.encode()).hexdigest()}" for n in range(count)]
    connection.execute(
        "INSERT INTO cdp_erasurerequest (organization_id, erasure_id, identifiers,"
        " requested_by, records, events, history, callbacks, deliveries, suppress, digests,"
        " suppression_lifted_by, created_at)"
        " VALUES (%s, %s, '[\"email\"]', 'bench', 0, 0, 0, 0, 0, true, %s, '', now())",
        (organization_id, uuid.uuid4().hex, Jsonb(digests)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--threads", type=int, default=8, help="threads per worker (0: sync workers instead)"
    )
    parser.add_argument(
        "--no-keep-alive",
        action="store_true",
        help="a new connection per request (Connection: close) instead of kept-alive ones",
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per run")
    parser.add_argument(
        "--slices",
        type=int,
        default=5,
        help="the endpoint and the ceiling alternate in this many slices of each run",
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--scaling", action="store_true", help="batch size and concurrency sweeps")
    parser.add_argument("--plot", help="write the scaling plot to this PNG (needs matplotlib)")
    parser.add_argument("--soak", type=float, default=0, help="seconds of create load; RSS trend")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--suppressions",
        type=int,
        default=0,
        help="suppressed identifiers in the bench organization (none matches its entries)",
    )
    args = parser.parse_args()

    db_name = f"cdp_bench_{os.getpid()}"
    dsn = scratch_database(db_name)
    env = server_env(dsn)
    server = Server(env, args.workers, args.threads, args.port)
    results: dict[str, Any] = {
        "machine": machine(),
        "workers": args.workers,
        "threads": args.threads,
        "keep_alive": not args.no_keep_alive,
        "runs": [],
    }
    try:
        manage(env, "migrate", "--verbosity", "0")
        provisioned = json.loads(manage(env, "provision", str(TENANT_FILE), "--json"))
        config_id = provisioned["userEvents"][0]["jeConfigId"]
        with psycopg.connect(dsn, autocommit=True) as c:
            org_id, model_id = c.execute(
                "SELECT organization_id, id FROM cdp_datamodel WHERE mom_code = %s", (MOM_CODE,)
            ).fetchone()
            c.execute("CREATE TABLE bench_ceiling (LIKE cdp_entityrecord INCLUDING ALL)")
            if args.suppressions:
                suppressions_add(c, org_id, args.suppressions)
                results["suppressions"] = args.suppressions
        server.start()
        token = token_get(args.port)
        keys = Keys()

        # Keys that exist, for `update`: created through the endpoint, before timing.
        existing = keys.take("seed", 2000)
        seed = endpoint_sender(args.port, token, None)
        ceiling_seed, close_seed = ceiling_sender(dsn, org_id, model_id, 1)
        for i in range(0, len(existing), 50):
            batch = [entry(k, i + j, 100) for j, k in enumerate(existing[i : i + 50])]
            assert seed(0, batch)[0], "seeding failed"
            ceiling_seed(0, batch)
            # The same keys in the model that keeps history (`update-history`).
            kept = [
                entry(k, i + j, 100, HISTORY_MOM_CODE) for j, k in enumerate(existing[i : i + 50])
            ]
            assert seed(0, kept)[0], "seeding failed"
        close_seed()
        # What autovacuum would have done by now on a running system: statistics.
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("ANALYZE")

        def measure(name: str, batch_size: int, concurrency: int, seconds: float) -> list[dict]:
            scenario = scenario_of(name, batch_size)
            send = endpoint_sender(
                args.port,
                token,
                config_id if scenario.with_event else None,
                keep_alive=not args.no_keep_alive,
                keyed=scenario.keyed,
            )
            send_c, close_c = ceiling_sender(dsn, org_id, model_id, concurrency)
            server_cpu = 0.0

            def part(target: str, sender: Sender) -> Callable[[float], Run]:
                def run(part_seconds: float) -> Run:
                    nonlocal server_cpu
                    cpu_before, db_before = server.cpu_seconds(), postgres_cpu_seconds()
                    splits: list[str] = []
                    sampler = None
                    if target == "endpoint":  # halfway through, the connections are open
                        sampler = threading.Timer(
                            part_seconds / 2, lambda: splits.append(server.connections_split())
                        )
                        sampler.start()
                    ran = drive(target, scenario, concurrency, part_seconds, sender, keys, existing)
                    if sampler is not None:
                        sampler.cancel()  # a slice cut short by errors: no sample after it
                    ran.worker_connections = {split: 1 for split in splits}
                    ran.db_cpu_seconds = postgres_cpu_seconds() - db_before
                    if target == "endpoint":
                        server_cpu += server.cpu_seconds() - cpu_before
                    return ran

                return run

            try:
                runs = in_turns(
                    {"endpoint": part("endpoint", send), "ceiling": part("ceiling", send_c)},
                    seconds,
                    args.slices,
                )
            finally:
                close_c()
            endpoint, ceiling = runs["endpoint"], runs["ceiling"]
            cpu_ms = server_cpu * 1000 / max(1, endpoint.requests)
            endpoint.server_cpu_ms_per_request = round(cpu_ms, 2)
            endpoint.server_rss_mb = server.rss_mb()
            rows = [endpoint.summary(), ceiling.summary()]
            rows[0]["ratio"] = round(rows[0]["entries_per_s"] / rows[1]["entries_per_s"], 3)
            return rows

        rows: list[dict] = []
        for name in args.scenarios.split(","):
            if name == "events-dest":
                destination_switch(env, org_id, on=True)
            rows += measure(name, scenario_of(name).batch_size, args.concurrency, args.duration)
            if name == "events-dest":
                destination_switch(env, org_id, on=False)
                with psycopg.connect(dsn, autocommit=True) as c:
                    (queued,) = c.execute(
                        "SELECT count(*) FROM ingestion_destinationdelivery"
                    ).fetchone()
                results["deliveries_queued"] = queued
        results["runs"] += rows

        if args.scaling:
            sweep = []
            for size in (1, 10, 25, 50):
                sweep += measure("create", size, args.concurrency, args.duration)
            for concurrency in (1, 2, 4, 8):
                sweep += measure("create", 50, concurrency, args.duration)
            results["scaling"] = sweep

        if args.soak:
            samples = []
            scenario = scenario_of("create")
            send = endpoint_sender(args.port, token, None, keep_alive=not args.no_keep_alive)
            stop_at = time.perf_counter() + args.soak
            began = time.perf_counter()
            while time.perf_counter() < stop_at:
                drive("endpoint", scenario, args.concurrency, 5, send, keys, existing)
                samples.append((round(time.perf_counter() - began, 1), server.rss_mb()))
            first = [rss for t, rss in samples if t <= 60]
            last = [rss for t, rss in samples if t >= samples[-1][0] - 60]
            growth = (statistics.fmean(last) - statistics.fmean(first)) / statistics.fmean(first)
            results["soak"] = {
                "seconds": args.soak,
                "samples": samples,
                "first_minute_mb": round(statistics.fmean(first), 1),
                "last_minute_mb": round(statistics.fmean(last), 1),
                "growth_percent": round(100 * growth, 1),
            }
    finally:
        server.stop()
        if not args.keep_db:
            with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    m = results["machine"]
    print(
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
        f"PostgreSQL {m['postgresql']}, Python {m['python']}; gunicorn workers: {args.workers}"
    )
    print_table(results["runs"])
    if "scaling" in results:
        print("\nScaling (create):")
        print_table(results["scaling"])
        if args.plot:
            plot(results["scaling"], args.plot, args.concurrency)
    if "soak" in results:
        s = results["soak"]
        print(
            f"\nSoak {s['seconds']:.0f} s: server RSS first minute {s['first_minute_mb']} MB, "
            f"last minute {s['last_minute_mb']} MB ({s['growth_percent']:+.1f} %)"
        )
    print(f"\nResults: {args.out}")
    endpoint_runs = {r["scenario"]: r for r in results["runs"] if "ratio" in r}
    events, with_destination = endpoint_runs.get("events"), endpoint_runs.get("events-dest")
    if events and with_destination:
        kept = with_destination["entries_per_s"] / events["entries_per_s"]
        print(
            f"One destination on: events {with_destination['entries_per_s']} against "
            f"{events['entries_per_s']} entries/s ({100 * kept:.0f} % kept; target 90 %), "
            f"{results.get('deliveries_queued', 0)} deliveries queued"
        )
    splits = {
        name: ", ".join(f"{split} in {n}" for split, n in sorted(run["worker_connections"].items()))
        for name, run in endpoint_runs.items()
        if run["worker_connections"]
    }
    if splits:
        print(
            "Connections per worker, busiest first, sampled once a slice: "
            + "; ".join(f"{name} {text}" for name, text in splits.items())
        )
    create, keyed = endpoint_runs.get("create"), endpoint_runs.get("create-key")
    if create and keyed:
        added = keyed["server_cpu_ms_per_request"] / create["server_cpu_ms_per_request"] - 1
        print(
            f"Idempotency-Key: server CPU {create['server_cpu_ms_per_request']} → "
            f"{keyed['server_cpu_ms_per_request']} ms per create request ({100 * added:+.1f} %)"
        )
    if create:
        print(
            f"create ratio (endpoint / ceiling entries/s at concurrency "
            f"{create['concurrency']}): {create['ratio']}"
        )


def plot(sweep: list[dict], path: str, concurrency: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_size = [r for r in sweep if r["concurrency"] == concurrency][:8]
    by_conc = [r for r in sweep if r["batch_size"] == 50][-8:]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, rows, key, label in (
        (left, by_size, "batch_size", f"batch size (concurrency {concurrency})"),
        (right, by_conc, "concurrency", "concurrency (batch size 50)"),
    ):
        for target, style in (("endpoint", "o-"), ("ceiling", "s--")):
            points = sorted((r[key], r["entries_per_s"]) for r in rows if r["target"] == target)
            axis.plot([p[0] for p in points], [p[1] for p in points], style, label=target)
        axis.set_xlabel(label)
        axis.set_ylabel("entries/s")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("POST /dhub-i/api/v1.0/ingest vs PostgreSQL ceiling")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
