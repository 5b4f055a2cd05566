"""`manage.py purge_record_history [--older-than DAYS]`: delete record history entries
older than CDP_RECORD_HISTORY_DAYS (90) days, or DAYS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ingestion.log import record_history_purge


class Command(BaseCommand):
    help = "Delete record history entries past their retention, in every organization."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            help="the retention in days (default: CDP_RECORD_HISTORY_DAYS; at least 1)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        given = options["older_than"]
        days: int = settings.CDP_RECORD_HISTORY_DAYS if given is None else given
        if days < 1:
            raise CommandError("--older-than must be at least 1 day")
        deleted = record_history_purge(before=timezone.now() - timedelta(days=days))
        self.stdout.write(
            f"Deleted {deleted} record history entr{'y' if deleted == 1 else 'ies'} older "
            f"than {days} day{'' if days == 1 else 's'}."
        )
