"""Roles in the Console: viewers read everything of their organization and change nothing;
editors also change models, fields and User Events; only admins and owners manage members,
API keys and the organization. Who may sign in at all: staff users with a membership."""

from __future__ import annotations

import pytest

from cdp import services
from cdp.models import ApiKey, DataModel, FieldDefinition, Membership
from journeys.models import JourneyEventConfig
from tests.console.conftest import PASSWORD, form_data, url, user_event_create


def test_anonymous_visitors_are_sent_to_the_login_page(console, tenant_a):
    response = console.get(url("cdp_datamodel_changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(url("login"))


def test_a_member_without_staff_status_cannot_sign_in(console, tenant_a):
    # tenant_a.user is an admin of A, but console_access_grant was never called.
    response = console.post(
        url("login"), {"username": tenant_a.username, "password": PASSWORD}, follow=True
    )

    assert "Please enter the correct username and password for a staff account" in (
        response.content.decode()
    )
    assert console.get(url("index")).status_code == 302


def test_a_staff_user_without_membership_is_refused(console, db):
    user = services.user_create(username="drifter@cdp.test", password=PASSWORD)
    services.console_access_grant(user=user)
    console.force_login(user)

    response = console.get(url("index"))

    assert response.status_code == 302
    assert response["Location"].startswith(url("login"))


def test_index_names_the_sections_in_the_consoles_words(console, admin_a):
    console.force_login(admin_a)

    page = console.get(url("index")).content.decode()

    assert "<title>" in page and "cdp Console" in page
    for name in (
        "Setup",
        "Custom Model",
        "Organization",
        "API keys",
        "Data Manipulation",
        "User Event",
        "Event log",
        "Data Ingestion",
        "Ingestion log",
    ):
        assert name in page, name


# --- viewer ---------------------------------------------------------------------------


def test_a_viewer_reads_but_cannot_add(console, viewer_a, tenant_a):
    console.force_login(viewer_a)

    listing = console.get(url("cdp_datamodel_changelist"))
    assert listing.status_code == 200
    assert tenant_a.model in listing.context["cl"].result_list
    assert url("cdp_datamodel_add") not in listing.content.decode()
    for name in ("cdp_datamodel", "journeys_journeyeventconfig", "cdp_apikey"):
        assert console.get(url(f"{name}_add")).status_code == 403, name
    assert console.post(url("cdp_datamodel_add"), {"name": "Sneaky"}).status_code == 403
    assert not DataModel.objects.filter(name="Sneaky").exists()


def test_a_viewer_sees_a_read_only_model_page_and_cannot_post_to_it(console, viewer_a, tenant_a):
    console.force_login(viewer_a)
    change_url = url("cdp_datamodel_change", tenant_a.model.pk)

    page = console.get(change_url)
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert 'name="_save"' not in page.content.decode()
    assert "customFieldLong01" in page.content.decode()  # the fields, read-only
    assert "Your role lets you read this model only" in page.content.decode()

    response = console.post(change_url, {"tags": []})
    assert response.status_code == 403
    assert DataModel.objects.get(pk=tenant_a.model.pk).tags == ["SUPPORT_IGNORED_UPDATE_CFS"]


def test_a_viewer_cannot_change_a_user_event_nor_send_a_test_payload(console, viewer_a, tenant_a):
    config = user_event_create(tenant_a)
    console.force_login(viewer_a)

    page = console.get(url("journeys_journeyeventconfig_change", config.pk))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert (
        console.post(
            url("journeys_journeyeventconfig_change", config.pk), {"event_name": "renamed"}
        ).status_code
        == 403
    )
    assert JourneyEventConfig.objects.get(pk=config.pk).event_name == "membership_created"

    test_ingest = url("cdp_datamodel_test_ingest", tenant_a.model.pk)
    assert console.get(test_ingest).status_code == 403
    assert console.post(test_ingest, {"payload": "{}"}).status_code == 403


# --- editor ---------------------------------------------------------------------------


def test_an_editor_changes_models_fields_and_user_events(console, editor_a, tenant_a):
    console.force_login(editor_a)

    created = console.post(
        url("cdp_datamodel_add"), {"organization": tenant_a.organization.pk, "name": "Loyalty"}
    )
    assert created.status_code == 302
    model = DataModel.objects.get(organization=tenant_a.organization, name="Loyalty")

    page = console.get(url("cdp_datamodel_change", model.pk))
    data = form_data(page)
    data.update({"field_definitions-0-name": "customField07", "field_definitions-0-label": "Tier"})
    assert console.post(url("cdp_datamodel_change", model.pk), data).status_code == 302
    assert FieldDefinition.objects.filter(data_model=model, name="customField07").exists()

    assert console.get(url("journeys_journeyeventconfig_add")).status_code == 200


def test_an_editor_cannot_manage_api_keys(console, editor_a, tenant_a):
    console.force_login(editor_a)

    listing = console.get(url("cdp_apikey_changelist"))
    assert listing.status_code == 200
    assert tenant_a.api_key in listing.context["cl"].result_list
    assert "revoke_selected" not in listing.content.decode()
    assert url("cdp_apikey_add") not in listing.content.decode()
    assert console.get(url("cdp_apikey_add")).status_code == 403
    assert (
        console.post(
            url("cdp_apikey_add"),
            {
                "organization": tenant_a.organization.pk,
                "membership": tenant_a.membership.pk,
                "name": "sneaky",
            },
        ).status_code
        == 403
    )
    revoke = console.post(
        url("cdp_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [tenant_a.api_key.pk]},
    )
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).revoked_at is None
    assert revoke.status_code in (200, 302)
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_an_editor_cannot_manage_members_nor_the_organization(console, editor_a, tenant_a):
    console.force_login(editor_a)
    change_url = url("cdp_organization_change", tenant_a.organization.pk)

    page = console.get(change_url)
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert 'name="_save"' not in page.content.decode()
    assert "ops@acme.test" in page.content.decode()  # members are listed, read-only

    response = console.post(
        change_url,
        {
            "name": "Renamed",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-0-username": "friend@acme.test",
            "memberships-0-role": "owner",
        },
    )
    assert response.status_code == 403
    tenant_a.organization.refresh_from_db()
    assert tenant_a.organization.name == "Acme Retail"
    assert not Membership.objects.filter(user__username="friend@acme.test").exists()


@pytest.mark.parametrize("role", ["admin", "owner"])
def test_admins_and_owners_manage_api_keys_and_members(console, tenant_a, role):
    from tests.console.conftest import console_member

    user = console_member(tenant_a, f"{role}2@acme.test", role)
    console.force_login(user)

    assert console.get(url("cdp_apikey_add")).status_code == 200
    page = console.get(url("cdp_organization_change", tenant_a.organization.pk))
    assert page.context["has_change_permission"]
    assert 'name="_save"' in page.content.decode()
