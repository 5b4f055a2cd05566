"""`manage.py deliver_callbacks [--once] [--batch N] [--sleep S]`: the callback worker.

Run as many of these processes as the partners' latency needs: they share the outbox
through `SELECT … FOR UPDATE SKIP LOCKED` and leases (ingestion/callbacks.py), so no
callback is ever sent by two of them at once. SIGTERM and SIGINT stop the loop after the
batch in hand.
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from ingestion.callbacks import DeliveryRun, callbacks_deliver_due


class Command(BaseCommand):
    help = (
        "Send due ingestion callbacks, retrying failures with exponential backoff. Loops "
        "until stopped (SIGTERM/SIGINT), or sends what is due once with --once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="send every callback due now, then exit",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=10,
            help="callbacks claimed at a time (default 10)",
        )
        parser.add_argument(
            "--sleep",
            type=float,
            default=None,
            help="seconds to wait when nothing is due "
            f"(default CDP_CALLBACK_POLL_SECONDS, {settings.CDP_CALLBACK_POLL_SECONDS})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch: int = options["batch"]
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        pause = settings.CDP_CALLBACK_POLL_SECONDS if options["sleep"] is None else options["sleep"]
        if pause < 0:
            raise CommandError("--sleep must not be negative")
        self._stopping = False
        if not options["once"]:
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
            self.stdout.write(f"Delivering callbacks (batches of {batch}); stop with SIGTERM.")
        total = DeliveryRun()
        while not self._stopping:
            if not options["once"]:
                # A long-running loop must not keep a dead or expired connection.
                close_old_connections()
            run = callbacks_deliver_due(batch_size=batch)
            self._add(total, run)
            if run.claimed and options["verbosity"] >= 2:
                self.stdout.write(self._line(run))
            if run.claimed:
                continue
            if options["once"]:
                break
            time.sleep(pause)
        self.stdout.write(self._line(total, prefix="Done: " if options["once"] else "Stopped: "))

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    @staticmethod
    def _add(total: DeliveryRun, run: DeliveryRun) -> None:
        for name in ("claimed", "delivered", "retrying", "failed", "released"):
            setattr(total, name, getattr(total, name) + getattr(run, name))

    @staticmethod
    def _line(run: DeliveryRun, prefix: str = "") -> str:
        return (
            f"{prefix}{run.delivered} delivered, {run.retrying} to retry, {run.failed} failed"
            + (f", {run.released} released" if run.released else "")
        )
