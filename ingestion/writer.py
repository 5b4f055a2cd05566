"""The one writer of ingest plans: the locked read a plan is built from, and the plan's
persistence, for PostgreSQL and SQLite (decide once, persist per database).

Neither implementation decides anything (ingestion/plan.py does); both run the same
tests. A writer is a context manager: the request's transaction.

PostgreSQL, per request: one round trip that opens the transaction, takes the key locks
and reads (`read`), one that writes every row of the plan in one statement and commits
(`write`): two in all (three when the request runs inside a caller's transaction, which
Django's savepoints then frame). The locks are transaction-level advisory
locks, one per (model, key) of the request, new or existing, taken in one global order,
so requests that share keys run one after the other and cannot deadlock; every writer of
records takes them, an import's batches of a thousand keys too. The read that follows
takes its snapshot after the locks, so it sees what the request before committed.

SQLite takes its write lock when the transaction begins (`BEGIN IMMEDIATE`, settings) and
serializes writers, so it needs no key locks; the same plan is written with the ORM.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from hashlib import blake2b
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from cdp.models import EntityRecord, Organization
from ingestion.models import (
    CallbackDelivery,
    CallbackStatus,
    DestinationDelivery,
    IdempotencyKey,
    IngestionRequest,
    RecordHistory,
)
from ingestion.plan import IngestPlan, LogRow, Pair, Snapshot, StoredAnswer
from journeys.events import EVENT_COLUMNS, EventRow
from journeys.models import Trigger, UserEvent
from journeys.user_events import known_user_events


@dataclass(frozen=True)
class ReadRequest:
    """What a plan needs read, under which locks."""

    organization_id: int
    pairs: Sequence[Pair] = ()  # the (model, key) of every valid entry, sorted
    read_records: bool = True  # False for `user-event` entries, which are no records
    fired_config_id: int | None = None  # a Created User Event: which keys has it fired for?
    fired_keys: Sequence[str] = ()
    user_event_lookups: Sequence[tuple[str, str, str]] = ()  # (source, sourceId, eventName)
    # The request's Idempotency-Key: locked first (so a concurrent duplicate waits for this
    # request's commit), then its stored answer read.
    idempotency_key: str | None = None
    # False for a dry run: no transaction, no lock; the reads alone.
    lock: bool = True


def _lock_id(name: str) -> int:
    """A stable signed 64-bit advisory lock id (a collision only serializes two requests)."""
    return int.from_bytes(blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def _idempotency_lock(organization_id: int, key: str) -> int:
    return _lock_id(f"cdp.idempotency:{organization_id}:{key}")


def _key_locks(request: ReadRequest) -> list[int]:
    """The request's key locks, sorted: the global order, so no two requests deadlock."""
    org = request.organization_id
    return sorted({_lock_id(f"cdp.record:{org}:{m}:{k}") for m, k in request.pairs})


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
    **{
        name: "text"
        for name in ("object_type", "source", "error_code", "message", "idempotency_key")
    },
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
    "ingested": "boolean",
    "event_at_ms": "bigint",
    "value": "double precision",
    "event_labels": "jsonb",
    "event_label2s": "jsonb",
    "event_label3s": "jsonb",
    "properties": "jsonb",
}


