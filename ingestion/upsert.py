"""Bulk upsert of validated entries into EntityRecord (DESIGN §6, §9).

Per request, on PostgreSQL: one transaction-level advisory lock per key, new or
existing, taken in one global order (so requests that share keys run one after the
other and cannot deadlock), and a `SELECT … FOR UPDATE` of the existing rows, both in
one round trip; the merge
of every entry computed in order (a repeated key behaves as two requests), then one
`INSERT … ON CONFLICT … DO UPDATE` for every row that changes. The statement merges
JSON in SQL, so a row written between our read and our write by anything that skips
the key locks is merged into, never overwritten: no field is lost. On SQLite
(development) the same plan ends with Django's `bulk_create(update_conflicts=True)`;
SQLite serializes writers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db import connection
from django.db.models import Q
from psycopg.types.json import Jsonb

from cdp.identifiers import cdp_id_generate
from cdp.models import EntityRecord, Organization
from ingestion.validation import ValidEntry

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@dataclass(frozen=True)
class StoredEntry:
    entry: ValidEntry
    action: str
    cdp_id: str
    record: dict[str, Any]  # the record's data right after this entry was applied

    @property
    def index(self) -> int:
        return self.entry.index


@dataclass
class _RowState:
    cdp_id: str
    data: dict[str, Any]
    is_new: bool
    # The folded patch (nulls kept) to merge into a row that appeared concurrently.
    conflict_patch: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False


def _merge(data: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(data)
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def _lock_id(organization_id: int, model_id: int, key: str) -> int:
    """A stable signed 64-bit advisory lock id for one record key (collisions only
    serialize two unrelated keys)."""
    name = f"cdp.entityrecord:{organization_id}:{model_id}:{key}".encode()
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)


# Two statements sent in one round trip (Django's PostgreSQL cursor binds client-side):
# first a transaction-level advisory lock on every key of the request, new or existing,
# in sorted order; then the existing rows, locked and read. Row locks alone are not
# enough: `SELECT … FOR UPDATE` can lock only rows that exist, and the INSERT then waits on
# keys another request is inserting while that request waits on a row we locked, a
# deadlock. With all key locks taken first in one global order, requests that share keys
# run one after the other. The second statement takes its snapshot after the locks, so it
# reads what the request before us committed.
_LOCK_AND_READ_SQL = """
SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k;
SELECT r.data_model_id, r.key, r.cdp_id, r.data
FROM {table} r
JOIN unnest(%s::bigint[], %s::text[]) AS p(model_id, key)
    ON r.data_model_id = p.model_id AND r.key = p.key
WHERE r.organization_id = %s
ORDER BY r.data_model_id, r.key
FOR UPDATE OF r
"""

Existing = dict[tuple[int, str], tuple[str, dict[str, Any]]]


def _lock_and_read_postgresql(
    organization: Organization, pairs: Collection[tuple[int, str]]
) -> Existing:
    ordered = sorted(pairs)
    lock_ids = sorted({_lock_id(organization.pk, model_id, key) for model_id, key in pairs})
    sql = _LOCK_AND_READ_SQL.format(table=connection.ops.quote_name(EntityRecord._meta.db_table))
    params = [lock_ids, [m for m, _ in ordered], [k for _, k in ordered], organization.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.cursor.nextset()
        rows = cursor.fetchall()
    # Django reads jsonb as text and leaves decoding to the field: decode it here.
    return {
        (model_id, key): (cdp_id, orjson.loads(data) if isinstance(data, str) else data)
        for model_id, key, cdp_id, data in rows
    }


def _lock_and_read(organization: Organization, pairs: Collection[tuple[int, str]]) -> Existing:
    """Lock the request's keys and read exactly its (model, key) rows that exist.

    One round trip of raw SQL on PostgreSQL (the ORM's `select_for_update` alone cost three
    times the statement); the ORM on SQLite, which serializes writers anyway.
    """
    if connection.vendor == "postgresql":
        return _lock_and_read_postgresql(organization, pairs)
    keys_by_model: dict[int, list[str]] = {}
    for model_id, key in sorted(pairs):
        keys_by_model.setdefault(model_id, []).append(key)
    exact = Q()
    for model_id, keys in keys_by_model.items():
        exact |= Q(data_model_id=model_id, key__in=keys)
    rows = (
        EntityRecord.objects.select_for_update()
        .filter(exact, organization=organization)
        .order_by("data_model_id", "key")
        .values_list("data_model_id", "key", "cdp_id", "data")
    )
    return {(model_id, key): (cdp_id, data) for model_id, key, cdp_id, data in rows}


def _apply_in_order(
    entries: Iterable[ValidEntry],
    existing: dict[tuple[int, str], tuple[str, dict[str, Any]]],
    ignored_fields: frozenset[str],
) -> tuple[list[StoredEntry], dict[tuple[int, str], _RowState]]:
    states: dict[tuple[int, str], _RowState] = {
        pair: _RowState(cdp_id=cdp_id, data=data, is_new=False)
        for pair, (cdp_id, data) in existing.items()
    }
    stored = []
    for entry in entries:
        pair = (entry.model.pk, entry.key)
        ignored = ignored_fields if entry.model.schema.supports_ignored_update_cfs else ()
        state = states.get(pair)
        if state is None:
            state = _RowState(
                cdp_id=cdp_id_generate(), data=_merge({}, entry.patch), is_new=True, dirty=True
            )
            state.conflict_patch = {k: v for k, v in entry.patch.items() if k not in ignored}
            states[pair] = state
            action = CREATED
        else:
            effective = {k: v for k, v in entry.patch.items() if k not in ignored}
            merged = _merge(state.data, effective)
            action = UNCHANGED if merged == state.data else UPDATED
            state.data = merged
            state.conflict_patch.update(effective)
            state.dirty = state.dirty or action == UPDATED
        stored.append(StoredEntry(entry, action, state.cdp_id, state.data))
    return stored, states


_UPSERT_SQL = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb)
        AS t(model_id bigint, key text, cdp_id text, data jsonb, patch jsonb, is_new boolean)
)
INSERT INTO {table} AS r
    (organization_id, data_model_id, key, cdp_id, data, source, created_at, updated_at)
SELECT %s, i.model_id, i.key, i.cdp_id, i.data, %s, %s, %s FROM input i
ORDER BY i.model_id, i.key
ON CONFLICT (organization_id, data_model_id, key) DO UPDATE
SET data = jsonb_strip_nulls(r.data || (
        SELECT i.patch FROM input i
        WHERE i.model_id = EXCLUDED.data_model_id AND i.key = EXCLUDED.key)),
    source = EXCLUDED.source,
    updated_at = EXCLUDED.updated_at
RETURNING r.data_model_id, r.key, r.cdp_id, r.data, (r.xmax = 0) AS inserted
"""


