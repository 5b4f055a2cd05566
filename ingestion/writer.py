"""The one writer of ingest plans: the locked read a plan is built from, and the plan's
persistence, for PostgreSQL and SQLite (DESIGN: decide once, persist per database).

Neither implementation decides anything (ingestion/plan.py does); both run the same
tests. Both must run inside the request's `transaction.atomic()` block.

PostgreSQL, per request: `BEGIN` (psycopg's, when the block opens), one round trip that
takes the key locks and reads (`read`), one that writes every row of the plan in one
statement and commits (`write`): three in all. The locks are transaction-level advisory
locks, one per (model, key) of the request, new or existing, taken in one global order,
so requests that share keys run one after the other and cannot deadlock; every writer of
records takes them (imports take one exclusive lock per model instead, which waits for
the requests holding that model's shared lock). The read that follows takes its snapshot
after the locks, so it sees what the request before committed.

SQLite takes its write lock when the transaction begins (`BEGIN IMMEDIATE`, settings) and
serializes writers, so it needs no key locks; the same plan is written with the ORM.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from django.db import connection
from django.db.models import Q

from cdp.models import EntityRecord
from ingestion.models import CallbackDelivery, CallbackStatus, IngestionRequest
from ingestion.plan import IngestPlan, LogRow, Pair, Snapshot
from journeys.events import EVENT_COLUMNS, EventRow
from journeys.models import Trigger, UserEvent
from journeys.user_events import known_user_events


@dataclass(frozen=True)
class ReadRequest:
    """What a plan needs read, under which locks."""

    organization_id: int
    pairs: Sequence[Pair] = ()  # the (model, key) of every valid entry, sorted
    read_records: bool = True  # False for `user-event` entries, which are no records
    # The models an import writes: one exclusive lock each, instead of key locks.
    exclusive_models: Sequence[int] = ()
    fired_config_id: int | None = None  # a Created User Event: which keys has it fired for?
    fired_keys: Sequence[str] = ()
    user_event_lookups: Sequence[tuple[str, str, str]] = ()  # (source, sourceId, eventName)


def _lock_id(*parts: object) -> int:
    """A stable signed 64-bit advisory lock id (a collision only serializes two requests)."""
    name = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)


def _model_lock(organization_id: int, model_id: int) -> int:
    return _lock_id("cdp.model", organization_id, model_id)


def _key_locks(request: ReadRequest) -> tuple[list[int], list[int]]:
    """(shared model locks, exclusive key locks), each sorted: the global order."""
    org = request.organization_id
    models = sorted({_model_lock(org, model_id) for model_id, _ in request.pairs})
    keys = sorted({_lock_id("cdp.record", org, model_id, key) for model_id, key in request.pairs})
    return models, keys


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# ---------------------------------------------------------------------------------------
# PostgreSQL.


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# Every statement takes few parameters, JSON or array text made in one call: Django's
# cursor binds client-side, and psycopg quotes each parameter, each time it occurs.
_LOG_TYPES = {
    "api_key_id": "bigint",
    "config_id": "bigint",
    "init_data": "boolean",
    "results": "jsonb",
    "warnings": "jsonb",
    "elapsed_ms": "double precision",
    **{name: "text" for name in ("object_type", "source", "error_code", "message")},
    **{
        name: "integer"
        for name in (
            "status",
            "total",
            "created",
            "updated",
            "unchanged",
            "failed",
            "events_generated",
            "events_suppressed",
            "events_dropped",
        )
    },
}
_EVENT_TYPES = {
    "config_id": "bigint",
    "event_at_ms": "bigint",
    "value": "double precision",
    "event_labels": "jsonb",
    "event_label2s": "jsonb",
    "event_label3s": "jsonb",
    "properties": "jsonb",
}


@cache
def _pg_sql() -> dict[str, str]:
    """The statements, built once (table names come from the models)."""
    records, events = _table(EntityRecord), _table(UserEvent)
    logs, callbacks = _table(IngestionRequest), _table(CallbackDelivery)
    event_defs = ", ".join(f"{c} {_EVENT_TYPES.get(c, 'text')}" for c in EVENT_COLUMNS)
    event_values = ", ".join(
        "to_timestamp(t.event_at_ms / 1000.0)" if c == "event_at_ms" else f"t.{c}"
        for c in EVENT_COLUMNS
    )
    event_targets = ", ".join("event_at" if c == "event_at_ms" else c for c in EVENT_COLUMNS)
    log_columns = [c for c in _LOG_TYPES if c != "elapsed_ms"]
    log_defs = ", ".join(f"{c} {t}" for c, t in _LOG_TYPES.items())
    return {
        "shared_locks": "SELECT pg_advisory_xact_lock_shared(k) FROM unnest(%s::bigint[]) k;",
        "locks": "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) k;",
        # One index lookup per key, whatever the size of the table: a LATERAL subquery
        # with OFFSET 0 (or LIMIT) is not flattened into a join, which the planner could
        # turn into a scan of the organization's rows.
        "records": f"""
            SELECT (p->>0)::bigint, p->>1, r.cdp_id, r.data
            FROM jsonb_array_elements(%s::jsonb) AS p
            CROSS JOIN LATERAL (
                SELECT r.cdp_id, r.data FROM {records} r
                WHERE r.organization_id = %s AND r.data_model_id = (p->>0)::bigint
                    AND r.key = p->>1
                OFFSET 0
            ) AS r;""",
        "fired": f"""
            SELECT k.key FROM jsonb_array_elements_text(%s::jsonb) AS k(key)
            CROSS JOIN LATERAL (
                SELECT 1 FROM {events} e
                WHERE e.organization_id = %s AND e.config_id = %s
                    AND e.condition = 'Created' AND e.source_id = k.key
                LIMIT 1
            ) AS e;""",
        "user_events": f"""
            SELECT e.event_id, e.condition, e.source, e.source_id, e.event_name,
                (extract(epoch FROM e.event_at) * 1000)::bigint
            FROM jsonb_array_elements(%s::jsonb) AS k
            CROSS JOIN LATERAL (
                SELECT e.id, e.event_id, e.condition, e.source, e.source_id, e.event_name,
                    e.event_at
                FROM {events} e
                WHERE e.organization_id = %s AND e.config_id IS NULL
                    AND e.source = k->>0 AND e.source_id = k->>1 AND e.event_name = k->>2
                OFFSET 0
            ) AS e
            ORDER BY e.id;""",
        # Data-modifying CTEs run to completion whatever reads them; the log row reads
        # their counts so that it is written last and its duration includes theirs.
        "write": f"""
            WITH m AS (
                SELECT %s::bigint AS organization_id, %s::text AS request_id,
                    %s::text AS source, %s::timestamptz AS now
            ), records AS (
                INSERT INTO {records} AS r
                    (organization_id, data_model_id, key, cdp_id, data, source,
                     created_at, updated_at)
                SELECT m.organization_id, t.model_id, t.key, t.cdp_id, t.data, m.source,
                    m.now, m.now
                FROM m, jsonb_to_recordset(%s::jsonb)
                    AS t(model_id bigint, key text, cdp_id text, data jsonb)
                ORDER BY t.model_id, t.key
                ON CONFLICT (organization_id, data_model_id, key) DO UPDATE
                SET data = EXCLUDED.data, source = EXCLUDED.source,
                    updated_at = EXCLUDED.updated_at
                RETURNING 1
            ), events AS (
                INSERT INTO {events}
                    (organization_id, request_id, created_at, {event_targets})
                SELECT m.organization_id, m.request_id, m.now, {event_values}
                FROM m, jsonb_to_recordset(%s::jsonb) AS t({event_defs})
                ORDER BY t.source_id
                RETURNING 1
            ), callback AS (
                INSERT INTO {callbacks}
                    (organization_id, request_id, api_key_prefix, body, entries, status,
                     attempts, next_attempt_at, locked_by, last_error, created_at)
                SELECT m.organization_id, m.request_id, c.api_key_prefix, c.body, c.entries,
                    '{CallbackStatus.PENDING}', 0, m.now, '', '', m.now
                FROM m, jsonb_to_recordset(%s::jsonb)
                    AS c(api_key_prefix text, body text, entries integer)
                RETURNING 1
            )
            INSERT INTO {logs}
                (organization_id, request_id, created_at, duration_ms, {", ".join(log_columns)})
            SELECT m.organization_id, m.request_id, m.now,
                l.elapsed_ms
                    + 1000 * extract(epoch FROM clock_timestamp() - statement_timestamp()),
                {", ".join(f"l.{c}" for c in log_columns)}
            FROM m, jsonb_to_record(%s::jsonb) AS l({log_defs}),
                (SELECT count(*) FROM records) AS r, (SELECT count(*) FROM events) AS e,
                (SELECT count(*) FROM callback) AS c""",
    }


def _log_json(log: LogRow) -> bytes:
    """The log row's columns as one JSON object; the results and warnings are embedded as
    they were serialized for the answer."""
    return orjson.dumps(
        {
            "api_key_id": log.api_key_id,
            "object_type": log.object_type,
            "source": log.source,
            "init_data": log.init_data,
            "config_id": log.config_id,
            "status": log.status,
            "error_code": log.error_code,
            "message": log.message,
            "total": log.total,
            "created": log.created,
            "updated": log.updated,
            "unchanged": log.unchanged,
            "failed": log.failed,
            "events_generated": log.events_generated,
            "events_suppressed": log.events_suppressed,
            "events_dropped": log.events_dropped,
            "results": orjson.Fragment(log.results),
            "warnings": orjson.Fragment(log.warnings),
            "elapsed_ms": log.elapsed_ms,
        }
    )


def _bigint_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


class PostgresWriter:
    def read(self, request: ReadRequest) -> Snapshot:
        """One round trip: the locks, then every read the plan needs (several statements
        in one `execute`, which Django's client-side-binding cursor allows)."""
        sql = _pg_sql()
        statements: list[str] = []
        params: list[Any] = []
        org = request.organization_id
        if request.exclusive_models:
            statements.append(sql["locks"])
            params.append(
                _bigint_array(sorted(_model_lock(org, m) for m in request.exclusive_models))
            )
        elif request.pairs:
            model_locks, key_locks = _key_locks(request)
            statements += [sql["shared_locks"], sql["locks"]]
            params += [_bigint_array(model_locks), _bigint_array(key_locks)]
        reads: list[str] = []
        if request.read_records and request.pairs:
            statements.append(sql["records"])
            params += [_json_text(request.pairs), org]
            reads.append("records")
        if request.fired_config_id is not None and request.fired_keys:
            statements.append(sql["fired"])
            params += [_json_text(request.fired_keys), org, request.fired_config_id]
            reads.append("fired")
        if request.user_event_lookups:
            statements.append(sql["user_events"])
            params += [_json_text(request.user_event_lookups), org]
            reads.append("user_events")
        if not statements:
            return Snapshot()
        found: dict[str, list[tuple[Any, ...]]] = {}
        with connection.cursor() as cursor:
            cursor.execute("\n".join(statements), params)
            raw = cursor.cursor
            # The lock statements come first; their results are skipped.
            for _ in range(len(statements) - len(reads)):
                raw.nextset()
            for name in reads:
                found[name] = raw.fetchall()
                raw.nextset()
        return Snapshot(
            records={
                (model_id, key): (cdp_id, orjson.loads(data) if isinstance(data, str) else data)
                for model_id, key, cdp_id, data in found.get("records", ())
            },
            fired=frozenset(source_id for (source_id,) in found.get("fired", ())),
            user_events=known_user_events(found.get("user_events", ())),
        )

    def write(self, plan: IngestPlan, *, commit: bool) -> None:
        """One statement for every row of the plan; with `commit` (the request's block is
        the outermost), the COMMIT travels in the same round trip, and the block's own
        commit then finds nothing left to do."""
        callback = plan.callback
        callbacks = (
            [
                {
                    "api_key_prefix": callback.api_key_prefix,
                    "body": callback.body.decode(),
                    "entries": callback.entries,
                }
            ]
            if callback is not None
            else []
        )
        params = [
            plan.organization_id,
            plan.request_id,
            plan.source,
            plan.now,
            _json_text(plan.records),
            _json_text(plan.events),
            _json_text(callbacks),
            _log_json(plan.log).decode(),
        ]
        sql = _pg_sql()["write"] + (";\nCOMMIT" if commit else "")
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


# ---------------------------------------------------------------------------------------
# SQLite (and any other database Django supports): the ORM.

# Lookups per statement: SQLite's default limit is 999 variables.
_CHUNK = 300


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class PortableWriter:
    def read(self, request: ReadRequest) -> Snapshot:
        records: dict[Pair, tuple[str, dict[str, Any]]] = {}
        if request.read_records:
            keys_by_model: dict[int, list[str]] = {}
            for model_id, key in request.pairs:
                keys_by_model.setdefault(model_id, []).append(key)
            for model_id, keys in keys_by_model.items():
                for chunk in _chunks(keys):
                    rows = EntityRecord.objects.filter(
                        organization_id=request.organization_id,
                        data_model_id=model_id,
                        key__in=chunk,
                    ).values_list("key", "cdp_id", "data")
                    records.update({(model_id, k): (c, d) for k, c, d in rows})
        fired: set[str] = set()
        if request.fired_config_id is not None:
            for chunk in _chunks(request.fired_keys):
                fired.update(
                    UserEvent.objects.filter(
                        organization_id=request.organization_id,
                        config_id=request.fired_config_id,
                        condition=Trigger.CREATED,
                        source_id__in=chunk,
                    ).values_list("source_id", flat=True)
                )
        found: list[tuple[str, str, str, str, str, int]] = []
        for chunk in _chunks(request.user_event_lookups):
            lookup = Q()
            for source, source_id, event_name in chunk:
                lookup |= Q(source=source, source_id=source_id, event_name=event_name)
            rows = (
                UserEvent.objects.filter(
                    lookup, organization_id=request.organization_id, config__isnull=True
                )
                .order_by("pk")
                .values_list(
                    "event_id", "condition", "source", "source_id", "event_name", "event_at"
                )
            )
            found += [(*row[:5], _ms(row[5])) for row in rows]
        return Snapshot(
            records=records, fired=frozenset(fired), user_events=known_user_events(found)
        )

    def write(self, plan: IngestPlan, *, commit: bool) -> None:
        began = time.perf_counter()
        organization_id, now = plan.organization_id, plan.now
        # One upsert for the inserts and the updates alike (a constant number of
        # statements, whatever the mix); `created_at` and `cdp_id` of stored rows stay.
        EntityRecord.objects.bulk_create(
            [
                EntityRecord(
                    organization_id=organization_id,
                    data_model_id=w.model_id,
                    key=w.key,
                    cdp_id=w.cdp_id,
                    data=w.data,
                    source=plan.source,
                    created_at=now,
                    updated_at=now,
                )
                for w in plan.records
            ],
            update_conflicts=True,
            unique_fields=["organization", "data_model", "key"],
            update_fields=["data", "source", "updated_at"],
        )
        UserEvent.objects.bulk_create(
            _user_event(organization_id, plan.request_id, now, row)
            for row in sorted(plan.events, key=lambda r: r.source_id)
        )
        if plan.callback is not None:
            CallbackDelivery.objects.create(
                organization_id=organization_id,
                request_id=plan.request_id,
                api_key_prefix=plan.callback.api_key_prefix,
                body=plan.callback.body.decode(),
                entries=plan.callback.entries,
                next_attempt_at=now,
                created_at=now,
            )
        written_ms = (time.perf_counter() - began) * 1000
        log_row_create(organization_id, plan.request_id, now, plan.log, written_ms=written_ms)


def _user_event(organization_id: int, request_id: str, now: datetime, row: EventRow) -> UserEvent:
    columns = {c: getattr(row, c) for c in EVENT_COLUMNS if c != "event_at_ms"}
    return UserEvent(
        organization_id=organization_id,
        request_id=request_id,
        created_at=now,
        event_at=datetime.fromtimestamp(row.event_at_ms / 1000, tz=UTC),
        **columns,
    )


def log_row_create(
    organization_id: int, request_id: str, now: datetime, log: LogRow, *, written_ms: float = 0.0
) -> IngestionRequest:
    """The IngestionRequest row through the ORM: SQLite's plans and every refusal."""
    columns = orjson.loads(_log_json(log))
    elapsed = columns.pop("elapsed_ms")
    return IngestionRequest.objects.create(
        organization_id=organization_id,
        request_id=request_id,
        created_at=now,
        duration_ms=round(elapsed + written_ms, 3),
        **columns,
    )


def writer() -> PostgresWriter | PortableWriter:
    """The writer for the default database."""
    return PostgresWriter() if connection.vendor == "postgresql" else PortableWriter()
