"""Entries of objectType `user-event`, stored as UserEvents (DESIGN §7).

Re-sending an event does not duplicate it: `Created` events are unique per (source,
sourceId, eventName), `Changed` events per (source, sourceId, eventName, eventAt). A
re-sent event is answered `unchanged` with the stored event's id; the first one sent
is kept as it was.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Q

from cdp.models import Organization
from journeys.models import Trigger, UserEvent, event_id_generate

if TYPE_CHECKING:
    from ingestion.upsert import StoredEntry
    from ingestion.validation import ValidEntry

# Wire field → UserEvent attribute; every other field goes into `properties`.
_COLUMNS = {
    "source": "source",
    "sourceId": "source_id",
    "condition": "condition",
    "channel": "channel",
    "eventCtg": "event_ctg",
    "eventCtg2": "event_ctg2",
    "eventCtg3": "event_ctg3",
    "eventName": "event_name",
    "value": "value",
    "eventLabels": "event_labels",
    "eventLabel2s": "event_label2s",
    "eventLabel3s": "event_label3s",
    "customerId": "customer_id",
    "email": "email",
    "phone": "phone",
    "note": "note",
}
_EVENT_AT = "eventAt"


def _dedup_key(event: UserEvent) -> tuple:
    at = event.event_at if event.condition == Trigger.CHANGED else None
    return (event.condition, event.source, event.source_id, event.event_name, at)


def _event_from_entry(
    organization: Organization, entry: ValidEntry, request_id: str, now: datetime
) -> UserEvent:
    patch = entry.patch
    columns: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, value in patch.items():
        if value is None or name == _EVENT_AT:
            continue
        if name in _COLUMNS:
            columns[_COLUMNS[name]] = value
        else:
            properties[name] = value
    columns["condition"] = columns.get("condition") or Trigger.CREATED
    return UserEvent(
        organization=organization,
        event_id=event_id_generate(),
        event_at=datetime.fromtimestamp(patch[_EVENT_AT] / 1000, tz=UTC),
        properties=properties,
        request_id=request_id,
        created_at=now,
        **columns,
    )


def _existing(organization: Organization, events: list[UserEvent]) -> dict[tuple, str]:
    lookup = Q()
    for event in events:
        lookup |= Q(source=event.source, source_id=event.source_id, event_name=event.event_name)
    rows = UserEvent.objects.filter(lookup, organization=organization, config__isnull=True)
    found: dict[tuple, str] = {}
    for row in rows.only("event_id", "condition", "source", "source_id", "event_name", "event_at"):
        found.setdefault(_dedup_key(row), row.event_id)
    return found


def user_events_store(
    *,
    organization: Organization,
    entries: list[ValidEntry],
    request_id: str,
    now: datetime,
) -> list[StoredEntry]:
    """Store each entry as a UserEvent unless the same event exists; three queries at most."""
    from ingestion.upsert import CREATED, UNCHANGED, StoredEntry

    if not entries:
        return []
    events = [_event_from_entry(organization, e, request_id, now) for e in entries]
    known = _existing(organization, events)
    fresh: list[UserEvent] = []
    chosen: list[tuple[UserEvent, bool]] = []
    for event in events:
        key = _dedup_key(event)
        if key in known:
            chosen.append((event, False))
            continue
        known[key] = event.event_id
        fresh.append(event)
        chosen.append((event, True))
    if fresh:
        # In one global order, so two requests storing the same events cannot deadlock.
        fresh.sort(key=lambda e: (e.source, e.source_id, e.event_name, e.condition))
        UserEvent.objects.bulk_create(fresh, ignore_conflicts=True)
        # A concurrent request may have stored the same event between our read and write.
        inserted = set(
            UserEvent.objects.filter(
                organization=organization, event_id__in=[e.event_id for e in fresh]
            ).values_list("event_id", flat=True)
        )
        lost = [e for e in fresh if e.event_id not in inserted]
        if lost:
            known.update(_existing(organization, lost))
    return [
        StoredEntry(
            entry,
            CREATED if is_new and event.event_id == known[_dedup_key(event)] else UNCHANGED,
            known[_dedup_key(event)],
            entry.patch,
        )
        for entry, (event, is_new) in zip(entries, chosen, strict=True)
    ]
