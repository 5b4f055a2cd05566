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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from cdp.errors import ApiError, InvalidEntries, error_body
from cdp.schema import USER_EVENT_OBJECT_TYPE
from ingestion.payload import IngestPayload
from ingestion.validation import RejectedEntry, ValidEntry
from journeys.changes import CREATED, UNCHANGED, UPDATED, RecordChange
from journeys.configs import UserEventRules
from journeys.events import EventRow
from journeys.generation import EventsPlan, events_plan
from journeys.user_events import DedupKey, user_events_plan

Pair = tuple[int, str]  # (model id, record key)


@dataclass(frozen=True)
class Snapshot:
    """What the locked read found, under the request's key locks."""

    records: Mapping[Pair, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    fired: frozenset[str] = frozenset()
    user_events: Mapping[DedupKey, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """A record row to insert (`created`) or to replace with `data`."""

    model_id: int
    key: str
    cdp_id: str
    data: dict[str, Any]
    created: bool


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


@dataclass(frozen=True)
class Caller:
    """Who sends the request: what the plan needs of the organization and the API key
    (None for operator imports)."""

    organization_id: int
    callback_enabled: bool
    api_key_id: int | None
    api_key_prefix: str


# ---------------------------------------------------------------------------------------
# Records.


@dataclass(slots=True)
class _Row:
    cdp_id: str
    data: dict[str, Any]
    existed: bool
    dirty: bool


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
    new_cdp_id: Any,
) -> tuple[list[RecordChange], list[RecordWrite], dict[int, str]]:
    """Apply the entries in order (a key repeated in one request behaves as if sent in two
    requests, one after the other): one change per entry, one write per row that changes,
    and each entry's record cdpId by entry index.

    A new key creates a record of its non-null fields. A stored one is merged field by
    field: absent keeps, null clears, a list replaces; on models tagged
    SUPPORT_IGNORED_UPDATE_CFS the `ignored_fields` keep their stored values.
    """
    rows: dict[Pair, _Row] = {}
    changes = []
    cdp_ids = {}
    for entry in valid:
        model = entry.model
        pair = (model.pk, entry.key)
        row = rows.get(pair)
        if row is None and pair in stored:
            cdp_id, data = stored[pair]
            row = rows[pair] = _Row(cdp_id, data, existed=True, dirty=False)
        if row is None:
            data = {k: v for k, v in entry.patch.items() if v is not None}
            row = rows[pair] = _Row(new_cdp_id(), data, existed=False, dirty=True)
            before, action = None, CREATED
        else:
            patch = entry.patch
            if ignored_fields and model.schema.supports_ignored_update_cfs:
                patch = {k: v for k, v in patch.items() if k not in ignored_fields}
            before = row.data
            merged = _merge(before, patch)
            action = UNCHANGED if merged == before else UPDATED
            if action == UPDATED:
                row.data, row.dirty = merged, True
        cdp_ids[entry.index] = row.cdp_id
        changes.append(
            RecordChange(
                entry.index,
                model.pk,
                model.data_model.source_name,
                entry.key,
                action,
                before,
                row.data,
            )
        )
    writes = [
        RecordWrite(model_id, key, row.cdp_id, row.data, not row.existed)
        for (model_id, key), row in sorted(rows.items())
        if row.dirty
    ]
    return changes, writes, cdp_ids


# ---------------------------------------------------------------------------------------
# The answer, the log row and the callback row.


def _results(
    changes: Sequence[RecordChange],
    stored_ids: Mapping[int, str],
    rejected: Sequence[RejectedEntry],
    event_ids: Mapping[int, str],
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [
        {"index": r.index, "refId": r.key, "status": 101, "errorMessage": r.message}
        for r in rejected
    ]
    for change in changes:
        result = {
            "index": change.index,
            "refId": change.key,
            "status": 200,
            "action": change.action,
            "cdpId": stored_ids[change.index],
        }
        if change.index in event_ids:
            result["eventId"] = event_ids[change.index]
        results.append(result)
    results.sort(key=lambda r: r["index"])
    return results


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
    new_cdp_id: Any,
    elapsed_ms: float,
) -> IngestPlan:
    """The whole outcome of one ingest request (see the module's docstring)."""
    written_at_ms = int(now.timestamp() * 1000)
    records: list[RecordWrite] = []
    events: list[EventRow] = []
    if payload.object_type == USER_EVENT_OBJECT_TYPE:
        stored, events = user_events_plan(
            entries=[(e.index, e.patch) for e in valid], known=dict(snapshot.user_events)
        )
        # A User Event of the `user-event` model sees each ingested event as a record.
        changes = [
            RecordChange(
                e.index,
                e.model.pk,
                e.model.data_model.source_name,
                e.key,
                s.action,
                None,
                {k: v for k, v in e.patch.items() if v is not None},
            )
            for e, s in zip(valid, stored, strict=True)
        ]
        stored_ids = {s.index: s.event_id for s in stored}
    else:
        changes, records, stored_ids = records_apply(
            valid, snapshot.records, frozenset(payload.ignored_update_cfs), new_cdp_id
        )

    generated: EventsPlan = events_plan(
        rules=rules,
        changes=changes,
        fired=snapshot.fired,
        init_data=payload.init_data,
        cap=events_cap,
        written_at_ms=written_at_ms,
    )
    events = [*events, *generated.rows]
    results = _results(changes, stored_ids, rejected, generated.event_ids)
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
    )
