"""What an ingest request stores (DESIGN §6 write semantics, §9 nothing half-written).

Every test goes through HTTP and checks both the response body and the EntityRecord rows.
"""

from __future__ import annotations

import re

import pytest

from cdp import services
from cdp.identifiers import CDP_ID_RE
from cdp.models import EntityRecord
from ingestion.models import IngestionRequest

pytestmark = pytest.mark.django_db

REQUEST_ID_RE = re.compile(r"^[0-9a-f]{32}\Z")


def _results(response) -> list[tuple]:
    return [
        (r["index"], r["refId"], r["status"], r.get("action")) for r in response.json()["results"]
    ]


def _counts(response) -> dict[str, int]:
    body = response.json()
    return {k: body[k] for k in ("total", "created", "updated", "unchanged", "failed")}


# --- create, merge, clear, replace ---------------------------------------------------------


def test_create_then_partial_update_keeps_absent_fields(api_a):
    created = api_a.post(
        [
            api_a.entry(
                "R-1",
                customerId="C-1",
                phone="0901",
                customFieldTexts={"customField01": "gold"},
                customFieldLongs={"customFieldLong01": 3},
            )
        ]
    )
    assert created.status_code == 200, created.content
    assert created.json()["results"][0]["action"] == "created"

    updated = api_a.post([api_a.entry("R-1", customFieldTexts={"customField02": "Bob"})])

    assert updated.status_code == 200, updated.content
    assert updated.json()["results"][0]["action"] == "updated"
    assert api_a.data("R-1") == {
        "refId": "R-1",
        "customerId": "C-1",
        "phone": "0901",
        "customField01": "gold",
        "customField02": "Bob",
        "customFieldLong01": 3,
    }


def test_explicit_null_clears_a_field(api_a):
    api_a.post(
        [
            api_a.entry(
                "R-1",
                phone="0901",
                customField02="Bob",
                customFieldTexts={"customField01": "gold"},
                customFieldLongs={"customFieldLong01": 3},
            )
        ]
    )

    response = api_a.post(
        [
            api_a.entry(
                "R-1",
                phone=None,
                customField02=None,  # flat
                customFieldTexts={"customField01": None},  # grouped
            )
        ]
    )

    assert response.json()["results"][0]["action"] == "updated"
    data = api_a.data("R-1")
    assert data == {"refId": "R-1", "customFieldLong01": 3}
    assert "customField01" not in data and "phone" not in data


def test_null_for_a_field_never_stored_is_unchanged(api_a):
    api_a.post([api_a.entry("R-1", customField01="gold")])

    response = api_a.post([api_a.entry("R-1", customField02=None, email=None)])

    assert response.json()["results"][0]["action"] == "unchanged"
    assert api_a.data("R-1") == {"refId": "R-1", "customField01": "gold"}


def test_a_list_replaces_the_stored_list(api_a):
    api_a.post(
        [
            api_a.entry(
                "R-1",
                tags=["a", "b"],
                customFieldListTexts={"customFieldList01": ["x", "y", "z"]},
            )
        ]
    )

    response = api_a.post(
        [api_a.entry("R-1", tags=["c"], customFieldListTexts={"customFieldList01": ["y"]})]
    )

    assert response.json()["results"][0]["action"] == "updated"
    data = api_a.data("R-1")
    assert data["tags"] == ["c"]
    assert data["customFieldList01"] == ["y"]

    api_a.post([api_a.entry("R-1", customFieldListTexts={"customFieldList01": []})])
    assert api_a.data("R-1")["customFieldList01"] == []
    assert api_a.data("R-1")["tags"] == ["c"]


# --- ignoredUpdateCfs ------------------------------------------------------------------------


def test_ignored_fields_keep_stored_values_on_update(api_a):
    api_a.post(
        [
            api_a.entry(
                "R-1",
                customFieldTexts={"customField01": "gold", "customField02": "Bob"},
                customFieldLongs={"customFieldLong01": 1},
            )
        ]
    )

    response = api_a.post(
        [
            api_a.entry(
                "R-1",
                customFieldTexts={"customField01": "silver", "customField02": None},
                customFieldLongs={"customFieldLong01": 2},
            )
        ],
        ignored=["customField01", "customField02"],
    )

    body = response.json()
    assert response.status_code == 200, body
    assert body["results"][0]["action"] == "updated"
    assert body["warnings"] == []
    # Neither a new value nor an explicit null touches an ignored field.
    assert api_a.data("R-1") == {
        "refId": "R-1",
        "customField01": "gold",
        "customField02": "Bob",
        "customFieldLong01": 2,
    }


