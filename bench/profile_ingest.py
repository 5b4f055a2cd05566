"""Profile the ingest hot path in-process with pyinstrument (guides the work in
docs/performance.md). Runs N requests of a scenario through Django's test client against
a scratch PostgreSQL database and prints where the time goes.

    .venv/bin/python bench/profile_ingest.py --scenario create --requests 300
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--scenario", default="create", choices=["create", "update", "events", "small"]
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--stored", type=int, default=500, help="records stored (and analyzed) before timing"
    )
    parser.add_argument("--html", help="also write the profile as HTML here")
    parser.add_argument("--cprofile", action="store_true", help="cProfile instead of pyinstrument")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key")
    parser.add_argument("--cpu", action="store_true", help="cProfile counts CPU time, not wall")
    parser.add_argument("--lines", type=int, default=35, help="cProfile lines printed")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="run under `valgrind --tool=callgrind --instr-atstart=no`: count the "
        "instructions of the timed requests only (CPU time is shared with PostgreSQL)",
    )
    parser.add_argument(
        "--time-only", action="store_true", help="no profiler: print ms per request"
    )
    parser.add_argument(
        "--idempotency-key", action="store_true", help="each request with its own key"
    )
    args = parser.parse_args()

    import ingest_bench as bench

    with bench.provisioned_django(
        "profile",
        CACHE_URL=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/4"),
        CDP_INGEST_RATE_LIMITS="1000000000/1",
        CONN_MAX_AGE="60",
    ):
        from django.db import connections
        from django.test import Client
        from pyinstrument import Profiler

        client = Client()
        token = client.post(
            "/api/accounts/authen",
            {"username": bench.USERNAME, "apiKey": bench.API_KEY, "cdpGKey": bench.GROUP_KEY},
            content_type="application/json",
        ).json()["token"]
        from journeys.models import JourneyEventConfig

        config_id = JourneyEventConfig.objects.get().config_id
        keys = bench.Keys()
        existing = keys.take("seed", args.stored)
        scenario = bench.scenario_of(args.scenario)
        headers = {"HTTP_TOKEN": token, "HTTP_API_KEY": bench.API_KEY}

        def post(batch):
            body = {
                "objectType": "custom-model",
                "source": "bench",
                "entries": batch,
                "jeConfigId": config_id if scenario.with_event else None,
            }
            keyed = {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex} if args.idempotency_key else {}
            response = client.post(
                "/dhub-i/api/v1.0/ingest",
                json.dumps(body),
                content_type="application/json",
                **headers,
                **keyed,
            )
            assert response.status_code == 200, response.content[:300]

        for i in range(0, len(existing), 50):
            post([bench.entry(k, i + j, 100) for j, k in enumerate(existing[i : i + 50])])
        batches = scenario.batches(keys, existing, 0)
        for _ in range(20):
            post(next(batches))
        # Statistics as autovacuum would have them, on connections opened after them.
        with connections["default"].cursor() as cursor:
            cursor.execute("ANALYZE")
        connections.close_all()
        for _ in range(20):
            post(next(batches))
        if args.cprofile:
            import cProfile
            import pstats
            import time

            timer = time.process_time if args.cpu else time.perf_counter
            with cProfile.Profile(timer) as cprofile:
                for _ in range(args.requests):
                    post(next(batches))
            pstats.Stats(cprofile).sort_stats(args.sort).print_stats(args.lines)
            return
        if args.time_only:
            import subprocess
            import time

            def instrument(state: str) -> None:
                if args.callgrind:
                    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)

            def backend_cpu() -> float:
                with connections["default"].cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    (pid,) = cursor.fetchone()
                return bench.proc_cpu_ticks(bench.proc_stat(pid)[1]) / os.sysconf("SC_CLK_TCK")

            instrument("on")
            backend = backend_cpu()
            began, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.requests):
                post(next(batches))
            instrument("off")
            wall = (time.perf_counter() - began) * 1000 / args.requests
            cpu = (time.process_time() - cpu) * 1000 / args.requests
            backend = (backend_cpu() - backend) * 1000 / args.requests
            print(
                f"{args.scenario}: {wall:.2f} ms per request, {cpu:.2f} ms CPU in-process,"
                f" {backend:.2f} ms CPU in PostgreSQL's backend"
            )
            with connections["default"].cursor() as cursor:
                cursor.execute(
                    "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements"
                    " ORDER BY name"
                )
                for name, generic, custom in cursor.fetchall():
                    print(f"  {name}: {generic} generic plans, {custom} custom plans")
            return
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(args.requests):
            post(next(batches))
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        if args.html:
            Path(args.html).write_text(profiler.output_html())
        connections.close_all()


if __name__ == "__main__":
    main()
