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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime

import orjson
from django.db import connection, transaction
from django.utils import timezone

from cdp.models import EntityRecord, Organization
from cdp.selectors import LoadedModel, organization_models
from ingestion.destinations import DestinationRoute, deliveries_plan, destination_routes
from ingestion.writer import deliveries_create, events_insert_new
from journeys.changes import CREATED, RecordChange
from journeys.configs import UserEventRules, config_resolve
from journeys.events import EventRow
from journeys.generation import events_plan
from journeys.models import JourneyEventConfig, Trigger, UserEvent

BATCH_RECORDS = 10_000
SAMPLE_SIZE = 5


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
    # A dry run's first events that would be written, for the Console to show.
    sample: list[EventRow] = field(default_factory=list)


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
    loaded = models.by_pk()
    rules = config_resolve(
        organization=organization, config_id=config_id, event_key=None, models=loaded
    )
    assert rules is not None
    model = loaded[config.data_model_id]
    routes = destination_routes(organization.pk)
    run = BackfillRun(request_id=uuid.uuid4().hex, dry_run=dry_run)
    # Outside a transaction a thread writes each batch while the next one is read and
    # judged: the database's work and this process's overlap (about twice the rate).
    # Inside a caller's transaction (tests) every step runs here, to see its rows.
    writer = ThreadPoolExecutor(1) if not (dry_run or connection.in_atomic_block) else None
    in_flight: tuple[Future[int], int] | None = None  # one batch at most: (new, planned)

    def count(new: int, planned: int) -> None:
        run.generated += new
        run.already_fired += planned - new

    last_key = ""
    try:
        while True:
            batch = _records_after(organization.pk, model.pk, last_key, since, batch_size)
            if not batch:
                break
            last_key = batch[-1][0]
            now = timezone.now()
            rows = _rows(rules, model, batch, now)
            run.records += len(batch)
            run.matching += len(rows)
            if dry_run:
                fired = _fired_keys(organization, config, [r.source_id for r in rows])
                if len(run.sample) < SAMPLE_SIZE:
                    fresh = [r for r in rows if r.source_id not in fired]
                    run.sample += fresh[: SAMPLE_SIZE - len(run.sample)]
                count(len(rows) - len(fired), len(rows))
            elif writer is None:
                count(_write(organization, run.request_id, now, rows, routes), len(rows))
            else:
                if in_flight is not None:
                    count(in_flight[0].result(), in_flight[1])
                future = writer.submit(_write, organization, run.request_id, now, rows, routes)
                in_flight = (future, len(rows))
            if progress is not None:
                progress(len(batch))
        if in_flight is not None:
            count(in_flight[0].result(), in_flight[1])
    finally:
        if writer is not None:
            writer.submit(_close_connection).result()
            writer.shutdown()
    return run


def _rows(
    rules: UserEventRules, model: LoadedModel, batch: list[tuple[str, str, str]], now: datetime
) -> list[EventRow]:
    """The events of every record of the batch that passes, fired before or not: the
    insert skips the ones the User Event fired for (created-once), and counts the rest."""
    changes = [
        RecordChange(i, model.pk, model.source, key, CREATED, None, orjson.loads(data), cdp_id)
        for i, (key, cdp_id, data) in enumerate(batch)
    ]
    planned = events_plan(
        rules=rules,
        changes=changes,
        fired=(),
        init_data=False,
        cap=None,
        written_at_ms=int(now.timestamp() * 1000),
    )
    return [replace(row, properties={**row.properties, "backfill": True}) for row in planned.rows]


def _close_connection() -> None:
    """In the writer thread: its own database connection."""
    connection.close()


def _records_after(
    organization_id: int, model_id: int, after: str, since: datetime | None, limit: int
) -> list[tuple[str, str, str]]:
    """The next `limit` records of the model in key order, their data as JSON text (read
    by the tenant-leading key index; decoded with orjson, the ORM's decoding being most of
    a batch's reading time)."""
    table = connection.ops.quote_name(EntityRecord._meta.db_table)
    extra, params = ("AND updated_at >= %s", [since]) if since is not None else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT key, cdp_id, CAST(data AS text) FROM {table}"
            f" WHERE organization_id = %s AND data_model_id = %s AND key > %s {extra}"
            " ORDER BY key LIMIT %s",
            [organization_id, model_id, after, *params, limit],
        )
        return cursor.fetchall()


def _fired_keys(
    organization: Organization, config: JourneyEventConfig, keys: list[str]
) -> set[str]:
    return set(
        UserEvent.objects.filter(
            organization=organization, config=config, condition=Trigger.CREATED, source_id__in=keys
        ).values_list("source_id", flat=True)
    )


def _write(
    organization: Organization,
    request_id: str,
    now: datetime,
    rows: list[EventRow],
    routes: tuple[DestinationRoute, ...],
) -> int:
    """One batch's events and deliveries, in one transaction; how many events were new."""
    with transaction.atomic():
        # A concurrent request may have fired one meanwhile: created-once skips it.
        new = events_insert_new(organization.pk, request_id, now, rows)
        stored = [row for row in rows if row.event_id in new]
        deliveries_create(organization.pk, request_id, now, deliveries_plan(routes, stored))
    return len(new)