def test_ignored_fields_are_written_on_create(api_a):
    response = api_a.post(
        [api_a.entry("R-1", customFieldTexts={"customField01": "gold"})],
        ignored=["customField01"],
    )

    assert response.json()["results"][0]["action"] == "created"
    assert api_a.data("R-1") == {"refId": "R-1", "customField01": "gold"}


def test_update_of_ignored_fields_only_is_unchanged(api_a):
    api_a.post([api_a.entry("R-1", customField01="gold")])
    before = api_a.record("R-1")

    response = api_a.post([api_a.entry("R-1", customField01="silver")], ignored=["customField01"])

    assert response.json()["results"][0]["action"] == "unchanged"
    assert _counts(response)["unchanged"] == 1
    after = api_a.record("R-1")
    assert after.data == {"refId": "R-1", "customField01": "gold"}
    assert after.updated_at == before.updated_at


def test_untagged_custom_model_ignores_the_list_with_a_warning(api_a):
    plain = api_a.custom_model("Plain", ["customField01", "customFieldLong01"])
    entry = {"momCode": plain.mom_code, "refId": "P-1"}
    api_a.post([{**entry, "customField01": "gold"}], ignored=["customField01"])

    response = api_a.post(
        [
            {**entry, "customFieldTexts": {"customField01": "silver"}},
            api_a.entry("R-1", customField01="silver"),  # the tagged model, created here
        ],
        ignored=["customField01"],
    )

    body = response.json()
    assert response.status_code == 200, body
    assert _results(response) == [(0, "P-1", 200, "updated"), (1, "R-1", 200, "created")]
    assert api_a.data("P-1", plain) == {"refId": "P-1", "customField01": "silver"}
    assert len(body["warnings"]) == 1
    assert "ignoredUpdateCfs" in body["warnings"][0]
    assert "Plain" in body["warnings"][0]
    assert "Membership" not in body["warnings"][0]
    log = api_a.log().get(request_id=body["requestId"])
    assert log.warnings == body["warnings"]


def test_order_model_ignores_the_list_with_a_warning(api_a):
    order = api_a.system_model("order")
    services.field_definition_create(
        organization=api_a.tenant.organization, data_model=order, name="customField01"
    )
    entry = {
        "orderId": "O-1",
        "orderStatus": "new",
        "customerId": "C-1",
        "customerName": "Ann",
        "customerEmail": "ann@example.test",
        "items": [{"productSku": "SKU-1", "productName": "Tea"}],
    }
    first = api_a.post([{**entry, "customField01": "gold"}], object_type="order")
    assert first.json()["results"][0]["action"] == "created", first.content

    response = api_a.post(
        [{**entry, "customFieldTexts": {"customField01": "silver"}}],
        object_type="order",
        ignored=["customField01"],
    )

    body = response.json()
    assert body["success"] is True, body
    assert body["results"][0]["action"] == "updated"
    assert len(body["warnings"]) == 1 and "ignoredUpdateCfs" in body["warnings"][0]
    assert api_a.data("O-1", order)["customField01"] == "silver"


# --- unchanged, repeated keys, cdpId --------------------------------------------------------


def test_unchanged_resend_does_not_touch_the_row(api_a):
    entry = api_a.entry(
        "R-1",
        customerId="C-1",
        customFieldLongs={"customFieldLong01": 3},
        customFieldListTexts={"customFieldList01": ["a", "b"]},
    )
    first = api_a.post([entry])
    before = api_a.record("R-1")

    # The same values, in the forms coercion accepts, are the same record.
    again = api_a.post(
        [{**entry, "customFieldLongs": {"customFieldLong01": "3"}}], source="another-source"
    )

    assert again.status_code == 200, again.content
    assert _counts(again) == {"total": 1, "created": 0, "updated": 0, "unchanged": 1, "failed": 0}
    result = again.json()["results"][0]
    assert result["action"] == "unchanged"
    assert result["cdpId"] == first.json()["results"][0]["cdpId"]
    after = api_a.record("R-1")
    assert after.updated_at == before.updated_at
    assert after.data == before.data
    assert after.source == "CRM"


