"""The rules Citus enforces on tables distributed by organization_id, checked on the
migrated PostgreSQL schema (Citus itself is not installable here): a schema that passes
can be distributed without rewriting a key (docs/scale-out.md, cdp/distribution.py).

- every table is a tenant table (it has organization_id), or is named as a reference or
  a local table;
- a tenant table's primary key, unique constraints and unique indexes (partial ones too)
  include organization_id;
- a foreign key from a tenant table to another carries organization_id on both sides;
  one to a reference table is fine; none points at a local table;
- a reference table points at reference tables only.

The last test shows the check failing on a model that breaks them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import connection, models, transaction
from django.test.utils import isolate_apps

from cdp.distribution import DISTRIBUTION_COLUMN, LOCAL_TABLES, REFERENCE_TABLES
from cdp.models import DataModel, Organization

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the rules are Citus's, on the PostgreSQL schema")


@dataclass(frozen=True)
class Key:
    table: str
    name: str
    kind: str  # p, u, f, or i (a unique index that is no constraint)
    columns: tuple[str, ...]
    referenced_table: str | None = None
    referenced_columns: tuple[str, ...] = ()


def schema_keys() -> tuple[dict[str, set[str]], list[Key]]:
    """Every table of the public schema with its columns, and every primary key, unique
    constraint, unique index and foreign key."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname, a.attname FROM pg_class c
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               WHERE c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace"""
        )
        tables: dict[str, set[str]] = {}
        for table, column in cursor.fetchall():
            tables.setdefault(table, set()).add(column)
        cursor.execute(
            """SELECT con.conrelid::regclass::text, con.conname, con.contype,
                      ARRAY(SELECT attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                            JOIN pg_attribute ON attrelid = con.conrelid AND attnum = k.n
                            ORDER BY k.i),
                      con.confrelid::regclass::text,
                      ARRAY(SELECT attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                            JOIN pg_attribute ON attrelid = con.confrelid AND attnum = k.n
                            ORDER BY k.i)
               FROM pg_constraint con
               WHERE con.contype IN ('p', 'u', 'f')
                 AND con.connamespace = 'public'::regnamespace"""
        )
        keys = [
            Key(table, name, kind, tuple(columns), None if kind != "f" else parent, tuple(refs))
            for table, name, kind, columns, parent, refs in cursor.fetchall()
        ]
        cursor.execute(
            """SELECT t.relname, i.relname,
                      ARRAY(SELECT attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, i)
                            JOIN pg_attribute ON attrelid = t.oid AND attnum = k.n
                            ORDER BY k.i)
               FROM pg_index x
               JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_class t ON t.oid = x.indrelid
               WHERE x.indisunique AND t.relnamespace = 'public'::regnamespace
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = x.indexrelid)"""
        )
        keys += [Key(table, name, "i", tuple(columns)) for table, name, columns in cursor]
    return tables, keys


def violations() -> list[str]:
    tables, keys = schema_keys()
    tenant = {table for table, columns in tables.items() if DISTRIBUTION_COLUMN in columns}
    named = set(REFERENCE_TABLES) | set(LOCAL_TABLES)
    found = [
        f"{table}: neither a tenant table (no {DISTRIBUTION_COLUMN}) nor named as a "
        "reference or local table in cdp/distribution.py"
        for table in sorted(set(tables) - tenant - named)
    ]
    found += [
        f"{table}: named in cdp/distribution.py but has {DISTRIBUTION_COLUMN}"
        for table in sorted(tenant & named)
    ]
    found += [f"{table}: named but not in the schema" for table in sorted(named - set(tables))]
    for key in sorted(keys, key=lambda k: (k.table, k.name)):
        if key.table in tenant and key.kind in "pui" and DISTRIBUTION_COLUMN not in key.columns:
            what = {"p": "primary key", "u": "unique constraint", "i": "unique index"}
            found.append(
                f"{key.table}: {what[key.kind]} {key.name} {key.columns} "
                f"lacks {DISTRIBUTION_COLUMN}"
            )
        if key.kind != "f":
            continue
        parent = key.referenced_table
        if key.table in tenant and parent in tenant:
            pairs = dict(zip(key.columns, key.referenced_columns, strict=True))
            if pairs.get(DISTRIBUTION_COLUMN) != DISTRIBUTION_COLUMN:
                found.append(
                    f"{key.table}: foreign key {key.name} {key.columns} → {parent} "
                    f"{key.referenced_columns} does not carry {DISTRIBUTION_COLUMN}"
                )
        elif key.table in tenant and parent in LOCAL_TABLES:
            found.append(f"{key.table}: foreign key {key.name} points at local table {parent}")
        elif key.table in REFERENCE_TABLES and parent not in REFERENCE_TABLES:
            found.append(f"{key.table}: reference table with foreign key {key.name} to {parent}")
    return found


def test_the_migrated_schema_keeps_every_rule():
    assert violations() == []


def test_the_tenant_tables_are_the_ones_the_docs_name():
    tables, _ = schema_keys()
    tenant = sorted(t for t, columns in tables.items() if DISTRIBUTION_COLUMN in columns)
    assert tenant == [
        "cdp_apikey",
        "cdp_authtoken",
        "cdp_datamodel",
        "cdp_entityrecord",
        "cdp_erasurerequest",
        "cdp_fielddefinition",
        "cdp_membership",
        "ingestion_callbackdelivery",
        "ingestion_destination",
        "ingestion_destinationdelivery",
        "ingestion_idempotencykey",
        "ingestion_ingestionrequest",
        "ingestion_recordhistory",
        "journeys_journeyeventconfig",
        "journeys_userevent",
    ]


def test_every_tenant_primary_key_is_organization_then_id():
    _, keys = schema_keys()
    primary = {k.table: k.columns for k in keys if k.kind == "p"}
    tables, _ = schema_keys()
    for table, columns in tables.items():
        if DISTRIBUTION_COLUMN in columns:
            assert primary[table] == ("organization_id", "id"), table


@isolate_apps("cdp")
def test_a_model_that_breaks_the_rules_is_caught():
    """New models as a careless migration would create them: a single-column primary
    key and a unique code of its own; a table of a tenant's data without organization."""

    class Coupon(models.Model):  # noqa: DJ008
        organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
        code = models.CharField(max_length=20, unique=True)

        class Meta:
            app_label = "cdp"
            db_table = "cdp_coupon"

    class Note(models.Model):  # noqa: DJ008
        text = models.TextField()

        class Meta:
            app_label = "cdp"
            db_table = "cdp_note"

    with transaction.atomic():
        with connection.schema_editor(atomic=False) as editor:
            editor.create_model(Coupon)
            editor.create_model(Note)
        found = violations()
        transaction.set_rollback(True)

    assert found == [
        "cdp_note: neither a tenant table (no organization_id) nor named as a reference or "
        "local table in cdp/distribution.py",
        "cdp_coupon: unique constraint cdp_coupon_code_key ('code',) lacks organization_id",
        "cdp_coupon: primary key cdp_coupon_pkey ('id',) lacks organization_id",
    ]
    assert violations() == []


@isolate_apps("cdp")
def test_a_plain_foreign_key_to_a_tenant_table_cannot_even_be_created():
    """The database refuses what Citus would: a key to `id` alone matches no unique key
    of a tenant table any more. A new model's key to one is `db_constraint=False`, with
    the tenant-leading constraint in SQL, as ingestion's migration 0009 writes them."""

    class Coupon(models.Model):  # noqa: DJ008
        organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
        data_model = models.ForeignKey(DataModel, on_delete=models.CASCADE)

        class Meta:
            app_label = "cdp"
            db_table = "cdp_coupon"

    refused = pytest.raises(Exception, match="no unique constraint matching given keys")
    with refused, transaction.atomic(), connection.schema_editor(atomic=False) as editor:
        editor.create_model(Coupon)
