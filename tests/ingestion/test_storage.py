"""How PostgreSQL stores what each request writes once: the log row's results, the stored
answer and the callback's body are compressed with lz4 (migration 0014), and read back
as they were written."""

from __future__ import annotations

import importlib
import json

import pytest
from django.db import connection

from cdp.callback_settings import callback_settings_set
from ingestion.models import CallbackDelivery, IdempotencyKey, IngestionRequest

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

if connection.vendor != "postgresql":
    pytest.skip("PostgreSQL's column compression only", allow_module_level=True)


MIGRATION = importlib.import_module("ingestion.migrations.0014_lz4_request_documents")


def test_the_migration_sets_lz4_on_each_document_column():
    if not MIGRATION.lz4_available(connection):
        pytest.skip("this PostgreSQL was built without lz4")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attname, a.attcompression FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid WHERE a.attcompression <> ''"
            " AND c.relnamespace = 'public'::regnamespace"
        )
        compressed = {(table, column): method for table, column, method in cursor.fetchall()}
    # Those four, and no other column (records keep the default).
    assert compressed == {column: "l" for column in MIGRATION.COLUMNS}


def _compression(model, column: str, **lookup) -> str | None:
    """How PostgreSQL stored the row's value: 'lz4', 'pglz', or None when uncompressed."""
    row = model.objects.get(**lookup)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pg_column_compression({column}) FROM {model._meta.db_table} WHERE id = %s",
            [row.pk],
        )
        return cursor.fetchone()[0]


def test_a_large_requests_documents_are_compressed_with_lz4(api_a, api_b, tenant_a, tenant_b):
    if not MIGRATION.lz4_available(connection):
        pytest.skip("this PostgreSQL was built without lz4")
    callback_settings_set(
        organization=tenant_a.organization, url="https://partner.example/cb", enabled=True
    )
    entries = [api_a.entry(f"LZ4-{n:03d}", customField01=f"value {n}") for n in range(50)]
    headers = {"TOKEN": api_a.token, "API_KEY": tenant_a.raw_key, "Idempotency-Key": "lz4-1"}
    answer = api_a.post(entries, headers=headers)
    small = api_b.post([api_b.entry("ONE")])
    body = answer.json()
    assert (answer.status_code, body["created"]) == (200, 50)

    request_id = body["requestId"]
    log = {"organization": tenant_a.organization, "request_id": request_id}
    assert _compression(IngestionRequest, "results", **log) == "lz4"
    assert _compression(IdempotencyKey, "body", organization=tenant_a.organization) == "lz4"
    assert _compression(CallbackDelivery, "body", request_id=request_id) == "lz4"
    # Under 2 kB nothing is compressed: the other tenant's one-entry request.
    other = {"organization": tenant_b.organization, "request_id": small.json()["requestId"]}
    assert _compression(IngestionRequest, "results", **other) is None

    # Read back as written: the log's results, the stored answer, the callback's entries.
    logged = IngestionRequest.objects.get(**log)
    assert logged.results == body["results"] and len(body["results"]) == 50
    stored = IdempotencyKey.objects.get(organization=tenant_a.organization)
    assert json.loads(stored.body) == body
    delivered = json.loads(CallbackDelivery.objects.get(request_id=request_id).body)
    assert len(delivered["data"]) == 50
    assert not CallbackDelivery.objects.filter(organization=tenant_b.organization).exists()
