"""Tenant-leading keys on PostgreSQL: every tenant table's primary key becomes
(organization_id, id) and every foreign key between tenant tables
(organization_id, x_id) → (organization_id, id), as Citus requires of tables distributed
by organization_id (docs/scale-out.md). Django keeps its single-column `id` (the Console
is Django's admin, which refuses composite primary keys); the foreign key fields are
`db_constraint=False` since the migrations before this one, and the database keeps the
constraints written here.

One migration for the three apps' tables, after every app's own: a primary key can only
change once no single-column key points at it, and the reverse restores the primary keys
before the apps' migrations put their single-column keys back. SQLite keeps the shape it
had (a single-column primary key, no constraint on those columns).

Listed here, not read from the code: a migration is history and must not change.
"""

from django.db import migrations

TENANT_TABLES = [
    "cdp_apikey",
    "cdp_authtoken",
    "cdp_datamodel",
    "cdp_entityrecord",
    "cdp_fielddefinition",
    "cdp_membership",
    "ingestion_callbackdelivery",
    "ingestion_idempotencykey",
    "ingestion_ingestionrequest",
    "ingestion_recordhistory",
    "journeys_journeyeventconfig",
    "journeys_userevent",
]

# (table, column, referenced table)
TENANT_FOREIGN_KEYS = [
    ("cdp_apikey", "membership_id", "cdp_membership"),
    ("cdp_authtoken", "api_key_id", "cdp_apikey"),
    ("cdp_entityrecord", "data_model_id", "cdp_datamodel"),
    ("cdp_fielddefinition", "data_model_id", "cdp_datamodel"),
    ("ingestion_ingestionrequest", "api_key_id", "cdp_apikey"),
    ("ingestion_ingestionrequest", "config_id", "journeys_journeyeventconfig"),
    ("ingestion_recordhistory", "data_model_id", "cdp_datamodel"),
    ("journeys_journeyeventconfig", "data_model_id", "cdp_datamodel"),
    ("journeys_userevent", "config_id", "journeys_journeyeventconfig"),
]


def _foreign_key_name(table: str, column: str) -> str:
    return f"{table}_{column.removesuffix('_id')}_tenant_fk"


def tenant_keys(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TENANT_TABLES:
        schema_editor.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
            f"ADD CONSTRAINT {table}_pkey PRIMARY KEY (organization_id, id)"
        )
    for table, column, parent in TENANT_FOREIGN_KEYS:
        # Deferred, as Django's own: a transaction may write a row before its parent.
        schema_editor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {_foreign_key_name(table, column)} "
            f"FOREIGN KEY (organization_id, {column}) REFERENCES {parent} (organization_id, id) "
            "DEFERRABLE INITIALLY DEFERRED"
        )


def single_column_keys(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column, _parent in TENANT_FOREIGN_KEYS:
        schema_editor.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {_foreign_key_name(table, column)}"
        )
    for table in TENANT_TABLES:
        schema_editor.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
            f"ADD CONSTRAINT {table}_pkey PRIMARY KEY (id)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("cdp", "0006_tenant_foreign_keys_in_sql"),
        ("ingestion", "0008_tenant_foreign_keys_in_sql"),
        ("journeys", "0009_tenant_foreign_keys_in_sql"),
    ]

    operations = [migrations.RunPython(tenant_keys, single_column_keys)]
