"""`manage.py backfill_user_event <jeConfigId> [--dry-run] [--since DATE] [--org GROUPKEY]`:
fire a `Created` User Event for the records that existed before it (ingestion/backfill.py),
with a progress bar and a summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from cdp.models import EntityRecord
from ingestion.backfill import BackfillRefused, user_event_backfill
from journeys.models import JourneyEventConfig


class Command(BaseCommand):
    help = (
        "Generate a Created User Event's events for the existing records of its model that "
        "pass its filter (once per record, ever); --dry-run counts them and writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("config_id", metavar="jeConfigId")
        parser.add_argument("--dry-run", action="store_true", help="count; write nothing")
        parser.add_argument(
            "--since", help="only records updated since this date or time (ISO 8601)"
        )
        parser.add_argument(
            "--org", metavar="GROUPKEY", help="the organization, when the id is ambiguous"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        configs = JourneyEventConfig.objects.filter(config_id=options["config_id"])
        if options["org"]:
            configs = configs.filter(organization__group_key=options["org"])
        found = list(configs.select_related("organization")[:2])
        if not found:
            raise CommandError(f"Unknown jeConfigId: {options['config_id']}")
        if len(found) > 1:
            raise CommandError("Several organizations have this jeConfigId: give --org")
        config = found[0]
        since = _since(options["since"]) if options["since"] else None
        records = EntityRecord.objects.filter(
            organization=config.organization, data_model_id=config.data_model_id
        )
        if since is not None:
            records = records.filter(updated_at__gte=since)
        with tqdm(total=records.count(), unit=" records", disable=options["verbosity"] < 1) as bar:
            try:
                run = user_event_backfill(
                    organization=config.organization,
                    config_id=config.config_id,
                    since=since,
                    dry_run=options["dry_run"],
                    progress=bar.update,
                )
            except BackfillRefused as refused:
                raise CommandError(str(refused)) from None
        verb = "would generate" if run.dry_run else "generated"
        self.stdout.write(
            f"{config.config_id}: {run.records} records read, {run.matching} pass the filter, "
            f"{run.already_fired} fired before; {verb} {run.generated} events"
            + ("" if run.dry_run else f" (requestId {run.request_id})")
            + "."
        )


def _since(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--since {value!r} is not an ISO 8601 date or time")
        moment = datetime(day.year, day.month, day.day)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