@cache
def _pg_statements() -> dict[str, tuple[str, str]]:
    """The prepared statements, by name: (parameter types, body). Built once (table names
    come from the models)."""
    records, events = _table(EntityRecord), _table(UserEvent)
    logs, callbacks = _table(IngestionRequest), _table(CallbackDelivery)
    answers, history = _table(IdempotencyKey), _table(RecordHistory)
    deliveries = _table(DestinationDelivery)
    write = _write_statement(records, events, logs, callbacks, answers, history, deliveries)
    return {
        # Taken before any other lock of the request (one per transaction): the global
        # order stays, so no deadlock.
        "cdp_idempotency_lock": ("bigint", "SELECT pg_advisory_xact_lock($1)"),
        "cdp_idempotency_answer": (
            "bigint, text",
            f"""SELECT fingerprint, request_id, status, body FROM {answers}
            WHERE organization_id = $1 AND key = $2 AND expires_at > now()""",
        ),
        # The key locks, in sorted order. Every write of a record holds its key's lock, so
        # a key the read does not find stays absent until the write (created records are
        # inserted without ON CONFLICT).
        "cdp_key_locks": (
            "bigint[]",
            "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(k) FROM unnest($1) AS k) AS l",
        ),
        # The records' lookup's plan mode (below, `_PLAN_MODES`), set for the rest of the
        # transaction (LOCAL).
        "cdp_plan_mode": (
            "",
            f"""SELECT set_config('plan_cache_mode', CASE
                WHEN r.reltuples >= {GENERIC_LOOKUP_FROM}
                    AND r.reltuples >= {GENERIC_LOOKUP_PER_ORGANIZATION}
                        * CASE WHEN o.reltuples < 0 THEN 50 ELSE o.reltuples END
                THEN 'force_generic_plan' ELSE 'force_custom_plan' END, true)
            FROM pg_class r, pg_class o
            WHERE r.oid = '{records}'::regclass AND o.oid = '{_table(Organization)}'::regclass""",
        ),
        # One index lookup per key, whatever the size of the table: a LATERAL subquery
        # with OFFSET 0 (or LIMIT) is not flattened into a join, which the planner could
        # turn into a scan of the organization's rows.
        "cdp_records": (
            "jsonb, bigint",
            f"""SELECT (p->>0)::bigint, p->>1, r.cdp_id, r.data
            FROM jsonb_array_elements($1) AS p
            CROSS JOIN LATERAL (
                SELECT r.cdp_id, r.data FROM {records} r
                WHERE r.organization_id = $2 AND r.data_model_id = (p->>0)::bigint
                    AND r.key = p->>1
                OFFSET 0
            ) AS r""",
        ),
        "cdp_fired": (
            "jsonb, bigint, bigint",
            f"""SELECT k.key FROM jsonb_array_elements_text($1) AS k(key)
            CROSS JOIN LATERAL (
                SELECT 1 FROM {events} e
                WHERE e.organization_id = $2 AND e.config_id = $3
                    AND e.condition = 'Created' AND e.source_id = k.key
                LIMIT 1
            ) AS e""",
        ),
        # Ingested events are unique per (source, sourceId, eventName) when `Created`, and
        # per eventAt too when `Changed`: one lookup in each of the two unique indexes
        # (partial on `ingested`, which generated events never are, whatever became of
        # their User Event).
        "cdp_user_events": (
            "jsonb, bigint",
            f"""SELECT e.event_id, e.condition, e.source, e.source_id, e.event_name,
                (extract(epoch FROM e.event_at) * 1000)::bigint
            FROM jsonb_array_elements($1) AS k
            CROSS JOIN LATERAL (
                SELECT e.id, e.event_id, e.condition, e.source, e.source_id, e.event_name,
                    e.event_at
                FROM {events} e
                WHERE e.organization_id = $2 AND e.ingested
                    AND e.condition = 'Created'
                    AND e.source = k->>0 AND e.source_id = k->>1 AND e.event_name = k->>2
                UNION ALL
                SELECT e.id, e.event_id, e.condition, e.source, e.source_id, e.event_name,
                    e.event_at
                FROM {events} e
                WHERE e.organization_id = $2 AND e.ingested
                    AND e.condition = 'Changed'
                    AND e.source = k->>0 AND e.source_id = k->>1 AND e.event_name = k->>2
                OFFSET 0
            ) AS e
            ORDER BY e.id""",
        ),
        # Data-modifying CTEs run to completion whatever reads them; the log row reads
        # their counts so that it is written last and its duration includes theirs.
        "cdp_write": (
            _WRITE_TYPES,
            write.replace(
                "{created_source}", f"jsonb_to_recordset($5) AS t({_RECORD_DEFS})"
            ).replace("{updated_source}", f"jsonb_to_recordset($16) AS t({_RECORD_DEFS})"),
        ),
        # The same, for large plans (imports): the created records were copied into the
        # records' table and the updated ones into the session's staging table (COPY);
        # $5 is empty and $16 unused.
        "cdp_write_staged": (
            _WRITE_TYPES,
            write.replace(
                "{created_source}", f"jsonb_to_recordset($5) AS t({_RECORD_DEFS})"
            ).replace("{updated_source}", f"{STAGED_RECORDS} AS t"),
        ),
        "cdp_records_staged": (
            "bigint",
            f"""SELECT k.model_id, k.key, r.cdp_id, r.data
            FROM {STAGED_KEYS} k
            CROSS JOIN LATERAL (
                SELECT r.cdp_id, r.data FROM {records} r
                WHERE r.organization_id = $1 AND r.data_model_id = k.model_id
                    AND r.key = k.key
                OFFSET 0
            ) AS r""",
        ),
    }


# Session tables for large plans, emptied at every commit.
STAGED_KEYS = "cdp_staged_keys"
STAGED_RECORDS = "cdp_staged_records"
_STAGING_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGED_KEYS} (model_id bigint, key text)"
    " ON COMMIT DELETE ROWS",
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGED_RECORDS}"
    " (model_id bigint, key text, cdp_id text, data jsonb)"
    " ON COMMIT DELETE ROWS",
)
_RECORD_DEFS = "model_id bigint, key text, cdp_id text, data jsonb"
# From this many rows on, the rows travel by COPY rather than as one JSON parameter
# (parsing a megabyte of literal text costs the database about as much as the inserts).
STAGING_FROM = 500


