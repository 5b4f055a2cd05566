"""Every Console page shows a member only their organizations' objects (DESIGN §4, §8):
another tenant's object answers 404, as a missing one does, and choices list only the
member's own objects. A superuser sees every organization."""

from __future__ import annotations

import json
import uuid

import pytest

from cdp.models import ApiKey, DataModel, Organization
from ingestion.console import console_ingest
from ingestion.models import IngestionRequest
from journeys.models import JourneyEventConfig, UserEvent
from tests.console.conftest import url, user_event_create

ADMINS = [
    "cdp_organization",
    "cdp_datamodel",
    "cdp_apikey",
    "journeys_journeyeventconfig",
    "journeys_userevent",
    "ingestion_ingestionrequest",
]


def _objects(tenant) -> dict[str, object]:
    """One object of every Console page for `tenant`, made through the real pipeline."""
    config = user_event_create(tenant)
    body = {
        "objectType": "custom-model",
        "source": "CRM",
        "jeConfigId": config.config_id,
        "entries": [{"momCode": tenant.mom_code, "refId": f"R-{tenant.username}"}],
    }
    response = console_ingest(
        api_key=tenant.api_key,
        body=json.dumps(body),
        init_data=False,
        request_id=uuid.uuid4().hex,
    )
    assert response.status == 200, response.body
    organization = tenant.organization
    return {
        "cdp_organization": organization,
        "cdp_datamodel": tenant.model,
        "cdp_apikey": tenant.api_key,
        "journeys_journeyeventconfig": config,
        "journeys_userevent": UserEvent.objects.get(organization=organization),
        "ingestion_ingestionrequest": IngestionRequest.objects.get(organization=organization),
    }


@pytest.fixture
def objects_a(tenant_a):
    return _objects(tenant_a)


@pytest.fixture
def objects_b(tenant_b):
    return _objects(tenant_b)


@pytest.fixture
def signed_in_a(console, admin_a, objects_a, objects_b):
    console.force_login(admin_a)
    return console


@pytest.mark.parametrize("admin_name", ADMINS)
def test_changelist_lists_only_the_members_objects(signed_in_a, objects_a, objects_b, admin_name):
    query = {}
    if admin_name == "cdp_organization":
        # A member of one organization is sent to its page (never another's); a search
        # still shows the list.
        bare = signed_in_a.get(url(f"{admin_name}_changelist"))
        assert bare.status_code == 302
        assert bare["Location"] == url(f"{admin_name}_change", objects_a[admin_name].pk)
        query = {"q": ""}
    response = signed_in_a.get(url(f"{admin_name}_changelist"), query)

    assert response.status_code == 200
    listed = {obj.pk for obj in response.context["cl"].result_list}
    assert objects_a[admin_name].pk in listed
    assert objects_b[admin_name].pk not in listed
    page = response.content.decode()
    assert url(f"{admin_name}_change", objects_a[admin_name].pk) in page
    assert url(f"{admin_name}_change", objects_b[admin_name].pk) not in page


@pytest.mark.parametrize("admin_name", ADMINS)
@pytest.mark.parametrize("page", ["change", "delete", "history"])
def test_another_tenants_object_is_404_like_a_missing_one(signed_in_a, objects_b, admin_name, page):
    other = signed_in_a.get(url(f"{admin_name}_{page}", objects_b[admin_name].pk))
    missing = signed_in_a.get(url(f"{admin_name}_{page}", 999_999))

    assert other.status_code == 404
    assert missing.status_code == 404


@pytest.mark.parametrize("admin_name", ADMINS)
def test_posting_to_another_tenants_object_is_404_and_changes_nothing(
    signed_in_a, objects_b, admin_name
):
    target = objects_b[admin_name]
    before = type(target).objects.filter(pk=target.pk).values().get()

    change = signed_in_a.post(url(f"{admin_name}_change", target.pk), {"name": "Hijacked"})
    delete = signed_in_a.post(url(f"{admin_name}_delete", target.pk), {"post": "yes"})

    assert change.status_code == 404
    assert delete.status_code == 404
    assert type(target).objects.filter(pk=target.pk).values().get() == before


