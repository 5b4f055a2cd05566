"""`manage.py purge_ingestion_logs --older-than DAYS`: delete old ingestion log rows, and
the delivered or failed callbacks of the same age (pending callbacks are kept)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ingestion.callbacks import callback_deliveries_purge
from ingestion.log import ingestion_requests_purge


class Command(BaseCommand):
    help = (
        "Delete ingestion log rows older than DAYS days, with the delivered and failed "
        "callbacks of that age, in every organization."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            required=True,
            metavar="DAYS",
            help="delete what was created more than DAYS days ago (at least 1)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: int = options["older_than"]
        if days < 1:
            raise CommandError("--older-than must be at least 1 day")
        before = timezone.now() - timedelta(days=days)
        requests = ingestion_requests_purge(before=before)
        callbacks = callback_deliveries_purge(before=before)
        self.stdout.write(
            f"Deleted {requests} ingestion log row{'' if requests == 1 else 's'} and "
            f"{callbacks} finished callback{'' if callbacks == 1 else 's'} older than "
            f"{days} day{'' if days == 1 else 's'}."
        )
