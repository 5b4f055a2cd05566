"""The Event Time of a User Event: when the generated event happened.

`event_time` is "ingested" (the time the record was written) or the name of a timestamp
field of the model (createdAt, updatedAt, customFieldTimestampNN, ...). When that field is
empty on a record, the event takes the write time and the caller gets a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdp.schema import FieldType, ModelSchema
from journeys.coercion import CoercionError, to_timestamp, value_shown

EVENT_TIME_INGESTED = "ingested"


def event_time_validate(event_time: Any, schema: ModelSchema, *, path: str) -> list[str]:
    """Problems of an event-time setting against `schema`, each starting with `path`.

    Empty when `event_time` is "ingested" or names a timestamp field of the model.
    """
    choices = ", ".join([EVENT_TIME_INGESTED, *schema.timestamp_fields()])
    if not isinstance(event_time, str) or not event_time:
        return [f"{path}: required, one of {choices}"]
    if event_time == EVENT_TIME_INGESTED:
        return []
    field = schema.field(event_time)
    if field is None:
        return [f"{path}: unknown field {event_time!r} (use {choices})"]
    if field.type != FieldType.TIMESTAMP:
        return [
            f"{path}: {event_time} is a field of type {field.type}, not timestamp (use {choices})"
        ]
    return []


def event_time_resolve(
    event_time: str,
    record: Mapping[str, Any],
    written_at_ms: int,
    *,
    record_key: str | None = None,
) -> tuple[int, str | None]:
    """The event time in epoch ms for `record`, and a warning or None.

    `event_time` must have passed `event_time_validate`. `written_at_ms` is the write
    time of the record; it is the answer for "ingested", and the fallback, with a warning,
    when the field is empty (missing, None or "") or holds something that is not a
    timestamp. `record_key`, when given, names the record in the warning.
    """
    if event_time == EVENT_TIME_INGESTED:
        return written_at_ms, None
    value = record.get(event_time)
    # Records arrive coerced, so a timestamp field holds an int: the common case is free.
    if type(value) is int:
        return value, None
    where = "" if record_key is None else f" on {record_key}"
    if value is None or value == "":
        return written_at_ms, f"eventTime field {event_time} is empty{where}; used the write time"
    try:
        return to_timestamp(value), None
    except CoercionError:
        return written_at_ms, (
            f"eventTime field {event_time}{where} is {value_shown(value)}, not a timestamp; "
            f"used the write time"
        )
