"""`manage.py run_worker [--once] [--interval S]`: every kind of background work, as one
long-running process on the task engine (django-tasks' database backend).

Each turn it enqueues what the schedules say is due (cdp/schedules.py: the outbox drains
every few seconds, the purges daily; exactly one worker enqueues each, however many run),
then runs the ready tasks of every queue, oldest first, each claimed by one worker only.
Run as many as the load needs, on any machine. `--once` does the work that is due now
(every outbox drain included) and exits: tests and cron use it. SIGTERM and SIGINT stop
the worker after the task in hand.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction

from cdp.schedules import schedules_enqueue_due


class Command(BaseCommand):
    help = (
        "Run the background work (callbacks, destinations, backfills, scheduled purges) "
        "until stopped, or what is due now with --once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="do what is due now, then exit")
        parser.add_argument(
            "--interval",
            type=float,
            default=1.0,
            help="seconds to wait when nothing is ready (default 1)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval: float = options["interval"]
        if interval < 0:
            raise CommandError("--interval must not be negative")
        once: bool = options["once"]
        self._stopped = threading.Event()
        self._worker: Worker | None = None
        if not once:
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
            self.stdout.write("Running background work; stop with SIGTERM.")
        worker_id = f"{socket.gethostname()}-{os.getpid()}"[:64]
        # django-tasks' own worker runs the tasks (their status, result, signals); the
        # loop is ours, to interleave the schedules and to leave the connection alone
        # under --once (a caller's transaction, as in tests, must survive).
        self._worker = Worker(
            queue_names=["*"],
            interval=0,
            batch=True,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=worker_id,
            excluded_queue_names=[],
        )
        ran = 0
        while not self._stopped.is_set():
            if not once:
                close_old_connections()  # a long-running loop keeps no dead connection
            schedules_enqueue_due(drains=once)
            while self._worker.running and (claimed := _claim(worker_id)) is not None:
                self._worker.run_task(claimed)
                ran += 1
            if once:
                break
            self._stopped.wait(interval)
        self.stdout.write(f"Ran {ran} task{'' if ran == 1 else 's'}.")

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopped.set()
        if self._worker is not None:
            self._worker.running = False  # after the task in hand


def _claim(worker_id: str) -> DBTaskResult | None:
    """The oldest ready task of any queue, claimed for this worker (SKIP LOCKED on
    PostgreSQL, an exclusive transaction on SQLite): no other worker runs it."""
    ready = DBTaskResult.objects.ready().filter(backend_name="default")
    with exclusive_transaction(ready.db):
        task_result = ready.get_locked()
        if task_result is not None:
            task_result.claim(worker_id)
    return task_result
