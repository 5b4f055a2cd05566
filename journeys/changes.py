"""What ingestion hands to the rule engine: one record change per stored entry.

A neutral type owned here, so that `journeys` depends on nothing of `ingestion`:
ingestion decides each entry's action, merged data and diff (its write plan) and passes
the changes in; the rule engine answers with the events they produce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@dataclass(slots=True)
class RecordChange:
    """What one stored entry did to one record.

    `before` is the record as it was stored before this entry (None when the entry
    created it), `after` the record right after it (for a key sent twice in one request,
    each entry sees the state the previous one left). `source` is the model's name in
    events and logs: its momCode, or its object type. `cdp_id` is the record's (for an
    ingested `user-event` entry, the event's id).
    """

    index: int
    model_id: int
    source: str
    key: str
    action: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any]
    cdp_id: str

    def diff(self) -> dict[str, tuple[Any, Any]]:
        """The fields this entry changed: name → (old value or None, new value or None)."""
        before = self.before or {}
        after = self.after
        changed = {
            name: (before.get(name), value)
            for name, value in after.items()
            if before.get(name) != value
        }
        changed.update({name: (value, None) for name, value in before.items() if name not in after})
        return changed
