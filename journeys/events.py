"""The user events a request's plan writes: one row per event, as the rule engine (or an
ingested `user-event` entry) decided it. The writer adds what every row of the request
shares: organization, request id and creation time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class EventRow:
    event_id: str
    source: str
    source_id: str
    condition: str
    event_name: str
    event_at_ms: int
    config_id: int | None = None
    # True for an ingested `user-event` entry, False for an event a User Event generated
    # (UserEvent.ingested: what the ingested events' de-duplication keys on).
    ingested: bool = False
    channel: str = ""
    event_ctg: str = ""
    event_ctg2: str = ""
    event_ctg3: str = ""
    value: float | None = None
    event_labels: list[str] = field(default_factory=list)
    event_label2s: list[str] = field(default_factory=list)
    event_label3s: list[str] = field(default_factory=list)
    customer_id: str = ""
    email: str = ""
    phone: str = ""
    note: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


# The columns of EventRow, in order: the writers' statements list them once, from here.
EVENT_COLUMNS: tuple[str, ...] = tuple(EventRow.__dataclass_fields__)


def event_as_json(
    event: Any,
    *,
    event_at_ms: int,
    je_config_id: str | None,
    je_event_key: str | None,
) -> dict[str, Any]:
    """An event as the Read API lists it, but for `eventId` and `requestId`: from a stored
    UserEvent or a planned EventRow (they share the attribute names), with what they hold
    differently given apart. A dry run shows a planned event through this too."""
    return {
        "jeConfigId": je_config_id,
        "jeEventKey": je_event_key,
        "source": event.source,
        "sourceId": event.source_id,
        "condition": event.condition,
        "channel": event.channel,
        "eventCtg": event.event_ctg,
        "eventCtg2": event.event_ctg2,
        "eventCtg3": event.event_ctg3,
        "eventName": event.event_name,
        "eventAt": event_at_ms,
        # Stored as double precision: a planned integer value reads back as a float.
        "value": float(event.value) if event.value is not None else None,
        "eventLabels": event.event_labels,
        "eventLabel2s": event.event_label2s,
        "eventLabel3s": event.event_label3s,
        "customerId": event.customer_id,
        "email": event.email,
        "phone": event.phone,
        "note": event.note,
        "properties": event.properties,
    }