# organization, request id, source, now, created records, events, callback, log row, the
# Idempotency-Key's row (key, NULL for none; fingerprint, expiry, status, answer), the
# records' history entries, the destinations' deliveries, and the updated records.
_WRITE_TYPES = (
    "bigint, text, text, timestamptz, jsonb, jsonb, jsonb, jsonb,"
    " text, text, timestamptz, integer, text, jsonb, jsonb, jsonb"
)


def _event_columns() -> tuple[str, str, str]:
    """An EventRow's columns as INSERT targets, as values of `t`, and as the column
    definitions of `jsonb_to_recordset(...) AS t(...)`."""
    defs = ", ".join(f"{c} {_EVENT_TYPES.get(c, 'text')}" for c in EVENT_COLUMNS)
    values = ", ".join(
        "to_timestamp(t.event_at_ms / 1000.0)" if c == "event_at_ms" else f"t.{c}"
        for c in EVENT_COLUMNS
    )
    targets = ", ".join("event_at" if c == "event_at_ms" else c for c in EVENT_COLUMNS)
    return targets, values, defs


def events_insert_new(
    organization_id: int, request_id: str, now: datetime, rows: Sequence[EventRow]
) -> set[str]:
    """Store `rows` (a backfill's batch), skipping any a unique constraint already holds
    (created-once: a request fired it meanwhile); the eventIds of the new ones. On
    PostgreSQL one statement over a JSON parameter, as the ingest write's events;
    elsewhere the ORM."""
    if not rows:
        return set()
    if connection.vendor != "postgresql":
        UserEvent.objects.bulk_create(
            [user_event_from_row(organization_id, request_id, now, row) for row in rows],
            ignore_conflicts=True,
            batch_size=_CHUNK,
        )
        return set(
            UserEvent.objects.filter(
                organization_id=organization_id,
                request_id=request_id,
                event_id__in=[row.event_id for row in rows],
            ).values_list("event_id", flat=True)
        )
    targets, values, defs = _event_columns()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {_table(UserEvent)}
                (organization_id, request_id, created_at, {targets})
            SELECT %s, %s, %s, {values} FROM jsonb_to_recordset(%s::jsonb) AS t({defs})
            ON CONFLICT DO NOTHING
            RETURNING event_id""",
            [organization_id, request_id, now, _json_text(list(rows))],
        )
        return {event_id for (event_id,) in cursor.fetchall()}


def _write_statement(
    records: str,
    events: str,
    logs: str,
    callbacks: str,
    answers: str,
    history: str,
    deliveries: str,
) -> str:
    """The write, with `{created_source}` and `{updated_source}` left to fill.

    A record the read did not find is inserted without ON CONFLICT: its key's lock, which
    every write of a record holds, kept it absent since, and a plain insert costs the
    database about a tenth less than a speculative one (bench/batch_steps_bench.py). A stored
    one is upserted, as it may have been erased meanwhile (erasure takes no key lock)."""
    event_targets, event_values, event_defs = _event_columns()
    log_columns = [c for c in _LOG_TYPES if c != "elapsed_ms"]
    log_defs = ", ".join(f"{c} {t}" for c, t in _LOG_TYPES.items())
    return f"""WITH created AS (
                INSERT INTO {records}
                    (organization_id, data_model_id, key, cdp_id, data, source,
                     created_at, updated_at)
                SELECT $1, t.model_id, t.key, t.cdp_id, t.data, $3, $4, $4
                FROM {{created_source}}
                ORDER BY t.model_id, t.key
                RETURNING 1
            ), updated AS (
                INSERT INTO {records} AS r
                    (organization_id, data_model_id, key, cdp_id, data, source,
                     created_at, updated_at)
                SELECT $1, t.model_id, t.key, t.cdp_id, t.data, $3, $4, $4
                FROM {{updated_source}}
                ORDER BY t.model_id, t.key
                ON CONFLICT (organization_id, data_model_id, key) DO UPDATE
                SET data = EXCLUDED.data, source = EXCLUDED.source,
                    updated_at = EXCLUDED.updated_at
                RETURNING 1
            ), events AS (
                INSERT INTO {events}
                    (organization_id, request_id, created_at, {event_targets})
                SELECT $1, $2, $4, {event_values}
                FROM jsonb_to_recordset($6) AS t({event_defs})
                ORDER BY t.source_id
                RETURNING 1
            ), callback AS (
                INSERT INTO {callbacks}
                    (organization_id, request_id, api_key_prefix, body, entries, status,
                     attempts, next_attempt_at, locked_by, last_error, created_at)
                SELECT $1, $2, c.api_key_prefix, c.body, c.entries,
                    '{CallbackStatus.PENDING}', 0, $4, '', '', $4
                FROM jsonb_to_recordset($7)
                    AS c(api_key_prefix text, body text, entries integer)
                RETURNING 1
            ), answer AS (
                -- A row already there has expired (the read found none live): replaced.
                INSERT INTO {answers}
                    (organization_id, key, fingerprint, request_id, status, body,
                     created_at, expires_at)
                SELECT $1, $9, $10, $2, $12, $13, $4, $11 WHERE $9 IS NOT NULL
                ON CONFLICT (organization_id, key) DO UPDATE
                SET fingerprint = EXCLUDED.fingerprint, request_id = EXCLUDED.request_id,
                    status = EXCLUDED.status, body = EXCLUDED.body,
                    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
                RETURNING 1
            ), history AS (
                -- In entry order: a key written twice by the request gets two entries,
                -- the later one with the higher id.
                INSERT INTO {history}
                    (organization_id, data_model_id, key, request_id, action, source,
                     changes, created_at)
                SELECT $1, h.model_id, h.key, $2, h.action, $3, h.changes, $4
                FROM ROWS FROM (jsonb_to_recordset($14)
                    AS (model_id bigint, key text, action text, changes jsonb))
                    WITH ORDINALITY AS h(model_id, key, action, changes, n)
                ORDER BY h.n
                RETURNING 1
            ), delivery AS (
                -- The destinations' deliveries of the request's events (ingestion/
                -- destinations.py), in the transaction that stores the events.
                INSERT INTO {deliveries}
                    (organization_id, destination_id, webhook_id, request_id, event_ids,
                     status, attempts, next_attempt_at, locked_by, last_error, created_at)
                SELECT $1, d.destination_id, d.webhook_id, $2, d.event_ids,
                    '{CallbackStatus.PENDING}', 0, $4, '', '', $4
                FROM jsonb_to_recordset($15)
                    AS d(destination_id bigint, webhook_id text, event_ids jsonb)
                RETURNING 1
            )
            INSERT INTO {logs}
                (organization_id, request_id, created_at, duration_ms, {", ".join(log_columns)})
            SELECT $1, $2, $4,
                l.elapsed_ms
                    + 1000 * extract(epoch FROM clock_timestamp() - statement_timestamp()),
                {", ".join(f"l.{c}" for c in log_columns)}
            FROM jsonb_to_record($8) AS l({log_defs}),
                (SELECT count(*) FROM created) AS n, (SELECT count(*) FROM updated) AS u,
                (SELECT count(*) FROM events) AS e,
                (SELECT count(*) FROM callback) AS c, (SELECT count(*) FROM answer) AS a,
                (SELECT count(*) FROM history) AS h, (SELECT count(*) FROM delivery) AS d"""


# How each statement is planned. A lookup's best index depends on the table's size as the
# planner sees it: a generic plan (made once, kept until the table's next ANALYZE) made
# while the records' table looked empty ties every index of the organization, may take
# `(organization_id, id)` with a filter, and would then scan the tenant's rows for every
# key as the table grows. So the reads are planned for every execution (custom plans,
# which also see the table's current size), except the records' lookup once statistics
# show a table of some size (`cdp_plan_mode`): planned then, its generic plan takes the
# unique key, and it saves a custom plan that was a fifth of PostgreSQL's CPU for a
# 1-entry request. The locks and the write depend on no value: generic.
_GENERIC, _CUSTOM = "force_generic_plan", "force_custom_plan"
_BY_SIZE = "by size"  # cdp_plan_mode chooses
_PLAN_MODES = {
    "cdp_idempotency_answer": _CUSTOM,
    "cdp_records": _BY_SIZE,
    "cdp_fired": _CUSTOM,
    "cdp_user_events": _CUSTOM,
    "cdp_records_staged": _CUSTOM,
}
# The records' lookup has its generic plan when the statistics (pg_class.reltuples, as of
# each table's last ANALYZE) show at least this many records, and this many per
# organization on average (an organizations' table never analyzed has fewer than about 50
# rows: autovacuum analyzes a table after 50 changes). The planner then estimates an
# organization's rows at many, and `(organization_id, id)` with a filter costs more than
# the unique key's one row; the estimate only grows with the table, whose ANALYZEs replan.
GENERIC_LOOKUP_FROM = 1000
GENERIC_LOOKUP_PER_ORGANIZATION = 10

# The statements each open connection has prepared. A PREPARE outlives a rolled-back
# transaction, so after a failed round trip the server is asked which exist.
_prepared: WeakKeyDictionary[Any, set[str] | None] = WeakKeyDictionary()


def _execute(
    cursor: Any,
    calls: Sequence[tuple[str, Sequence[Any]]],
    *,
    head: Sequence[str] = (),
    commit: bool = False,
) -> list[list[tuple[Any, ...]]]:
    """EXECUTE the named statements, in one round trip after the `head` statements,
    preparing those this connection has not prepared yet in the same round trip (the
    first request of a connection), and COMMIT after them if `commit`; return each
    call's rows.

    Prepared, the statements are parsed and planned once per connection instead of once
    per request: most of the database's own cost for a small request. Each runs in its
    plan mode (`SET LOCAL plan_cache_mode`, set back to the default at the end unless
    the transaction ends there); the last before a COMMIT is the write's generic one, in
    which the deferred foreign-key checks' cached plans run too.
    """
    definitions = _pg_statements()
    statements: list[str] = list(head)
    fetched = [False] * len(head)  # per statement: are its rows a call's result?
    params: list[Any] = []
    if not settings.CDP_PREPARED_STATEMENTS:
        # Behind a transaction-pooling proxy, a session's prepared statements may be on
        # another server connection: the same statements, sent whole, with their types
        # (planned each time, as any statement sent whole).
        for name, args in calls:
            types, body = definitions[name]
            sql, order = _inlined(body, types)
            statements.append(sql)
            fetched.append(True)
            params += [args[n - 1] for n in order]
        if commit:
            statements.append("COMMIT")
            fetched.append(False)
        cursor.execute(";\n".join(statements), params)
        return _results(cursor.cursor, fetched)
    raw = connection.connection
    known = _prepared.get(raw, set())
    if known is None:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        known = {name for (name,) in cursor.fetchall()}
    names: set[str] = set()

    def execute(name: str, args: Sequence[Any], *, rows: bool) -> None:
        if name not in known and name not in names:
            types, body = definitions[name]
            statements.append(
                f"PREPARE {name} ({types}) AS {body}" if types else f"PREPARE {name} AS {body}"
            )
            fetched.append(False)
        names.add(name)
        statements.append(
            f"EXECUTE {name}({', '.join(['%s'] * len(args))})" if args else f"EXECUTE {name}"
        )
        fetched.append(rows)
        params.extend(args)

    mode = None
    for name, args in calls:
        if _PLAN_MODES.get(name, _GENERIC) != mode:
            mode = _PLAN_MODES.get(name, _GENERIC)
            if mode == _BY_SIZE:
                execute("cdp_plan_mode", (), rows=False)
            else:
                statements.append(f"SET LOCAL plan_cache_mode = {mode}")
                fetched.append(False)
        execute(name, args, rows=True)
    statements.append("COMMIT" if commit else "SET LOCAL plan_cache_mode = DEFAULT")
    fetched.append(False)
    _prepared[raw] = None  # unknown, until the round trip has gone through
    cursor.execute(";\n".join(statements), params)
    _prepared[raw] = known | names
    return _results(cursor.cursor, fetched)


def _inlined(body: str, types: str) -> tuple[str, list[int]]:
    """A prepared statement's body with `%s` placeholders, each cast to its declared type,
    and the parameter number of each placeholder, in order."""
    declared = [t.strip() for t in types.split(",")]
    order: list[int] = []

    def placeholder(match: re.Match[str]) -> str:
        order.append(int(match.group(1)))
        return f"%s::{declared[int(match.group(1)) - 1]}"

    return re.sub(r"\$(\d+)", placeholder, body), order


def _results(psycopg_cursor: Any, fetched: Sequence[bool]) -> list[list[tuple[Any, ...]]]:
    """The rows of the statements `fetched` marks, walking the round trip's results."""
    results = []
    for index, rows in enumerate(fetched):
        if index:
            psycopg_cursor.nextset()
        if rows:
            results.append(psycopg_cursor.fetchall() if psycopg_cursor.description else [])
    return results


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
            "idempotency_key": log.idempotency_key,
        }
    )