def test_repeated_key_behaves_as_two_requests_in_sequence(api_a):
    response = api_a.post(
        [
            api_a.entry("R-1", customField01="gold"),
            api_a.entry("R-1", customFieldLongs={"customFieldLong01": 7}),
            api_a.entry("R-2", customField01="x"),
            api_a.entry("R-2", customField01="x"),
        ]
    )

    body = response.json()
    assert body["success"] is True, body
    assert _results(response) == [
        (0, "R-1", 200, "created"),
        (1, "R-1", 200, "updated"),
        (2, "R-2", 200, "created"),
        (3, "R-2", 200, "unchanged"),
    ]
    assert _counts(response) == {
        "total": 4,
        "created": 2,
        "updated": 1,
        "unchanged": 1,
        "failed": 0,
    }
    results = body["results"]
    assert results[0]["cdpId"] == results[1]["cdpId"] == api_a.record("R-1").cdp_id
    assert results[2]["cdpId"] == results[3]["cdpId"] == api_a.record("R-2").cdp_id
    assert api_a.records().count() == 2
    assert api_a.data("R-1") == {"refId": "R-1", "customField01": "gold", "customFieldLong01": 7}


def test_repeated_existing_key_is_updated_twice_in_order(api_a):
    api_a.post([api_a.entry("R-1", customField01="a", customField02="keep")])

    response = api_a.post(
        [api_a.entry("R-1", customField01="b"), api_a.entry("R-1", customField01="c")]
    )

    assert _results(response) == [(0, "R-1", 200, "updated"), (1, "R-1", 200, "updated")]
    assert api_a.data("R-1") == {"refId": "R-1", "customField01": "c", "customField02": "keep"}


def test_ignored_fields_apply_to_the_second_occurrence_of_a_new_key(api_a):
    response = api_a.post(
        [
            api_a.entry("R-1", customField01="gold", customField02="a"),
            api_a.entry("R-1", customField01="silver", customField02="b"),
            api_a.entry("R-2", customField01="gold"),
            api_a.entry("R-2", customField01="silver"),
        ],
        ignored=["customField01"],
    )

    assert _results(response) == [
        (0, "R-1", 200, "created"),
        (1, "R-1", 200, "updated"),
        (2, "R-2", 200, "created"),
        (3, "R-2", 200, "unchanged"),
    ]
    assert api_a.data("R-1") == {"refId": "R-1", "customField01": "gold", "customField02": "b"}
    assert api_a.data("R-2") == {"refId": "R-2", "customField01": "gold"}


def test_cdp_id_is_twenty_alphanumerics_and_stable_across_updates(api_a):
    first = api_a.post([api_a.entry("R-1", customField01="a"), api_a.entry("R-2")])
    cdp_id = first.json()["results"][0]["cdpId"]
    assert CDP_ID_RE.match(cdp_id)
    assert re.fullmatch(r"[A-Za-z0-9]{20}", cdp_id)
    assert cdp_id != first.json()["results"][1]["cdpId"]
    assert api_a.record("R-1").cdp_id == cdp_id

    updated = api_a.post([api_a.entry("R-1", customField01="b")])
    unchanged = api_a.post([api_a.entry("R-1", customField01="b")])

    assert updated.json()["results"][0]["cdpId"] == cdp_id
    assert unchanged.json()["results"][0]["cdpId"] == cdp_id
    assert api_a.record("R-1").cdp_id == cdp_id


# --- response counts and results ------------------------------------------------------------


