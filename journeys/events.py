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
