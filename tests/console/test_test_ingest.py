"""The Data Ingestion API tab: a sample payload built from the model's fields, and a form
that sends a payload through the real pipeline as the signed-in member, with one of their
own API keys, and shows the API's answer."""

from __future__ import annotations

import html
import json

import pytest
from django.test import override_settings

from cdp import services
from cdp.models import EntityRecord
from ingestion.models import IngestionRequest
from journeys.models import UserEvent
from tests.console.conftest import console_member, url, user_event_create


def _sample(page: str) -> dict:
    text = page.split('<pre id="sample-payload" class="copy-source">')[1].split("</pre>")[0]
    return json.loads(html.unescape(text))


def test_the_sample_payload_is_built_from_the_models_fields(console, admin_a, tenant_a):
    console.force_login(admin_a)

    page = console.get(url("cdp_datamodel_change", tenant_a.model.pk)).content.decode()

    sample = _sample(page)
    assert sample["objectType"] == "custom-model"
    assert sample["source"] == "Console"
    assert sample["jeConfigId"] is None and sample["jeEventKey"] is None
    assert sample["ignoredUpdateCfs"] == []
    (entry,) = sample["entries"]
    assert entry["momCode"] == tenant_a.mom_code
    assert entry["refId"]
    assert entry["customFieldTexts"] == {"customField01": "example", "customField02": "example"}
    assert entry["customFieldLongs"] == {"customFieldLong01": 100}
    assert set(entry["customFieldDoubles"]) == {"customFieldDouble01"}
    assert entry["customFieldBooleans"] == {"customFieldBool01": True}
    assert isinstance(entry["customFieldTimestamps"]["customFieldTimestamp01"], int)
    assert entry["customFieldListTexts"] == {"customFieldList01": ["example"]}
    assert 'data-copy-target="sample-payload"' in page
    assert 'id="test-ingest-form"' in page
    assert f'action="{url("cdp_datamodel_test_ingest", tenant_a.model.pk)}"' in page


def test_sending_the_sample_stores_a_record_and_shows_the_response(console, admin_a, tenant_a):
    console.force_login(admin_a)
    page = console.get(url("cdp_datamodel_change", tenant_a.model.pk)).content.decode()
    sample = _sample(page)

    response = console.post(
        url("cdp_datamodel_test_ingest", tenant_a.model.pk),
        {"api_key": tenant_a.api_key.pk, "payload": json.dumps(sample)},
    )

    assert response.status_code == 200
    assert response.context["result"].status == 200
    body = response.context["result"].body
    assert body["success"] is True and body["created"] == 1
    record = EntityRecord.objects.get(organization=tenant_a.organization)
    assert record.key == sample["entries"][0]["refId"]
    assert record.data["customFieldLong01"] == 100
    assert record.source == "Console"
    logged = IngestionRequest.objects.get(organization=tenant_a.organization)
    assert logged.api_key == tenant_a.api_key
    assert logged.request_id == body["requestId"] == response["X-Request-Id"]
    assert (logged.status, logged.created) == (200, 1)
    page = response.content.decode()
    assert '<strong id="test-ingest-status"' in page and ">200</strong>" in page
    shown = page.split('<pre id="test-ingest-response" class="copy-source">')[1].split("</pre>")[0]
    assert json.loads(html.unescape(shown)) == body
    assert record.cdp_id in page


def test_a_payload_naming_a_user_event_fires_it(console, admin_a, tenant_a):
    config = user_event_create(tenant_a)
    console.force_login(admin_a)
    payload = {
        "objectType": "custom-model",
        "source": "Console",
        "jeConfigId": config.config_id,
        "entries": [{"momCode": tenant_a.mom_code, "refId": "R-1"}],
    }

    response = console.post(
        url("cdp_datamodel_test_ingest", tenant_a.model.pk),
        {"api_key": tenant_a.api_key.pk, "payload": json.dumps(payload)},
    )

    assert response.context["result"].body["events"]["generated"] == 1
    assert UserEvent.objects.get(organization=tenant_a.organization).config == config


def test_init_data_suppresses_events(console, admin_a, tenant_a):
    config = user_event_create(tenant_a)
    console.force_login(admin_a)
    payload = {
        "objectType": "custom-model",
        "source": "Console",
        "jeEventKey": config.event_key,
        "entries": [{"momCode": tenant_a.mom_code, "refId": "R-1"}],
    }

    response = console.post(
        url("cdp_datamodel_test_ingest", tenant_a.model.pk),
        {"api_key": tenant_a.api_key.pk, "payload": json.dumps(payload), "init_data": "on"},
    )

    assert response.context["result"].body["events"] == {
        "generated": 0,
        "suppressed": 1,
        "dropped": 0,
    }
    assert not UserEvent.objects.exists()