def test_mixed_batch_answers_exact_counts_and_results(api_a):
    api_a.post([api_a.entry("OLD-1", customField01="a"), api_a.entry("OLD-2", customField01="a")])

    response = api_a.post(
        [
            api_a.entry("NEW-1", customField01="a"),
            api_a.entry("OLD-1", customField01="changed"),
            api_a.entry("OLD-2", customField01="a"),
            api_a.entry("BAD-1", customFieldLongs={"customFieldLong01": "4.2"}),
            {"refId": "BAD-2"},
        ]
    )

    assert response.status_code == 200
    body = response.json()
    assert REQUEST_ID_RE.match(body["requestId"])
    assert response["X-Request-Id"] == body["requestId"]
    ids = {key: api_a.record(key).cdp_id for key in ("NEW-1", "OLD-1", "OLD-2")}
    assert body == {
        "success": False,
        "errorCode": "INVALID_ENTRIES",
        "message": "2 of 5 entries rejected",
        "requestId": body["requestId"],
        "objectType": "custom-model",
        "initData": False,
        "total": 5,
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "failed": 2,
        "events": {"generated": 0, "suppressed": 0, "dropped": 0},
        "results": [
            {
                "index": 0,
                "refId": "NEW-1",
                "status": 200,
                "action": "created",
                "cdpId": ids["NEW-1"],
            },
            {
                "index": 1,
                "refId": "OLD-1",
                "status": 200,
                "action": "updated",
                "cdpId": ids["OLD-1"],
            },
            {
                "index": 2,
                "refId": "OLD-2",
                "status": 200,
                "action": "unchanged",
                "cdpId": ids["OLD-2"],
            },
            {
                "index": 3,
                "refId": "BAD-1",
                "status": 101,
                "errorMessage": "Invalid value of customFieldLongs.customFieldLong01: "
                "must be an integer",
            },
            {"index": 4, "refId": "BAD-2", "status": 101, "errorMessage": "Missing momCode"},
        ],
        "warnings": [],
    }
    assert not api_a.records().filter(key__in=["BAD-1", "BAD-2"]).exists()
    log = api_a.log().get(request_id=body["requestId"])
    assert (log.total, log.created, log.updated, log.unchanged, log.failed) == (5, 1, 1, 1, 2)
    assert (log.status, log.error_code) == (200, "INVALID_ENTRIES")
    assert log.results == body["results"]


def test_success_only_when_no_entry_failed(api_a):
    response = api_a.post([api_a.entry("R-1"), api_a.entry("R-2")])

    body = response.json()
    assert response.status_code == 200
    assert body["success"] is True
    assert "errorCode" not in body and "message" not in body
    assert _counts(response) == {
        "total": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
    }


def test_one_of_two_rejected_answers_200_with_invalid_entries(api_a):
    response = api_a.post([api_a.entry("R-1", customerId="C-1"), {"refId": "R-2"}])

    body = response.json()
    assert response.status_code == 200
    assert body["success"] is False
    assert body["errorCode"] == "INVALID_ENTRIES"
    assert body["message"] == "1 of 2 entries rejected"
    assert _counts(response) == {
        "total": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "failed": 1,
    }
    assert body["results"][1] == {
        "index": 1,
        "refId": "R-2",
        "status": 101,
        "errorMessage": "Missing momCode",
    }
    assert list(api_a.records().values_list("key", flat=True)) == ["R-1"]


def test_every_entry_rejected_answers_400_with_the_full_body(api_a):
    response = api_a.post([{"refId": "R-1"}, api_a.entry("R-2", bogus=1)])

    body = response.json()
    assert response.status_code == 400
    assert body["success"] is False
    assert body["errorCode"] == "INVALID_ENTRIES"
    assert body["message"] == "2 of 2 entries rejected"
    assert _counts(response) == {
        "total": 2,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "failed": 2,
    }
    assert body["events"] == {"generated": 0, "suppressed": 0, "dropped": 0}
    assert body["warnings"] == []
    assert [r["errorMessage"] for r in body["results"]] == [
        "Missing momCode",
        "Unknown field: bogus",
    ]
    assert not api_a.records().exists()
    log = api_a.log().get(request_id=body["requestId"])
    assert (log.status, log.failed) == (400, 2)


def test_a_rejected_entry_never_stops_the_others(api_a):
    entries = [api_a.entry(f"R-{i}", customField01=f"v{i}") for i in range(6)]
    entries[0] = api_a.entry("R-0", customFieldBooleans={"customFieldBool01": "maybe"})
    entries[3] = "not an object"
    entries[5] = api_a.entry("R-5", unknownField="x")

    response = api_a.post(entries)

    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [101, 200, 200, 101, 200, 101]
    assert response.json()["results"][3] == {
        "index": 3,
        "refId": None,
        "status": 101,
        "errorMessage": "Entry must be a JSON object",
    }
    assert sorted(api_a.records().values_list("key", flat=True)) == ["R-1", "R-2", "R-4"]


