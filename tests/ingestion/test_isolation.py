"""Two organizations through the Data Ingestion and Read APIs: neither can write, read or
see the other's records or log (DESIGN §4 tenancy rules)."""

from __future__ import annotations

import pytest

from cdp.models import EntityRecord
from ingestion.models import IngestionRequest

pytestmark = pytest.mark.django_db

RECORDS_URL = "/dhub-i/api/v1.0/records"

ORDER = {
    "orderId": "O-1",
    "orderStatus": "new",
    "customerId": "C-1",
    "customerName": "Ann",
    "customerEmail": "ann@example.test",
    "items": [{"productSku": "SKU-1", "productName": "Tea"}],
}


def _read(api, object_type: str, key: str, mom_code: str | None = None):
    query = {"momCode": mom_code} if mom_code else {}
    return api.client.get(
        f"{RECORDS_URL}/{object_type}/{key}",
        query,
        headers={"TOKEN": api.token, "API_KEY": api.tenant.raw_key},
    )


def test_same_ref_id_in_two_organizations_is_two_records(api_a, api_b):
    a = api_a.post([api_a.entry("R-1", customField01="from A")])
    b = api_b.post([api_b.entry("R-1", customField01="from B")])

    a_result, b_result = a.json()["results"][0], b.json()["results"][0]
    assert a_result["action"] == b_result["action"] == "created"
    assert a_result["cdpId"] != b_result["cdpId"]
    assert api_a.data("R-1") == {"refId": "R-1", "customField01": "from A"}
    assert api_b.data("R-1") == {"refId": "R-1", "customField01": "from B"}
    assert EntityRecord.objects.filter(key="R-1").count() == 2


def test_a_cannot_write_into_bs_model(api_a, api_b):
    api_b.post([api_b.entry("R-1", customField01="B's value")])
    before = api_b.record("R-1")
    b_mom_code = api_b.tenant.mom_code

    response = api_a.post(
        [
            {"momCode": b_mom_code, "refId": "R-1", "customField01": "overwritten"},
            {"momCode": b_mom_code, "refId": "R-2", "customField01": "new"},
        ]
    )

    body = response.json()
    assert response.status_code == 400
    assert body["errorCode"] == "INVALID_ENTRIES"
    assert [r["errorMessage"] for r in body["results"]] == [f"Unknown momCode: {b_mom_code}"] * 2
    after = api_b.record("R-1")
    assert (after.data, after.updated_at) == (before.data, before.updated_at)
    assert list(api_b.records().values_list("key", flat=True)) == ["R-1"]
    assert not EntityRecord.objects.filter(organization=api_a.tenant.organization).exists()


def test_a_cannot_name_bs_fields_in_ignored_update_cfs(api_a, api_b):
    api_b.custom_model("B only", ["customField42"])

    response = api_a.post([api_a.entry("R-1")], ignored=["customField42"])

    assert response.status_code == 400
    assert response.json()["message"] == "Invalid value of: ignoredUpdateCfs"
    assert not api_a.records().exists()


def test_a_cannot_read_bs_records(api_a, api_b):
    api_b.post([api_b.entry("R-1", customField01="secret")])
    api_b.post([ORDER], object_type="order")

    own = _read(api_b, "custom-model", "R-1", api_b.tenant.mom_code)
    assert own.status_code == 200
    assert own.json()["record"]["data"]["customField01"] == "secret"

    for response in (
        _read(api_a, "custom-model", "R-1", api_b.tenant.mom_code),
        _read(api_a, "custom-model", "R-1", api_a.tenant.mom_code),
        _read(api_a, "order", "O-1"),
    ):
        body = response.json()
        assert response.status_code == 404, body
        assert body["errorCode"] == "NOT_FOUND"
        assert "secret" not in response.content.decode()


def test_as_token_does_not_open_bs_api_key(api_a, api_b):
    response = api_a.post(
        [api_b.entry("R-1")], headers={"TOKEN": api_a.token, "API_KEY": api_b.tenant.raw_key}
    )

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid token or API key"
    assert not EntityRecord.objects.exists()


def test_each_organizations_log_holds_only_its_own_requests(api_a, api_b):
    a_ids = {
        api_a.post([api_a.entry("R-1")]).json()["requestId"],
        api_a.post([{"refId": "no momCode"}]).json()["requestId"],
        api_a.post([api_b.entry("R-1")]).json()["requestId"],  # B's momCode, sent by A
    }
    b_ids = {api_b.post([api_b.entry("R-1")]).json()["requestId"]}

    b_logged = set(api_b.log().values_list("request_id", flat=True))
    a_logged = set(api_a.log().values_list("request_id", flat=True))
    assert b_logged == b_ids
    assert a_logged == a_ids
    assert IngestionRequest.objects.filter(request_id__in=a_ids).count() == 3
    assert set(
        IngestionRequest.objects.filter(request_id__in=a_ids).values_list(
            "organization_id", flat=True
        )
    ) == {api_a.tenant.organization.pk}