@pytest.mark.parametrize(
    ("payload", "status", "error_code"),
    [
        ("{not json", 400, "INVALID_JSON"),
        ('{"objectType": "custom-model"}', 400, "MISSING_INFO"),
        ('{"objectType": "nope", "source": "x", "entries": [{}]}', 400, "INVALID_OBJECT_TYPE"),
    ],
)
def test_a_refused_payload_shows_the_apis_error_body_and_is_logged(
    console, admin_a, tenant_a, payload, status, error_code
):
    console.force_login(admin_a)

    response = console.post(
        url("cdp_datamodel_test_ingest", tenant_a.model.pk),
        {"api_key": tenant_a.api_key.pk, "payload": payload},
    )

    result = response.context["result"]
    assert (result.status, result.body["errorCode"], result.body["success"]) == (
        status,
        error_code,
        False,
    )
    assert error_code in response.content.decode()
    assert IngestionRequest.objects.get(organization=tenant_a.organization).error_code == error_code
    assert not EntityRecord.objects.exists()


@override_settings(CDP_INGEST_RATE_LIMITS=[(1, 60)])
def test_test_payloads_count_against_the_keys_rate_limit(console, admin_a, tenant_a):
    console.force_login(admin_a)
    payload = json.dumps(
        {
            "objectType": "custom-model",
            "source": "Console",
            "entries": [{"momCode": tenant_a.mom_code, "refId": "R-1"}],
        }
    )
    test_ingest = url("cdp_datamodel_test_ingest", tenant_a.model.pk)

    first = console.post(test_ingest, {"api_key": tenant_a.api_key.pk, "payload": payload})
    second = console.post(test_ingest, {"api_key": tenant_a.api_key.pk, "payload": payload})

    assert first.context["result"].status == 200
    assert second.context["result"].status == 429
    assert second.context["result"].body["errorCode"] == "RATE_LIMITED"


def test_only_the_members_own_unrevoked_keys_can_be_used(console, admin_a, tenant_a, tenant_b):
    other_member = console_member(tenant_a, "colleague@acme.test", "admin")
    colleague_key, _raw = services.api_key_create(
        membership=other_member.memberships.get(), name="theirs"
    )
    revoked, _raw = services.api_key_create(membership=tenant_a.membership, name="old")
    services.api_key_revoke(organization=tenant_a.organization, api_key_id=revoked.pk)
    console.force_login(admin_a)
    test_ingest = url("cdp_datamodel_test_ingest", tenant_a.model.pk)

    form = console.get(test_ingest).context["test_form"]
    assert list(form.fields["api_key"].queryset) == [tenant_a.api_key]

    for key in (colleague_key, revoked, tenant_b.api_key):
        response = console.post(test_ingest, {"api_key": key.pk, "payload": "{}"})
        assert "api_key" in response.context["test_form"].errors
        assert response.context["result"] is None
    assert not IngestionRequest.objects.exists()


def test_a_member_without_a_key_is_told_how_to_get_one(console, tenant_a):
    editor = console_member(tenant_a, "editor@acme.test", "editor")
    owner = console_member(tenant_a, "owner@acme.test", "owner")

    console.force_login(editor)
    page = console.get(url("cdp_datamodel_change", tenant_a.model.pk)).content.decode()
    assert 'id="test-ingest-no-key"' in page
    assert "Ask an owner or admin" in page
    assert 'id="test-ingest-form"' not in page

    console.force_login(owner)
    page = console.get(url("cdp_datamodel_change", tenant_a.model.pk)).content.decode()
    create = url("cdp_apikey_add") + f"?organization={tenant_a.organization.pk}"
    assert f'href="{create}" id="create-api-key-link"' in page

    response = console.post(url("cdp_datamodel_test_ingest", tenant_a.model.pk), {"payload": "{}"})
    assert response.context["result"] is None
    assert not IngestionRequest.objects.exists()


def test_a_system_models_sample_is_accepted_as_it_is(console, admin_a, tenant_a):
    from cdp.models import DataModel

    console.force_login(admin_a)
    for object_type in ("order", "customer-identity", "lead-information", "user-event"):
        model = DataModel.objects.get(organization=tenant_a.organization, object_type=object_type)
        page = console.get(url("cdp_datamodel_change", model.pk)).content.decode()

        response = console.post(
            url("cdp_datamodel_test_ingest", model.pk),
            {"api_key": tenant_a.api_key.pk, "payload": json.dumps(_sample(page))},
        )

        body = response.context["result"].body
        assert (response.context["result"].status, body["failed"]) == (200, 0), body
