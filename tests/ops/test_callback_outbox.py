"""The outbox row is written in the ingest request's own transaction: with the records it
reports, never without them, one INSERT whatever the number of entries."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import IntegrityError

from cdp.models import EntityRecord
from ingestion import pipeline
from ingestion.models import CallbackDelivery, IngestionRequest
from tests.ops.conftest import callback_enable, ingest, member

URL = "https://partner.example/cdp-callback"


def deliveries(tenant):
    return CallbackDelivery.objects.filter(organization=tenant.organization)


def test_ingest_writes_one_outbox_row_when_the_callback_is_on(
    client, tenant_a, token_a, tenant_b, token_b
):
    callback_enable(tenant_a, URL)

    response = ingest(client, tenant_a, token_a, [member(tenant_a, "R-1"), {"refId": "R-2"}])
    ingest(client, tenant_b, token_b, [member(tenant_b, "R-1")])

    delivery = deliveries(tenant_a).get()
    body = response.json()
    assert delivery.request_id == body["requestId"]
    assert delivery.api_key_prefix == tenant_a.raw_key[:8]
    assert delivery.entries == 2
    assert json.loads(delivery.body) == {
        "data": {
            "R-1": {"status": 200, "cdpId": body["results"][0]["cdpId"]},
            "R-2": {"status": 101, "errorMessage": body["results"][1]["errorMessage"]},
        }
    }
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert delivery.next_attempt_at == delivery.created_at
    assert not deliveries(tenant_b).exists()  # B's callback is off


def test_every_entry_rejected_still_reports_the_rejections(client, tenant_a, token_a):
    callback_enable(tenant_a, URL)

    response = ingest(client, tenant_a, token_a, [{"refId": "R-1"}])

    assert response.status_code == 400
    assert json.loads(deliveries(tenant_a).get().body)["data"]["R-1"]["status"] == 101


def test_refused_request_and_callback_off_write_no_row(client, tenant_a, token_a):
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])  # callback off
    callback_enable(tenant_a, URL)
    refused = client.post(
        "/dhub-i/api/v1.0/ingest",
        data=json.dumps({"objectType": "nope", "source": "CRM", "entries": [{}]}),
        content_type="application/json",
        headers={"TOKEN": token_a, "API_KEY": tenant_a.raw_key},
    )

    assert refused.json()["errorCode"] == "INVALID_OBJECT_TYPE"
    assert not deliveries(tenant_a).exists()


def test_a_rolled_back_ingest_leaves_no_outbox_row(tenant_a, failing_log_write):
    callback_enable(tenant_a, URL)

    with pytest.raises(IntegrityError):
        pipeline.ingest(
            organization=tenant_a.organization,
            api_key=tenant_a.api_key,
            request_id=uuid.uuid4().hex,
            data={
                "objectType": "custom-model",
                "source": "CRM",
                "entries": [member(tenant_a, "R-1")],
            },
            init_data=False,
        )

    assert not deliveries(tenant_a).exists()
    assert not EntityRecord.objects.filter(organization=tenant_a.organization).exists()
    assert not IngestionRequest.objects.filter(organization=tenant_a.organization).exists()


def test_an_import_without_key_queues_a_callback_without_key_prefix(tenant_a):
    callback_enable(tenant_a, URL)

    pipeline.ingest(
        organization=tenant_a.organization,
        api_key=None,
        request_id=uuid.uuid4().hex,
        data={
            "objectType": "custom-model",
            "source": "import",
            "entries": [member(tenant_a, "R-1")],
        },
        init_data=False,
    )

    assert deliveries(tenant_a).get().api_key_prefix == ""
