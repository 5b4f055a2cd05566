"""The write plan of one ingest request: everything the request does, decided in Python.

From the validated entries and one locked read (`Snapshot`: the request's stored rows,
the keys its `Created` User Event has already fired for, the stored events its
`user-event` entries may repeat), `plan_build` decides each entry's action, merged data
and diff, the events, the per-entry results, the answer's bytes, the log row and the
callback row. The writer (ingestion/writer.py) only persists the plan, on PostgreSQL or
SQLite alike; neither decides anything, so they cannot disagree.

Pure functions: no database, no cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson

from cdp.errors import ApiError, InvalidEntries, error_body
from cdp.schema import USER_EVENT_OBJECT_TYPE
from ingestion.destinations import DestinationRoute, deliveries_plan
from ingestion.payload import IngestPayload
from ingestion.validation import RejectedEntry, ValidEntry
from journeys.changes import CREATED, UNCHANGED, UPDATED, RecordChange
from journeys.configs import UserEventRules
from journeys.events import EventRow, event_as_json
from journeys.generation import EventsPlan, events_plan
from journeys.user_events import DedupKey, user_events_plan

Pair = tuple[int, str]  # (model id, record key)


@dataclass(frozen=True)
class StoredAnswer:
    """The answer stored under an Idempotency-Key, by the request that first used it."""

    fingerprint: str
    request_id: str
    status: int
    content: bytes


@dataclass(frozen=True)
class Snapshot:
    """What the locked read found, under the request's key locks."""

    records: Mapping[Pair, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    fired: frozenset[str] = frozenset()
    user_events: Mapping[DedupKey, str] = field(default_factory=dict)
    # The request's Idempotency-Key holds this unexpired answer (read under the key's lock).
    stored_answer: StoredAnswer | None = None


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key: stored with its answer, in the plan's transaction."""

    key: str
    fingerprint: str
    expires_at: datetime


@dataclass(slots=True)
class RecordWrite:
    """A record row of the request: inserted (`created`), replaced by `data` (`dirty`),
    or left as it is."""

    model_id: int
    key: str
    cdp_id: str
    data: dict[str, Any]
    created: bool
    dirty: bool


@dataclass(frozen=True)
class HistoryRow:
    """A history entry of a record of a model tagged KEEP_HISTORY."""

    model_id: int
    key: str
    action: str  # created or updated
    changes: dict[str, dict[str, Any]]  # field → {"from", "to"}


@dataclass(frozen=True)
class LogRow:
    """The request's IngestionRequest row, but for organization, request id and time."""

    api_key_id: int | None
    object_type: str
    source: str
    init_data: bool
    config_id: int | None
    status: int
    error_code: str = ""
    message: str = ""
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    events_generated: int = 0
    events_suppressed: int = 0
    events_dropped: int = 0
    results: bytes = b"[]"  # JSON, as answered
    warnings: bytes = b"[]"
    elapsed_ms: float = 0.0  # before the write; the writer adds its own time
    idempotency_key: str = ""


@dataclass(frozen=True)
class CallbackRow:
    body: bytes  # the exact JSON sent (and signed) on every attempt
    entries: int
    api_key_prefix: str


@dataclass(frozen=True)
class IngestPlan:
    organization_id: int
    request_id: str
    source: str
    now: datetime
    records: list[RecordWrite]
    events: list[EventRow]
    log: LogRow
    callback: CallbackRow | None
    status: int
    content: bytes  # the answer's body
    changes: list[RecordChange]
    idempotency: Idempotency | None = None
    history: list[HistoryRow] = field(default_factory=list)
    # The destinations' delivery rows (ingestion/destinations.py `deliveries_plan`).
    deliveries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Caller:
    """Who sends the request: what the plan needs of the organization and the API key
    (None for operator imports)."""

    organization_id: int
    callback_enabled: bool
    api_key_id: int | None
    api_key_prefix: str
    # The organization's enabled destinations (ingestion/destinations.py).
    destinations: tuple[DestinationRoute, ...] = ()


# ---------------------------------------------------------------------------------------
# Records.


def _merge(data: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(data)
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def records_apply(
    valid: Sequence[ValidEntry],
    stored: Mapping[Pair, tuple[str, dict[str, Any]]],
    ignored_fields: frozenset[str],
    new_cdp_id: Callable[[], str],
) -> tuple[list[RecordChange], list[RecordWrite]]:
    """Apply the entries in order (a key repeated in one request behaves as if sent in two
    requests, one after the other): one change per entry, and the rows that change.

    A new key creates a record of its non-null fields. A stored one is merged field by
    field: absent keeps, null clears, a list replaces; on models tagged
    SUPPORT_IGNORED_UPDATE_CFS the `ignored_fields` keep their stored values.
    """
    rows: dict[Pair, RecordWrite] = {}
    changes = []
    for entry in valid:
        model, key, patch = entry.model, entry.key, entry.patch
        pair = (model.pk, key)
        row = rows.get(pair)
        if row is None:
            found = stored.get(pair)
            if found is None:
                # The validated patch is this entry's own: without nulls, it is the record.
                data = patch if None not in patch.values() else _merge({}, patch)
                row = rows[pair] = RecordWrite(model.pk, key, new_cdp_id(), data, True, True)
                changes.append(
                    RecordChange(
                        entry.index, model.pk, model.source, key, CREATED, None, data, row.cdp_id
                    )
                )
                continue
            row = rows[pair] = RecordWrite(model.pk, key, found[0], found[1], False, False)
        if ignored_fields and model.schema.supports_ignored_update_cfs:
            patch = {k: v for k, v in patch.items() if k not in ignored_fields}
        before = row.data
        merged = _merge(before, patch)
        if merged == before:
            action = UNCHANGED
        else:
            action, row.data, row.dirty = UPDATED, merged, True
        changes.append(
            RecordChange(
                entry.index, model.pk, model.source, key, action, before, row.data, row.cdp_id
            )
        )
    return changes, [row for row in rows.values() if row.dirty]


# ---------------------------------------------------------------------------------------
# The answer, the log row and the callback row.


def _with_rejected(
    results: list[dict[str, Any]], rejected: Sequence[RejectedEntry]
) -> list[dict[str, Any]]:
    """The stored entries' results with the rejected ones' (status 101), in entry order."""
    if rejected:
        results += [
            {"index": r.index, "refId": r.key, "status": 101, "errorMessage": r.message}
            for r in rejected
        ]
        results.sort(key=itemgetter("index"))
    return results


def _results(
    changes: Sequence[RecordChange],
    rejected: Sequence[RejectedEntry],
    event_ids: Mapping[int, str],
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [
        {
            "index": c.index,
            "refId": c.key,
            "status": 200,
            "action": c.action,
            "cdpId": c.cdp_id,
        }
        for c in changes
    ]
    for result in results if event_ids else ():
        event_id = event_ids.get(result["index"])
        if event_id is not None:
            result["eventId"] = event_id
    return _with_rejected(results, rejected)


def field_changes(change: RecordChange) -> dict[str, dict[str, Any]]:
    """Each field `change` changed, `{"from": old or None, "to": new or None}`, by its
    flat name: what a dry run shows and what a record's history keeps."""
    return {name: {"from": old, "to": new} for name, (old, new) in change.diff().items()}


def _history(changes: Sequence[RecordChange], valid: Sequence[ValidEntry]) -> list[HistoryRow]:
    """The history entries of the request: one per entry that created or changed a record
    of a model tagged KEEP_HISTORY, in entry order."""
    keeping = {e.model.pk for e in valid if e.model.schema.keeps_history}
    if not keeping:
        return []
    return [
        HistoryRow(c.model_id, c.key, c.action, field_changes(c))
        for c in changes
        if c.action != UNCHANGED and c.model_id in keeping
    ]


def _dry_results(
    changes: Sequence[RecordChange],
    rejected: Sequence[RejectedEntry],
    events: Mapping[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """A dry run's results: a would-be-created record has no cdpId yet, no result has an
    eventId; each stored one says what it would change (`changes`) and the event it would
    generate (`event`, rendered as the Read API would list it)."""
    # The ids this plan drew for records (or events) it would create: none exists yet,
    # whichever entry of the request shows them (a key sent twice: created, then updated).
    planned = {c.cdp_id for c in changes if c.action == CREATED}
    results: list[dict[str, Any]] = []
    for c in changes:
        result = {
            "index": c.index,
            "refId": c.key,
            "status": 200,
            "action": c.action,
            "cdpId": None if c.cdp_id in planned else c.cdp_id,
            "changes": {} if c.action == UNCHANGED else field_changes(c),
        }
        if c.index in events:
            result["event"] = events[c.index]
        results.append(result)
    return _with_rejected(results, rejected)


def _would_be_events(
    rules: UserEventRules | None, rows: Sequence[EventRow], event_ids: Mapping[int, str]
) -> dict[int, dict[str, Any]]:
    """entry index → the event its entry would generate, as the Read API would list it."""
    if rules is None or not event_ids:
        return {}
    by_id = {row.event_id: row for row in rows}
    config = rules.config
    return {
        index: event_as_json(
            by_id[event_id],
            event_at_ms=by_id[event_id].event_at_ms,
            je_config_id=config.config_id,
            je_event_key=config.event_key,
        )
        for index, event_id in event_ids.items()
    }


def _callback(caller: Caller, results: Sequence[Mapping[str, Any]]) -> CallbackRow | None:
    """`{"data": {"<refId>": {"status": 200, "cdpId"} | {"status": 101, "errorMessage"}}}`.

    An entry without a key cannot be named by refId and is left out (the ingestion log
    has it); a key sent twice in one request reports its last result, the record's state.
    """
    if not caller.callback_enabled:
        return None
    data: dict[str, dict[str, Any]] = {}
    for result in results:
        ref_id = result["refId"]
        if ref_id is None:
            continue
        if result["status"] == 200:
            data[str(ref_id)] = {"status": 200, "cdpId": result["cdpId"]}
        else:
            data[str(ref_id)] = {"status": result["status"], "errorMessage": result["errorMessage"]}
    if not data:
        return None
    return CallbackRow(orjson.dumps({"data": data}), len(data), caller.api_key_prefix)


def answer_bytes(head: Mapping[str, Any], results: bytes, warnings: bytes) -> bytes:
    """The answer's JSON: `head`'s keys, then `results` and `warnings`, already
    serialized (the log row stores the same bytes: the results are serialized once)."""
    return orjson.dumps(head)[:-1] + b',"results":' + results + b',"warnings":' + warnings + b"}"


def refusal_log_row(
    *,
    caller: Caller,
    payload: IngestPayload | None,
    config_id: int | None,
    error: ApiError,
    elapsed_ms: float,
    idempotency_key: str = "",
) -> LogRow:
    """The log row of a request refused by checks 5–13: nothing stored."""
    return LogRow(
        api_key_id=caller.api_key_id,
        # An unknown objectType (INVALID_OBJECT_TYPE) can be longer than the column; the
        # message names it whole.
        object_type=payload.object_type[:50] if payload else "",
        source=payload.source if payload else "",
        init_data=payload.init_data if payload else False,
        config_id=config_id,
        status=error.status,
        error_code=error.error_code,
        message=error.message[:300],
        elapsed_ms=elapsed_ms,
        idempotency_key=idempotency_key,
    )


def plan_build(
    *,
    caller: Caller,
    request_id: str,
    payload: IngestPayload,
    valid: Sequence[ValidEntry],
    rejected: Sequence[RejectedEntry],
    rules: UserEventRules | None,
    warnings: Sequence[str],
    snapshot: Snapshot,
    events_cap: int | None,
    now: datetime,
    new_cdp_id: Callable[[], str],
    elapsed_ms: float,
    idempotency: Idempotency | None = None,
    dry_run: bool = False,
) -> IngestPlan:
    """The whole outcome of one ingest request (see the module's docstring). A dry run's
    plan answers the dry run's body (its results say what would change), and is not
    written."""
    written_at_ms = int(now.timestamp() * 1000)
    records: list[RecordWrite] = []
    events: list[EventRow] = []
    history: list[HistoryRow] = []  # `user-event` entries are events, not records
    if payload.object_type == USER_EVENT_OBJECT_TYPE:
        stored, events = user_events_plan(
            entries=[(e.index, e.patch) for e in valid], known=dict(snapshot.user_events)
        )
        # A User Event of the `user-event` model sees each ingested event as a record.
        changes = [
            RecordChange(
                e.index,
                e.model.pk,
                e.model.source,
                e.key,
                s.action,
                None,
                _merge({}, e.patch),
                s.event_id,
            )
            for e, s in zip(valid, stored, strict=True)
        ]
    else:
        changes, records = records_apply(
            valid, snapshot.records, frozenset(payload.ignored_update_cfs), new_cdp_id
        )
        history = _history(changes, valid)

    generated: EventsPlan = events_plan(
        rules=rules,
        changes=changes,
        fired=snapshot.fired,
        init_data=payload.init_data,
        cap=events_cap,
        written_at_ms=written_at_ms,
    )
    events = [*events, *generated.rows]
    if dry_run:
        would_be = _would_be_events(rules, generated.rows, generated.event_ids)
        results = _dry_results(changes, rejected, would_be)
    else:
        results = _results(changes, rejected, generated.event_ids)
    all_warnings = [*warnings, *generated.warnings]
    counts = {CREATED: 0, UPDATED: 0, UNCHANGED: 0}
    for change in changes:
        counts[change.action] += 1
    total, failed = len(payload.entries), len(rejected)

    head: dict[str, Any]
    if failed == 0:
        status, head = 200, {"success": True, "requestId": request_id}
        error_code = message = ""
    else:
        error = InvalidEntries(f"{failed} of {total} entries rejected")
        status = 400 if failed == total else 200
        head, error_code, message = error_body(error, request_id), error.error_code, error.message
    if dry_run:
        head["dryRun"] = True
    head.update(
        objectType=payload.object_type,
        initData=payload.init_data,
        total=total,
        created=counts[CREATED],
        updated=counts[UPDATED],
        unchanged=counts[UNCHANGED],
        failed=failed,
        events={
            "generated": generated.generated,
            "suppressed": generated.suppressed,
            "dropped": generated.dropped,
        },
    )
    results_json, warnings_json = orjson.dumps(results), orjson.dumps(all_warnings)
    log = LogRow(
        api_key_id=caller.api_key_id,
        object_type=payload.object_type,
        source=payload.source,
        init_data=payload.init_data,
        config_id=rules.config.pk if rules is not None else None,
        status=status,
        error_code=error_code,
        message=message,
        total=total,
        created=counts[CREATED],
        updated=counts[UPDATED],
        unchanged=counts[UNCHANGED],
        failed=failed,
        events_generated=generated.generated,
        events_suppressed=generated.suppressed,
        events_dropped=generated.dropped,
        results=results_json,
        warnings=warnings_json,
        elapsed_ms=elapsed_ms,
        idempotency_key=idempotency.key if idempotency is not None else "",
    )
    return IngestPlan(
        organization_id=caller.organization_id,
        request_id=request_id,
        source=payload.source,
        now=now,
        records=records,
        events=events,
        log=log,
        callback=_callback(caller, results),
        status=status,
        content=answer_bytes(head, results_json, warnings_json),
        changes=changes,
        idempotency=idempotency,
        history=history,
        # A historical load (initData) reaches no destination, as it fires no User Event.
        deliveries=(
            deliveries_plan(caller.destinations, events)
            if not (dry_run or payload.init_data)
            else []
        ),
    )