def test_grouped_and_flat_custom_fields_are_stored_flat(api_a):
    response = api_a.post(
        [
            api_a.entry(
                "R-1",
                customField01="flat",
                customFieldLong01=5,
                customFieldTexts={"customField02": "grouped"},
                customFieldDoubles={"customFieldDouble01": 2.5},
                customFieldBooleans={"customFieldBool01": True},
                customFieldTimestamps={"customFieldTimestamp01": 1704164645000},
                customFieldListTexts={"customFieldList01": ["a"]},
            )
        ]
    )

    assert response.json()["success"] is True, response.content
    assert api_a.data("R-1") == {
        "refId": "R-1",
        "customField01": "flat",
        "customField02": "grouped",
        "customFieldLong01": 5,
        "customFieldDouble01": 2.5,
        "customFieldBool01": True,
        "customFieldTimestamp01": 1704164645000,
        "customFieldList01": ["a"],
    }


# --- nothing half-written -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_failing_write_outside_any_transaction_is_rolled_back(tenant_a, tenant_b, request):
    # The writer opens and commits the transaction itself here (no test transaction).
    from tests.ingestion.conftest import ingest_for

    api = ingest_for(tenant_a)
    api.post([api.entry("OLD-1", customField01="before")])
    request.getfixturevalue("failing_log_write")
    api.client.raise_request_exception = False

    response = api.post([api.entry("NEW-1"), api.entry("OLD-1", customField01="after")])

    assert response.status_code == 500
    assert list(api.records().values_list("key", "data")) == [
        ("OLD-1", {"refId": "OLD-1", "customField01": "before"})
    ]
    assert IngestionRequest.objects.filter(organization=tenant_a.organization).count() == 1
    # The connection is left clean: the next request goes through.
    request.getfixturevalue("monkeypatch").undo()
    assert api.post([api.entry("NEW-2")]).json()["created"] == 1
    assert not EntityRecord.objects.filter(organization=tenant_b.organization).exists()


def test_a_failing_log_write_stores_nothing(api_a, request):
    api_a.post([api_a.entry("OLD-1", customField01="before")])
    before = api_a.record("OLD-1")
    logged = IngestionRequest.objects.count()

    request.getfixturevalue("failing_log_write")
    api_a.client.raise_request_exception = False
    response = api_a.post(
        [api_a.entry("NEW-1", customField01="x"), api_a.entry("OLD-1", customField01="after")]
    )

    assert response.status_code == 500
    assert not api_a.records().filter(key="NEW-1").exists()
    after = api_a.record("OLD-1")
    assert after.data == {"refId": "OLD-1", "customField01": "before"}
    assert after.updated_at == before.updated_at
    assert EntityRecord.objects.count() == 1
    assert IngestionRequest.objects.count() == logged


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_prepared_statements_the_same_plans_are_written(tenant_a, tenant_b, settings):
    """Behind a transaction-pooling proxy (CDP_PREPARED_STATEMENTS off) the statements
    travel whole: same answers, same rows, for records, events and an import-sized plan."""
    from cdp.callback_settings import callback_settings_set
    from journeys.models import UserEvent
    from journeys.services import journey_event_config_create
    from journeys.user_event_settings import UserEventSettings
    from tests.ingestion.conftest import ingest_for

    settings.CDP_PREPARED_STATEMENTS = False
    callback_settings_set(
        organization=tenant_a.organization, url="https://partner.example/cb", enabled=True
    )
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Created",
        settings=UserEventSettings(event_name="member_created", category="UserIdentity"),
    )
    api = ingest_for(tenant_a)
    first = api.post([api.entry("R-1", customField01="a")], jeConfigId=config.config_id).json()
    again = api.post(
        [api.entry("R-1", customField01="b"), api.entry("R-2")], jeConfigId=config.config_id
    ).json()

    assert (first["created"], first["events"]["generated"]) == (1, 1)
    assert (again["created"], again["updated"], again["events"]["generated"]) == (1, 1, 1)
    assert api.data("R-1") == {"refId": "R-1", "customField01": "b"}
    assert UserEvent.objects.filter(organization=tenant_a.organization).count() == 2
    assert not EntityRecord.objects.filter(organization=tenant_b.organization).exists()
