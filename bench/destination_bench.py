"""Destination delivery throughput: what one worker sends to a local receiver, beside the
receiver's own ceiling (the same signed bodies POSTed with no database), in one run.

    .venv/bin/python bench/destination_bench.py --deliveries 300

What it does: creates a scratch PostgreSQL database, migrates it, stores DELIVERIES x 100
user events of one organization and one delivery row per 100 (as the ingest write queues
them), starts a receiver in a process of its own (answers 200 to every POST), then runs
the worker's drain in this process (`destinations_deliver_due`, batches of 10, as the
`deliver_destinations` task does) until nothing is due: events delivered per second.
Then the ceiling: the same bodies POSTed to the receiver straight, one connection each as
the worker makes them. Only the standard library, psycopg and the project.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

RECEIVER = """
import asyncio, sys
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=300, help="rows of 100 events")
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    db_name = f"cdp_destbench_{os.getpid()}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    os.environ.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{db_name}",
        SECRET_KEY="bench-only",
        DEBUG="false",
        CDP_CALLBACK_ALLOW_PRIVATE="true",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="cdp.settings",
    )
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(args.port)])
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        delivered, seconds, bodies = worker_run(args.deliveries, args.port)
        ceiling_seconds = ceiling_run(bodies, args.port)
    finally:
        receiver.terminate()
        receiver.wait()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

    events = delivered * 100
    print(f"{'target':>9}  {'POSTs':>6}  {'events':>7}  {'seconds':>7}  {'events/s':>9}")
    print(f"{'worker':>9}  {delivered:>6}  {events:>7}  {seconds:>7.2f}  {events / seconds:>9.0f}")
    print(
        f"{'ceiling':>9}  {len(bodies):>6}  {len(bodies) * 100:>7}  {ceiling_seconds:>7.2f}  "
        f"{len(bodies) * 100 / ceiling_seconds:>9.0f}"
    )
    worker_rate, ceiling_rate = events / seconds, len(bodies) * 100 / ceiling_seconds
    print(
        f"worker: {worker_rate:.0f} events/s (target 2,000); the receiver alone "
        f"{ceiling_rate:.0f} events/s; ratio {worker_rate / ceiling_rate:.2f}"
    )


def worker_run(count: int, port: int) -> tuple[int, float, list[tuple[bytes, dict]]]:
    from django.utils import timezone

    from cdp import services
    from ingestion.destinations import (
        delivery_body,
        destination_create,
        destinations_deliver_due,
        webhook_headers,
    )
    from ingestion.models import DestinationDelivery
    from journeys.models import UserEvent

    organization = services.organization_create(name="Bench")
    destination, secret = destination_create(
        organization=organization, name="bench", url=f"http://127.0.0.1:{port}/hooks"
    )
    now = timezone.now()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [f"E{n:07d}" for n in range(count * 100)]
    UserEvent.objects.bulk_create(
        (
            UserEvent(
                organization=organization,
                event_id=event_id,
                source="web",
                source_id=f"S-{event_id}",
                condition="Changed",
                event_name="purchase",
                channel="Online",
                event_ctg="Transaction",
                customer_id="C-1",
                event_at=at,
                created_at=now,
                request_id="r" * 32,
                ingested=True,
            )
            for event_id in ids
        ),
        batch_size=2000,
    )
    rows = DestinationDelivery.objects.bulk_create(
        DestinationDelivery(
            organization=organization,
            destination=destination,
            webhook_id=f"msg_{uuid.uuid4().hex}",
            request_id="r" * 32,
            event_ids=ids[n * 100 : (n + 1) * 100],
            next_attempt_at=now,
            created_at=now,
        )
        for n in range(count)
    )
    bodies = []
    for row in rows[:50]:  # the ceiling's sample of bodies, signed as the worker signs
        body = delivery_body(row)
        bodies.append(
            (body, webhook_headers(secret=secret, webhook_id=row.webhook_id, body=body, now=now))
        )
    began = time.perf_counter()
    delivered = 0
    while (run := destinations_deliver_due(batch_size=10)).claimed:
        delivered += run.delivered
    return delivered, time.perf_counter() - began, bodies * (count // 50 or 1)


def ceiling_run(bodies: list[tuple[bytes, dict]], port: int) -> float:
    began = time.perf_counter()
    for body, headers in bodies:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/hooks", body=body, headers=headers)
        conn.getresponse().read()
        conn.close()
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
