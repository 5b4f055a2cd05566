"""Backfill of a `Created` User Event: the event it would have fired for every record of
its model that already exists and passes its filter, as if each were created now.

The records are read in key order, a batch at a time (the tenant-leading key index), and
judged by the same compiled rules as the ingest path (journeys/generation.py); a record
the User Event already fired for is skipped (the event would break created-once), and
the insert skips one a concurrent request fired meanwhile. Each batch is a transaction
of its own holding its events and the destinations' deliveries (ingestion/destinations.py)
so a run stopped half-way leaves whole batches, and running it again adds only what is
missing. One `requestId` for the whole run; every event carries
`properties.backfill = true`. A dry run reads and judges, and writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from cdp.models import EntityRecord, Organization
from cdp.selectors import organization_models
from ingestion.destinations import DestinationRoute, deliveries_plan, destination_routes
from ingestion.models import DestinationDelivery
from ingestion.writer import user_event_from_row
from journeys.changes import CREATED, RecordChange
from journeys.configs import config_resolve
from journeys.events import EventRow
from journeys.generation import events_plan
from journeys.models import JourneyEventConfig, Trigger, UserEvent

BATCH_RECORDS = 5000


class BackfillRefused(ValueError):
    """The User Event cannot be backfilled; the message says why."""


@dataclass
class BackfillRun:
    request_id: str
    dry_run: bool
    records: int = 0  # read
    matching: int = 0  # passing the filter
    already_fired: int = 0  # of those, skipped: the User Event fired for them before
    generated: int = 0  # events written (or, in a dry run, that would be)


def user_event_backfill(
    *,
    organization: Organization,
    config_id: str,
    since: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_RECORDS,
    progress: Callable[[int], None] | None = None,
) -> BackfillRun:
    """Backfill the `Created` User Event `config_id` of `organization` over its model's
    records (updated since `since`, when given). Raises BackfillRefused."""
    config = (
        JourneyEventConfig.objects.filter(organization=organization, config_id=config_id)
        .select_related("data_model")
        .first()
    )
    if config is None:
        raise BackfillRefused(f"Unknown jeConfigId: {config_id}")
    if config.trigger != Trigger.CREATED:
        raise BackfillRefused(
            f"User Event {config_id} is triggered on Changed: only a Created User Event can "
            "be backfilled (a record's past changes are not kept)"
        )
    if not config.enabled:
        raise BackfillRefused(f"User Event {config_id} is disabled: enable it first")
    models = organization_models(organization=organization)
    loaded = {m.pk: m for m in (*models.system.values(), *models.custom.values())}
    rules = config_resolve(
        organization=organization, config_id=config_id, event_key=None, models=loaded
    )
    assert rules is not None
    model = loaded[config.data_model_id]
    routes = destination_routes(organization.pk)
    run = BackfillRun(request_id=uuid.uuid4().hex, dry_run=dry_run)
    records = EntityRecord.objects.filter(organization=organization, data_model_id=model.pk)
    if since is not None:
        records = records.filter(updated_at__gte=since)
    last_key = None
    while True:
        page = records.filter(key__gt=last_key) if last_key is not None else records
        batch = list(page.order_by("key").values_list("key", "cdp_id", "data")[:batch_size])
        if not batch:
            return run
        last_key = batch[-1][0]
        changes = [
            RecordChange(i, model.pk, model.source, key, CREATED, None, data, cdp_id)
            for i, (key, cdp_id, data) in enumerate(batch)
        ]
        fired = set(
            UserEvent.objects.filter(
                organization=organization,
                config=config,
                condition=Trigger.CREATED,
                source_id__in=[key for key, _, _ in batch],
            ).values_list("source_id", flat=True)
        )
        now = timezone.now()
        everything = events_plan(
            rules=rules,
            changes=changes,
            fired=(),
            init_data=False,
            cap=None,
            written_at_ms=int(now.timestamp() * 1000),
        )
        rows = [
            replace(row, properties={**row.properties, "backfill": True})
            for row in everything.rows
            if row.source_id not in fired
        ]
        run.records += len(batch)
        run.matching += everything.generated
        run.already_fired += everything.generated - len(rows)
        if not dry_run and rows:
            run.generated += _write(organization, run.request_id, now, rows, routes)
        elif dry_run:
            run.generated += len(rows)
        if progress is not None:
            progress(len(batch))


def _write(
    organization: Organization,
    request_id: str,
    now: datetime,
    rows: list[EventRow],
    routes: tuple[DestinationRoute, ...],
) -> int:
    """One batch's events and deliveries, in one transaction; how many events were new."""
    with transaction.atomic():
        UserEvent.objects.bulk_create(
            [user_event_from_row(organization.pk, request_id, now, row) for row in rows],
            ignore_conflicts=True,  # a concurrent request fired one meanwhile: created-once
            batch_size=1000,
        )
        DestinationDelivery.objects.bulk_create(
            DestinationDelivery(
                organization=organization,
                destination_id=d["destination_id"],
                webhook_id=d["webhook_id"],
                request_id=request_id,
                event_ids=d["event_ids"],
                next_attempt_at=now,
                created_at=now,
            )
            for d in deliveries_plan(routes, rows)
        )
        return UserEvent.objects.filter(
            organization=organization,
            request_id=request_id,
            event_id__in=[row.event_id for row in rows],
        ).count()