def _answer_params(plan: IngestPlan) -> list[Any]:
    """The write's last parameters: the Idempotency-Key's row, or NULLs."""
    idempotency = plan.idempotency
    if idempotency is None:
        return [None, None, None, None, None]
    return [
        idempotency.key,
        idempotency.fingerprint,
        idempotency.expires_at,
        plan.status,
        plan.content.decode(),
    ]


def _bigint_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


class PostgresWriter:
    """The transaction is opened by the read's round trip and committed by the write's.

    Django's `atomic()` would send psycopg's BEGIN as a round trip of its own; so, when no
    transaction is open (the request's own block is the outermost), the writer sends
    BEGIN and COMMIT itself, in the same `execute` as the statements, on a connection left
    in autocommit, and ROLLBACK if anything fails in between. Inside a caller's
    transaction (tests, a larger unit of work) it takes a savepoint with `atomic()`.
    """

    def __init__(self, *, read_only: bool = False) -> None:
        self._read_only = read_only  # a dry run: reads, without transaction or locks

    def __enter__(self) -> PostgresWriter:
        self._own = not connection.in_atomic_block and connection.get_autocommit()
        self._begun = False
        self._staged = False  # this transaction has staged rows
        if not self._own and not self._read_only:
            self._atomic = transaction.atomic()
            self._atomic.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if not self._own and not self._read_only:
            self._atomic.__exit__(exc_type, exc, traceback)
        elif exc_type is not None and self._begun:
            # Nothing half-written: whatever the statement that failed, undo the rest. On a
            # broken connection this fails too; the first error is the one to report, and
            # Django closes the connection at the end of the request.
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("ROLLBACK")

    def read(self, request: ReadRequest) -> Snapshot:
        """One round trip: the locks, then every read the plan needs. Several statements
        travel in one `execute` (Django's client-side-binding cursor allows it); each read
        takes its snapshot after the locks, so it sees what the request before committed.
        A dry run's read (`lock` False) takes no lock and opens no transaction."""
        org = request.organization_id
        calls: list[tuple[str, Sequence[Any]]] = []
        lock = request.lock and not self._read_only
        if lock and request.idempotency_key is not None:
            lock_id = _idempotency_lock(org, request.idempotency_key)
            calls.append(("cdp_idempotency_lock", [lock_id]))
        if lock and request.pairs:
            calls.append(("cdp_key_locks", [_bigint_array(_key_locks(request))]))
        reads: list[str] = []
        if lock and request.idempotency_key is not None:
            calls.append(("cdp_idempotency_answer", [org, request.idempotency_key]))
            reads.append("answer")
        # (A dry run's keys travel as JSON: staging tables need the transaction.)
        staged = lock and request.read_records and len(request.pairs) >= STAGING_FROM
        if staged:
            # The keys travel by COPY between the locks and the reads.
            locks, calls = calls, []
            head = [*self._begin(), *self._staging()]
            with connection.cursor() as cursor:
                _execute(cursor, locks, head=head)
                _copy(
                    cursor,
                    f"COPY {STAGED_KEYS} (model_id, key) FROM STDIN",
                    [f"{model_id}\t{_copy_text(key)}\n" for model_id, key in request.pairs],
                )
            calls.append(("cdp_records_staged", [org]))
            reads.append("records")
        elif request.read_records and request.pairs:
            calls.append(("cdp_records", [_json_text(request.pairs), org]))
            reads.append("records")
        if request.fired_config_id is not None and request.fired_keys:
            calls.append(
                ("cdp_fired", [_json_text(request.fired_keys), org, request.fired_config_id])
            )
            reads.append("fired")
        if request.user_event_lookups:
            calls.append(("cdp_user_events", [_json_text(request.user_event_lookups), org]))
            reads.append("user_events")
        if not calls:
            return Snapshot()
        with connection.cursor() as cursor:
            results = _execute(cursor, calls, head=self._begin() if lock else ())
        # The lock statements come first; the reads' rows are the last results.
        found = dict(zip(reads, results[len(results) - len(reads) :], strict=True))
        answer = found.get("answer")
        return Snapshot(
            records={
                (model_id, key): (cdp_id, orjson.loads(data) if isinstance(data, str) else data)
                for model_id, key, cdp_id, data in found.get("records", ())
            },
            fired=frozenset(source_id for (source_id,) in found.get("fired", ())),
            user_events=known_user_events(found.get("user_events", ())),
            stored_answer=StoredAnswer(
                answer[0][0], answer[0][1], answer[0][2], answer[0][3].encode()
            )
            if answer
            else None,
        )

    def replayed(self, organization_id: int, request_id: str, now: datetime) -> None:
        """End the transaction of a request answered with a stored answer: count the
        replay on the original request's log row, and commit."""
        sql = (
            f"UPDATE {_table(IngestionRequest)} SET replays = replays + 1,"
            " last_replayed_at = %s WHERE organization_id = %s AND request_id = %s"
        )
        tail = ["COMMIT"] if self._own and self._begun else []
        with connection.cursor() as cursor:
            cursor.execute(";\n".join([sql, *tail]), [now, organization_id, request_id])
        self._begun = False

    def release(self) -> None:
        """End the transaction of a request that writes nothing (its key's answer was for
        another request)."""
        if self._own and self._begun:
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")
        self._begun = False

    def _begin(self) -> list[str]:
        if not self._own or self._begun:
            return []
        self._begun = True
        return ["BEGIN"]

    def _staging(self) -> list[str]:
        """The statements that give this transaction empty staging tables. Always made if
        missing: a table made in a transaction that was rolled back (a caller's, or one
        that failed) is gone, and behind a transaction-pooling proxy the session may be
        another each time; for plans of 500 rows and more the check costs nothing.

        In a transaction of the writer's own they are empty already (emptied at every
        commit, and a rollback takes back its rows); a caller's transaction may span
        several plans, so there they are emptied. TRUNCATE costs about 3 ms (a batch of
        1,000 rows: a tenth of its write), so only there."""
        self._staged = True
        if self._own:
            return list(_STAGING_DDL)
        return [*_STAGING_DDL, f"TRUNCATE {STAGED_KEYS}, {STAGED_RECORDS}"]

    def write(self, plan: IngestPlan) -> None:
        """One statement for every row of the plan, with the COMMIT in the same round trip
        when the writer owns the transaction (alone, without a read, the statement is a
        transaction of its own)."""
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
        staged = len(plan.records) >= STAGING_FROM
        created = [] if staged else [row for row in plan.records if row.created]
        updated = [] if staged else [row for row in plan.records if not row.created]
        params = [
            plan.organization_id,
            plan.request_id,
            plan.source,
            plan.now,
            _json_text(created),
            _json_text(plan.events),
            _json_text(callbacks),
            _log_json(plan.log).decode(),
            *_answer_params(plan),
            _json_text(plan.history),
            _json_text(plan.deliveries),
            _json_text(updated),
        ]
        if staged:
            with connection.cursor() as cursor:
                if not (self._begun and self._staged):  # the read staged in this transaction
                    cursor.execute(";\n".join([*self._begin(), *self._staging()]))
                self._copy_records(cursor, plan)
        # The write's plan depends on no value (rows come from its JSON parameters), so the
        # plan made once serves every request: planning it anew, with a megabyte of JSON
        # as a constant, costs an import batch more than its inserts. Without a read
        # (`_begun` False) the round trip is a transaction of its own.
        name = "cdp_write_staged" if staged else "cdp_write"
        with connection.cursor() as cursor:
            _execute(cursor, [(name, params)], commit=self._own and self._begun)
        self._begun = False

    @staticmethod
    def _copy_records(cursor: Any, plan: IngestPlan) -> None:
        """A large plan's rows by COPY: the created records straight into the records'
        table (their keys' locks keep them absent since the read, as for the plain insert),
        in the insert's order; the updated ones into the staging table, for the upsert.
        Straight in, a created row costs the database about a tenth less than staged and
        inserted (bench/batch_steps_bench.py)."""
        created = sorted(
            (row for row in plan.records if row.created), key=lambda r: (r.model_id, r.key)
        )
        if created:
            org, source, now = plan.organization_id, _copy_text(plan.source), plan.now.isoformat()
            columns = "organization_id, data_model_id, key, cdp_id, data, source, created_at,"
            _copy(
                cursor,
                f"COPY {_table(EntityRecord)} ({columns} updated_at) FROM STDIN",
                [
                    f"{org}\t{row.model_id}\t{_copy_text(row.key)}\t{row.cdp_id}\t"
                    f"{_copy_text(_json_text(row.data))}\t{source}\t{now}\t{now}\n"
                    for row in created
                ],
            )
        if len(created) < len(plan.records):
            _copy(
                cursor,
                f"COPY {STAGED_RECORDS} (model_id, key, cdp_id, data) FROM STDIN",
                [
                    f"{row.model_id}\t{_copy_text(row.key)}\t{row.cdp_id}\t"
                    f"{_copy_text(_json_text(row.data))}\n"
                    for row in plan.records
                    if not row.created
                ],
            )


