"""Entries of objectType `user-event`, stored as UserEvents.

Re-sending an event does not duplicate it: `Created` events are unique per (source,
sourceId, eventName), `Changed` events per (source, sourceId, eventName, eventAt), among
ingested events only (`ingested`: the events User Events generate are apart). A
re-sent event is answered `unchanged` with the stored event's id; the first one sent
is kept as it was. Decided here from what the locked read found; no query of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from journeys.changes import CREATED, UNCHANGED
from journeys.events import EventRow
from journeys.models import Trigger, event_id_generate

# Wire field → EventRow attribute; every other field goes into `properties`.
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

# (condition, source, sourceId, eventName, eventAt or None): two events with the same
# key are the same event.
DedupKey = tuple[str, str, str, str, int | None]


@dataclass(frozen=True)
class StoredUserEvent:
    """An ingested event as stored: `created` now, or `unchanged` (already stored)."""

    index: int
    action: str
    event_id: str


def dedup_key(condition: str, source: str, source_id: str, event_name: str, at: int) -> DedupKey:
    return (condition, source, source_id, event_name, at if condition == Trigger.CHANGED else None)


def user_event_lookups(patches: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """The (source, sourceId, eventName) of every entry: what the locked read must find."""
    return {(p["source"], p["sourceId"], p["eventName"]) for p in patches}


def known_user_events(rows: Iterable[tuple[str, str, str, str, str, int]]) -> dict[DedupKey, str]:
    """Stored ingested events — (event_id, condition, source, source_id, event_name,
    event_at_ms) — by dedup key; the first of several keeps the key."""
    known: dict[DedupKey, str] = {}
    for event_id, condition, source, source_id, event_name, at in rows:
        known.setdefault(dedup_key(condition, source, source_id, event_name, at), event_id)
    return known


def _event_row(patch: Mapping[str, Any]) -> EventRow:
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
    return EventRow(
        event_id=event_id_generate(),
        event_at_ms=patch[_EVENT_AT],
        ingested=True,
        properties=properties,
        **columns,
    )


def user_events_plan(
    *, entries: Sequence[tuple[int, Mapping[str, Any]]], known: dict[DedupKey, str]
) -> tuple[list[StoredUserEvent], list[EventRow]]:
    """Each entry (index, validated patch) as a new event, or as the stored one it
    repeats; `known` is updated with the events planned here, so an event sent twice in
    one request is stored once."""
    stored, rows = [], []
    for index, patch in entries:
        row = _event_row(patch)
        key = dedup_key(row.condition, row.source, row.source_id, row.event_name, row.event_at_ms)
        existing = known.get(key)
        if existing is not None:
            stored.append(StoredUserEvent(index, UNCHANGED, existing))
            continue
        known[key] = row.event_id
        rows.append(row)
        stored.append(StoredUserEvent(index, CREATED, row.event_id))
    return stored, rows
