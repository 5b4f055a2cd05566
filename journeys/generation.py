"""Which user events a request's record changes produce: decided in Python,
from the changes and what the locked read found, with no query of its own; the ingest
writer stores the rows in the request's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from journeys.changes import RecordChange
from journeys.configs import UserEventRules
from journeys.event_time import event_time_resolve
from journeys.events import EventRow
from journeys.filters import with_previous
from journeys.models import event_id_generate

# Record fields copied onto the event unless an update value sets them.
_IDENTITY_FIELDS = (("customerId", "customer_id"), ("email", "email"), ("phone", "phone"))


@dataclass(frozen=True)
class EventsPlan:
    rows: list[EventRow] = field(default_factory=list)
    generated: int = 0
    suppressed: int = 0
    dropped: int = 0
    event_ids: dict[int, str] = field(default_factory=dict)  # entry index → eventId
    warnings: list[str] = field(default_factory=list)


def _event_row(
    rules: UserEventRules, change: RecordChange, attributes: dict[str, Any], event_at_ms: int
) -> EventRow:
    config = rules.config
    record = change.after
    row = EventRow(
        event_id=event_id_generate(),
        source=change.source,
        source_id=change.key,
        condition=config.trigger,
        event_name=config.event_name,
        event_at_ms=event_at_ms,
        config_id=config.pk,
        ingested=False,
        channel=config.channel,
        event_ctg=config.category,
        event_ctg2=config.sub_category,
    )
    for name, attribute in _IDENTITY_FIELDS:
        if name in record:
            setattr(row, attribute, str(record[name]))
    for attribute, value in attributes.items():
        setattr(row, attribute, value)
    return row


def events_plan(
    *,
    rules: UserEventRules | None,
    changes: Sequence[RecordChange],
    fired: Collection[str],
    init_data: bool,
    cap: int | None,
    written_at_ms: int,
) -> EventsPlan:
    """One event per change of the User Event's model whose action matches the trigger
    and whose record, after the write, passes the filter.

    `fired` holds the keys a `Created` User Event has already fired for (it fires once per
    record, ever); they get no new event. With `init_data` nothing is planned and the
    events are counted as suppressed; past `cap` (None: no cap) they are counted as
    dropped, with a warning.
    """
    if rules is None or not changes:
        return EventsPlan()
    model_id, action, passes = rules.model.pk, rules.action, rules.passes
    # What the rules read of each change: the record after the write, and (change-aware
    # rules) its previous values as `previous.<field>`.
    reads_previous = rules.reads_previous
    matching = []
    for c in changes:
        if c.model_id == model_id and c.action == action:
            record = with_previous(c.after, c.before) if reads_previous else c.after
            if passes(record):
                matching.append((c, record))
    if init_data:
        return EventsPlan(suppressed=len(matching))

    warnings = []
    firing, dropped = (matching, []) if cap is None else (matching[:cap], matching[cap:])
    if dropped:
        warnings.append(
            f"{len(dropped)} events dropped: at most {cap} events are generated per request"
        )
    if rules.fires_once and fired:
        firing = [(c, r) for c, r in firing if c.key not in fired]
    event_time = rules.config.event_time
    rows = []
    event_ids = {}
    for change, record in firing:
        attributes, value_warnings = rules.update(record)
        event_at_ms, time_warning = event_time_resolve(
            event_time, change.after, written_at_ms, record_key=change.key
        )
        warnings.extend(value_warnings)
        if time_warning:
            warnings.append(time_warning)
        row = _event_row(rules, change, attributes, event_at_ms)
        rows.append(row)
        event_ids[change.index] = row.event_id
    return EventsPlan(
        rows=rows,
        generated=len(rows),
        dropped=len(dropped),
        event_ids=event_ids,
        warnings=warnings,
    )