# COPY's text format: a backslash, and the tab, newline and carriage return that would
# end a column or a row, escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy(cursor: Any, sql: str, lines: list[str]) -> None:
    """COPY the rows, each a line of COPY's text format (`_copy_text` for each text
    value), in one write: formatted here, a thousand rows cost a third of the client CPU
    psycopg's `write_row` takes (its per-row calls)."""
    with cursor.cursor.copy(sql) as copy:
        copy.write("".join(lines))


# ---------------------------------------------------------------------------------------
# SQLite (and any other database Django supports): the ORM.

# Lookups per statement: SQLite's default limit is 999 variables.
_CHUNK = 300


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class PortableWriter:
    """Django's `atomic()`: on SQLite, `BEGIN IMMEDIATE` takes the write lock at once (so
    the Idempotency-Key's answer is read under it too). A dry run (`read_only`) reads
    outside any transaction, taking no lock."""

    def __init__(self, *, read_only: bool = False) -> None:
        self._read_only = read_only

    def __enter__(self) -> PortableWriter:
        if not self._read_only:
            self._atomic = transaction.atomic()
            self._atomic.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if not self._read_only:
            self._atomic.__exit__(exc_type, exc, traceback)

    def replayed(self, organization_id: int, request_id: str, now: datetime) -> None:
        IngestionRequest.objects.filter(
            organization_id=organization_id, request_id=request_id
        ).update(replays=F("replays") + 1, last_replayed_at=now)

    def release(self) -> None:
        pass  # the transaction ends with the block

    def read(self, request: ReadRequest) -> Snapshot:
        if request.idempotency_key is not None and request.lock and not self._read_only:
            stored = (
                IdempotencyKey.objects.filter(
                    organization_id=request.organization_id,
                    key=request.idempotency_key,
                    expires_at__gt=timezone.now(),
                )
                .values_list("fingerprint", "request_id", "status", "body")
                .first()
            )
            if stored is not None:
                # A retry (or a reuse): the request is answered without its plan.
                return Snapshot(stored_answer=StoredAnswer(*stored[:3], stored[3].encode()))
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
            event_rows = (
                UserEvent.objects.filter(
                    lookup, organization_id=request.organization_id, ingested=True
                )
                .order_by("pk")
                .values_list(
                    "event_id", "condition", "source", "source_id", "event_name", "event_at"
                )
            )
            found += [(*row[:5], _ms(row[5])) for row in event_rows]
        return Snapshot(
            records=records,
            fired=frozenset(fired),
            user_events=known_user_events(found),
        )

    def write(self, plan: IngestPlan) -> None:
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
            user_event_from_row(organization_id, plan.request_id, now, row)
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
        RecordHistory.objects.bulk_create(
            RecordHistory(
                organization_id=organization_id,
                data_model_id=h.model_id,
                key=h.key,
                request_id=plan.request_id,
                action=h.action,
                source=plan.source,
                changes=h.changes,
                created_at=now,
            )
            for h in plan.history
        )
        deliveries_create(organization_id, plan.request_id, now, plan.deliveries)
        if plan.idempotency is not None:
            idempotency = plan.idempotency
            # A row already there has expired (the read found none live): replaced.
            IdempotencyKey.objects.bulk_create(
                [
                    IdempotencyKey(
                        organization_id=organization_id,
                        key=idempotency.key,
                        fingerprint=idempotency.fingerprint,
                        request_id=plan.request_id,
                        status=plan.status,
                        body=plan.content.decode(),
                        created_at=now,
                        expires_at=idempotency.expires_at,
                    )
                ],
                update_conflicts=True,
                unique_fields=["organization", "key"],
                update_fields=[
                    "fingerprint",
                    "request_id",
                    "status",
                    "body",
                    "created_at",
                    "expires_at",
                ],
            )
        written_ms = (time.perf_counter() - began) * 1000
        log_row_create(organization_id, plan.request_id, now, plan.log, written_ms=written_ms)


