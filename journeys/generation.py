"""Generating user events from stored entries, inside the ingest request (DESIGN §7).

Called explicitly by the ingestion pipeline, in the request's transaction, after the
upsert. Two queries whatever the number of events: one insert that skips conflicts
(the unique constraint that makes a `Created` config fire at most once per record,
even when requests race), and one read of which events were actually inserted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings
from django.db import connection
from psycopg.types.json import Jsonb

from cdp.models import Organization
from journeys.event_time import event_time_resolve
from journeys.filters import filter_compile
from journeys.models import JourneyEventConfig, Trigger, UserEvent, event_id_generate
from journeys.update_values import update_values_compile

if TYPE_CHECKING:
    from ingestion.upsert import StoredEntry

_TRIGGER_ACTION = {Trigger.CREATED: "created", Trigger.CHANGED: "updated"}
# Record fields copied onto the event unless an update value sets them.
_IDENTITY_FIELDS = (("customerId", "customer_id"), ("email", "email"), ("phone", "phone"))


@dataclass(frozen=True)
class EventsOutcome:
    generated: int = 0
    suppressed: int = 0
    dropped: int = 0
    event_ids: dict[int, str] = field(default_factory=dict)  # entry index → eventId
    warnings: list[str] = field(default_factory=list)


# Event attributes an update value may set, with their values when none does.
_ATTRIBUTE_DEFAULTS: dict[str, Any] = {
    "value": None,
    "customer_id": "",
    "email": "",
    "phone": "",
    "note": "",
    "event_labels": [],
    "event_label2s": [],
    "event_label3s": [],
    "properties": {},
}


def _event_row(item: StoredEntry, attributes: dict[str, Any], event_at_ms: int) -> dict[str, Any]:
    """The per-record columns of one event; the config's columns are the same for all."""
    record = item.record
    identity = {attr: str(record[name]) for name, attr in _IDENTITY_FIELDS if name in record}
    return {
        "event_id": event_id_generate(),
        "source": item.entry.model.data_model.source_name,
        "source_id": item.entry.key,
        "event_at_ms": event_at_ms,
        **_ATTRIBUTE_DEFAULTS,
        **identity,
        **attributes,
    }


_INSERT_SQL = """
INSERT INTO {table} (
    organization_id, config_id, condition, channel, event_ctg, event_ctg2, event_ctg3,
    event_name, request_id, created_at, event_id, source, source_id, event_at, value,
    event_labels, event_label2s, event_label3s, customer_id, email, phone, note, properties)
SELECT %s, %s, %s, %s, %s, %s, '', %s, %s, %s,
    t.event_id, t.source, t.source_id, to_timestamp(t.event_at_ms / 1000.0), t.value,
    t.event_labels, t.event_label2s, t.event_label3s, t.customer_id, t.email, t.phone,
    t.note, t.properties
FROM jsonb_to_recordset(%s::jsonb) AS t(
    event_id text, source text, source_id text, event_at_ms bigint, value double precision,
    event_labels jsonb, event_label2s jsonb, event_label3s jsonb, customer_id text,
    email text, phone text, note text, properties jsonb)
ORDER BY t.source_id
ON CONFLICT DO NOTHING
RETURNING event_id
"""


def _events_insert(
    config: JourneyEventConfig, rows: list[dict[str, Any]], request_id: str, now: datetime
) -> set[str]:
    """Insert the events, skipping any a unique constraint refuses (a `Created` config
    that already fired for the record); return the ids actually inserted. One statement
    on PostgreSQL; an insert and a read elsewhere."""
    common = {
        "organization_id": config.organization_id,
        "config_id": config.pk,
        "condition": config.trigger,
        "channel": config.channel,
        "event_ctg": config.category,
        "event_ctg2": config.sub_category,
        "event_name": config.event_name,
        "request_id": request_id,
        "created_at": now,
    }
    if connection.vendor == "postgresql":
        sql = _INSERT_SQL.format(table=connection.ops.quote_name(UserEvent._meta.db_table))
        with connection.cursor() as cursor:
            cursor.execute(sql, [*common.values(), Jsonb(rows, dumps=orjson.dumps)])
            return {event_id for (event_id,) in cursor.fetchall()}
    events = [
        UserEvent(
            **common,
            **{k: v for k, v in row.items() if k != "event_at_ms"},
            event_at=datetime.fromtimestamp(row["event_at_ms"] / 1000, tz=UTC),
        )
        for row in sorted(rows, key=lambda r: r["source_id"])
    ]
    UserEvent.objects.bulk_create(events, ignore_conflicts=True)
    return set(
        UserEvent.objects.filter(
            organization_id=config.organization_id, event_id__in=[e.event_id for e in events]
        ).values_list("event_id", flat=True)
    )


def events_generate(
    *,
    organization: Organization,
    config: JourneyEventConfig | None,
    stored: list[StoredEntry],
    init_data: bool,
    request_id: str,
    now: datetime,
) -> EventsOutcome:
    """One UserEvent per stored entry of the config's model whose action matches the
    trigger and whose record, after the write, passes the filter.

    With `init_data` nothing is written and the events are counted as suppressed; past
    `CDP_MAX_EVENTS_PER_REQUEST` they are counted as dropped, with a warning.
    """
    if config is None or not stored:
        return EventsOutcome()
    schema = next(
        (s.entry.model.schema for s in stored if s.entry.model.pk == config.data_model_id), None
    )
    if schema is None:
        return EventsOutcome()
    passes = filter_compile(config.filters or {}, schema)
    action = _TRIGGER_ACTION[Trigger(config.trigger)]
    matching = [
        s
        for s in stored
        if s.entry.model.pk == config.data_model_id and s.action == action and passes(s.record)
    ]
    if init_data:
        return EventsOutcome(suppressed=len(matching))

    cap = settings.CDP_MAX_EVENTS_PER_REQUEST
    firing, dropped = matching[:cap], matching[cap:]
    warnings = []
    if dropped:
        warnings.append(
            f"{len(dropped)} events dropped: at most {cap} events are generated per request"
        )
    update = update_values_compile(config.update_values or [], schema)
    written_at_ms = int(now.timestamp() * 1000)
    rows = []
    for item in firing:
        attributes, value_warnings = update(item.record)
        event_at_ms, time_warning = event_time_resolve(
            config.event_time, item.record, written_at_ms, record_key=item.entry.key
        )
        warnings.extend(value_warnings)
        if time_warning:
            warnings.append(time_warning)
        rows.append(_event_row(item, attributes, event_at_ms))
    if not rows:
        return EventsOutcome(dropped=len(dropped), warnings=warnings)

    inserted = _events_insert(config, rows, request_id, now)
    event_ids = {
        item.index: row["event_id"]
        for item, row in zip(firing, rows, strict=True)
        if row["event_id"] in inserted
    }
    return EventsOutcome(
        generated=len(event_ids), dropped=len(dropped), event_ids=event_ids, warnings=warnings
    )
