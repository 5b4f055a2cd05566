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

from django.conf import settings

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


def _ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _event_build(
    config: JourneyEventConfig,
    item: StoredEntry,
    attributes: dict[str, Any],
    event_at_ms: int,
    request_id: str,
    now: datetime,
) -> UserEvent:
    record = item.record
    identity = {attr: str(record[name]) for name, attr in _IDENTITY_FIELDS if name in record}
    return UserEvent(
        organization_id=config.organization_id,
        config=config,
        event_id=event_id_generate(),
        source=item.entry.model.data_model.source_name,
        source_id=item.entry.key,
        condition=config.trigger,
        channel=config.channel,
        event_ctg=config.category,
        event_ctg2=config.sub_category,
        event_name=config.event_name,
        event_at=_ms_to_datetime(event_at_ms),
        request_id=request_id,
        created_at=now,
        **{**identity, **attributes},
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
    events = []
    for item in firing:
        attributes, value_warnings = update(item.record)
        event_at_ms, time_warning = event_time_resolve(
            config.event_time, item.record, written_at_ms, record_key=item.entry.key
        )
        warnings.extend(value_warnings)
        if time_warning:
            warnings.append(time_warning)
        events.append(_event_build(config, item, attributes, event_at_ms, request_id, now))
    if not events:
        return EventsOutcome(dropped=len(dropped), warnings=warnings)

    UserEvent.objects.bulk_create(events, ignore_conflicts=True)
    inserted = set(
        UserEvent.objects.filter(
            organization=organization, event_id__in=[e.event_id for e in events]
        ).values_list("event_id", flat=True)
    )
    event_ids = {
        item.entry.index: event.event_id
        for item, event in zip(firing, events, strict=True)
        if event.event_id in inserted
    }
    return EventsOutcome(
        generated=len(event_ids), dropped=len(dropped), event_ids=event_ids, warnings=warnings
    )