@pytest.mark.parametrize("admin_name", ADMINS)
def test_own_object_pages_open_and_nothing_is_deleted_from_the_console(
    signed_in_a, objects_a, admin_name
):
    own = objects_a[admin_name]

    assert signed_in_a.get(url(f"{admin_name}_change", own.pk)).status_code == 200
    assert signed_in_a.get(url(f"{admin_name}_history", own.pk)).status_code == 200
    # Deleting is never offered: models, keys (revoked instead), User Events (disabled
    # instead) and logs stay.
    assert signed_in_a.get(url(f"{admin_name}_delete", own.pk)).status_code == 403
    assert signed_in_a.post(url(f"{admin_name}_delete", own.pk), {"post": "yes"}).status_code == 403
    assert type(own).objects.filter(pk=own.pk).exists()


def test_custom_views_answer_404_for_another_tenants_ids(signed_in_a, tenant_a, tenant_b):
    test_ingest_b = url("cdp_datamodel_test_ingest", tenant_b.model.pk)

    assert signed_in_a.get(test_ingest_b).status_code == 404
    assert signed_in_a.post(test_ingest_b, {"payload": "{}"}).status_code == 404
    assert (
        signed_in_a.get(url("cdp_apikey_add") + f"?organization={tenant_b.organization.pk}")
    ).status_code == 404
    assert (
        signed_in_a.get(url("journeys_journeyeventconfig_add") + f"?data_model={tenant_b.model.pk}")
    ).status_code == 404
    # The same pages for A's own ids open.
    assert signed_in_a.get(url("cdp_datamodel_test_ingest", tenant_a.model.pk)).status_code == 200
    assert (
        signed_in_a.get(url("cdp_apikey_add") + f"?organization={tenant_a.organization.pk}")
    ).status_code == 200
    assert (
        signed_in_a.get(url("journeys_journeyeventconfig_add") + f"?data_model={tenant_a.model.pk}")
    ).status_code == 200


def test_test_ingest_post_for_another_tenants_model_stores_nothing(signed_in_a, tenant_a, tenant_b):
    payload = {
        "objectType": "custom-model",
        "source": "Console",
        "entries": [{"momCode": tenant_b.mom_code, "refId": "INTRUDER"}],
    }
    logged = IngestionRequest.objects.count()

    response = signed_in_a.post(
        url("cdp_datamodel_test_ingest", tenant_b.model.pk),
        {"api_key": tenant_a.api_key.pk, "payload": json.dumps(payload)},
    )

    assert response.status_code == 404
    assert IngestionRequest.objects.count() == logged


def test_foreign_key_choices_hold_only_the_members_objects(signed_in_a, tenant_a, tenant_b):
    model_form = signed_in_a.get(url("cdp_datamodel_add")).context["adminform"].form
    assert list(model_form.fields["organization"].queryset) == [tenant_a.organization]

    event_form = signed_in_a.get(url("journeys_journeyeventconfig_add")).context["adminform"].form
    choices = set(event_form.fields["data_model"].queryset)
    assert choices == set(DataModel.objects.filter(organization=tenant_a.organization))
    assert tenant_b.model not in choices

    key_form = signed_in_a.get(url("cdp_apikey_add")).context["form"]
    assert list(key_form.fields["organization"].queryset) == [tenant_a.organization]
    assert {m.organization_id for m in key_form.fields["membership"].queryset} == {
        tenant_a.organization.pk
    }


def test_list_filters_offer_only_the_members_values(signed_in_a, objects_a, objects_b):
    response = signed_in_a.get(url("journeys_userevent_changelist"))
    page = response.content.decode()

    assert objects_a["journeys_journeyeventconfig"].config_id in page
    assert objects_b["journeys_journeyeventconfig"].config_id not in page
    assert "Globex" not in page
    assert "ops@globex.test" not in page


def test_a_superuser_sees_every_organization(console, superuser, objects_a, objects_b):
    console.force_login(superuser)

    for admin_name in ADMINS:
        response = console.get(url(f"{admin_name}_changelist"))
        listed = {obj.pk for obj in response.context["cl"].result_list}
        assert {objects_a[admin_name].pk, objects_b[admin_name].pk} <= listed, admin_name
        assert console.get(url(f"{admin_name}_change", objects_b[admin_name].pk)).status_code == 200

    form = console.get(url("cdp_datamodel_add")).context["adminform"].form
    assert set(form.fields["organization"].queryset) == set(Organization.objects.all())
    assert ApiKey.objects.count() == 2
    assert JourneyEventConfig.objects.count() == 2