def _write_postgresql(
    organization: Organization,
    rows: dict[tuple[int, str], _RowState],
    source: str,
    now: datetime,
) -> dict[tuple[int, str], tuple[str, dict[str, Any], bool]]:
    payload = [
        {
            "model_id": model_id,
            "key": key,
            "cdp_id": state.cdp_id,
            "data": state.data,
            "patch": state.conflict_patch,
            "is_new": state.is_new,
        }
        for (model_id, key), state in rows.items()
    ]
    sql = _UPSERT_SQL.format(table=connection.ops.quote_name(EntityRecord._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql, [Jsonb(payload, dumps=orjson.dumps), organization.pk, source, now, now])
        return {
            (model_id, key): (cdp_id, data, inserted)
            for model_id, key, cdp_id, data, inserted in cursor.fetchall()
        }


def _write_portable(
    organization: Organization,
    rows: dict[tuple[int, str], _RowState],
    source: str,
    now: datetime,
) -> None:
    EntityRecord.objects.bulk_create(
        [
            EntityRecord(
                organization=organization,
                data_model_id=model_id,
                key=key,
                cdp_id=state.cdp_id,
                data=state.data,
                source=source,
                created_at=now,
                updated_at=now,
            )
            for (model_id, key), state in rows.items()
        ],
        update_conflicts=True,
        unique_fields=["organization", "data_model", "key"],
        update_fields=["data", "source", "updated_at"],
    )


def _reconcile_races(
    stored: list[StoredEntry],
    returned: dict[tuple[int, str], tuple[str, dict[str, Any], bool]],
    states: dict[tuple[int, str], _RowState],
) -> list[StoredEntry]:
    """A key we saw as new but another request inserted first was updated, not created."""
    raced = {
        pair
        for pair, (_cdp_id, _data, inserted) in returned.items()
        if states[pair].is_new and not inserted
    }
    if not raced:
        return stored
    fixed = []
    for item in stored:
        pair = (item.entry.model.pk, item.entry.key)
        if pair in raced:
            cdp_id, data, _inserted = returned[pair]
            action = UPDATED if item.action == CREATED else item.action
            item = StoredEntry(item.entry, action, cdp_id, data)
        fixed.append(item)
    return fixed


def records_upsert(
    *,
    organization: Organization,
    entries: list[ValidEntry],
    ignored_fields: frozenset[str],
    source: str,
    now: datetime,
) -> list[StoredEntry]:
    """Store `entries` in order; return one StoredEntry per entry, in the same order.

    `ignored_fields` keep their stored values on existing records of models tagged
    SUPPORT_IGNORED_UPDATE_CFS; they are written on new records. Must run inside the
    request's transaction. Two round trips, whatever the number or mix of entries.
    """
    if not entries:
        return []
    pairs = {(entry.model.pk, entry.key) for entry in entries}
    existing = _lock_and_read(organization, pairs)
    stored, states = _apply_in_order(entries, existing, ignored_fields)
    dirty = {pair: states[pair] for pair in sorted(states) if states[pair].dirty}
    if not dirty:
        return stored
    if connection.vendor == "postgresql":
        returned = _write_postgresql(organization, dirty, source, now)
        return _reconcile_races(stored, returned, states)
    _write_portable(organization, dirty, source, now)
    return stored
