"""The documents every ingest request writes once and rarely reads (its log row's results
and warnings, its stored answer, its callback's body) are compressed with lz4 instead of
pglz on PostgreSQL. A 50-entry request's results pass the 2 kB at which PostgreSQL
compresses a value; pglz was 2.4 % of the database's CPU for `create`, and lz4 costs
PostgreSQL about 0.09 ms less per such request (docs/performance.md). Only values
written from now on: the change is to the columns' settings, no row is rewritten.

A server built without lz4 keeps pglz (its `default_toast_compression` does not list
lz4); SQLite has no such setting."""

from django.db import migrations

COLUMNS = (
    ("ingestion_ingestionrequest", "results"),
    ("ingestion_ingestionrequest", "warnings"),
    ("ingestion_idempotencykey", "body"),
    ("ingestion_callbackdelivery", "body"),
)


def lz4_available(connection) -> bool:
    """Whether this database is PostgreSQL built with lz4."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
            " WHERE name = 'default_toast_compression'"
        )
        return cursor.fetchone()[0]


def _compression(method: str):
    def alter(apps, schema_editor):
        connection = schema_editor.connection
        if not lz4_available(connection):
            return
        quote = connection.ops.quote_name
        for table, column in COLUMNS:
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column)} SET COMPRESSION {method}"
            )

    return alter


class Migration(migrations.Migration):
    dependencies = [
        ("ingestion", "0013_redundant_organization_keys"),
    ]

    operations = [
        migrations.RunPython(_compression("lz4"), _compression("default")),
    ]