def user_event_from_row(
    organization_id: int, request_id: str, now: datetime, row: EventRow
) -> UserEvent:
    """The UserEvent an event row of a plan stores."""
    columns = {c: getattr(row, c) for c in EVENT_COLUMNS if c != "event_at_ms"}
    return UserEvent(
        organization_id=organization_id,
        request_id=request_id,
        created_at=now,
        event_at=datetime.fromtimestamp(row.event_at_ms / 1000, tz=UTC),
        **columns,
    )


def deliveries_create(
    organization_id: int, request_id: str, now: datetime, deliveries: Sequence[dict[str, Any]]
) -> None:
    """Destination delivery rows (ingestion/destinations.py `deliveries_plan`) through the
    ORM: the portable writer's and a backfill's. PostgreSQL's ingest write has its CTE."""
    DestinationDelivery.objects.bulk_create(
        DestinationDelivery(
            organization_id=organization_id,
            destination_id=d["destination_id"],
            webhook_id=d["webhook_id"],
            request_id=request_id,
            event_ids=d["event_ids"],
            next_attempt_at=now,
            created_at=now,
        )
        for d in deliveries
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


def writer(*, read_only: bool = False) -> PostgresWriter | PortableWriter:
    """The writer for the default database; `read_only` for a dry run, which reads
    without transaction or lock and writes nothing."""
    kind = PostgresWriter if connection.vendor == "postgresql" else PortableWriter
    return kind(read_only=read_only)
