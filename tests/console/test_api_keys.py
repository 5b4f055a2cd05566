"""API keys in the Console: created through api_key_create, the raw key shown once (on the
creation response, never again), revoked through api_key_revoke."""

from __future__ import annotations

from cdp import keys, services
from cdp.models import ApiKey, AuthToken
from tests.console.conftest import console_member, url


def _create(console, tenant, name="crm-sync", membership=None):
    return console.post(
        url("cdp_apikey_add"),
        {
            "organization": tenant.organization.pk,
            "membership": (membership or tenant.membership).pk,
            "name": name,
        },
    )


def test_the_create_form_preselects_the_organization_and_the_members_own_membership(
    console, admin_a, tenant_a
):
    console.force_login(admin_a)

    form = console.get(url("cdp_apikey_add") + f"?organization={tenant_a.organization.pk}").context[
        "form"
    ]

    assert form.initial == {
        "organization": tenant_a.organization.pk,
        "membership": tenant_a.membership.pk,
    }


def test_the_raw_key_is_shown_once_and_on_no_later_page(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = _create(console, tenant_a)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = response.context["raw_key"]
    api_key = ApiKey.objects.get(organization=tenant_a.organization, name="crm-sync")
    assert keys.API_KEY_RE.match(raw) and raw.startswith(api_key.prefix)
    assert keys.digest_matches(raw, api_key.digest)
    assert api_key.membership == tenant_a.membership and api_key.created_by == admin_a
    page = response.content.decode()
    assert f'<code id="api-key-raw" class="copy-source">{raw}</code>' in page
    assert 'data-copy-target="api-key-raw"' in page
    assert "shown this once" in page
    # Nowhere afterwards: the list, the key's page, the organization, its history.
    for later in (
        url("cdp_apikey_changelist"),
        url("cdp_apikey_change", api_key.pk),
        url("cdp_apikey_history", api_key.pk),
        url("cdp_organization_change", tenant_a.organization.pk),
        url("cdp_apikey_add"),
        url("index"),
    ):
        later_page = console.get(later)
        assert later_page.status_code == 200, later
        assert raw not in later_page.content.decode(), later
        assert api_key.digest not in later_page.content.decode(), later
    assert api_key.prefix in console.get(url("cdp_apikey_changelist")).content.decode()


def test_a_key_can_be_created_for_another_member_of_the_organization(console, admin_a, tenant_a):
    integration = console_member(tenant_a, "integration@acme.test", "viewer")
    membership = integration.memberships.get()
    console.force_login(admin_a)

    response = _create(console, tenant_a, name="erp", membership=membership)

    api_key = ApiKey.objects.get(name="erp")
    assert api_key.membership == membership
    assert keys.digest_matches(response.context["raw_key"], api_key.digest)
    # The key works on the Authentication API as that member.
    assert (
        services.api_key_authenticate(
            group_key=tenant_a.group_key,
            username="integration@acme.test",
            raw_key=response.context["raw_key"],
        )
        == api_key
    )


def test_a_member_of_another_organization_cannot_be_given_a_key(
    console, admin_a, tenant_a, tenant_b
):
    console.force_login(admin_a)

    response = console.post(
        url("cdp_apikey_add"),
        {
            "organization": tenant_a.organization.pk,
            "membership": tenant_b.membership.pk,
            "name": "intruder",
        },
    )
    mixed = console.post(
        url("cdp_apikey_add"),
        {
            "organization": tenant_b.organization.pk,
            "membership": tenant_a.membership.pk,
            "name": "intruder",
        },
    )

    assert response.status_code == 200 and "membership" in response.context["form"].errors
    assert mixed.status_code == 200 and "organization" in mixed.context["form"].errors
    assert "raw_key" not in response.context and "raw_key" not in mixed.context
    assert not ApiKey.objects.filter(name="intruder").exists()


def test_a_blank_name_is_refused(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = _create(console, tenant_a, name="")

    assert "name" in response.context["form"].errors
    assert ApiKey.objects.filter(organization=tenant_a.organization).count() == 1


def test_revoking_goes_through_the_service_and_kills_the_tokens(
    console, admin_a, tenant_a, tenant_b
):
    services.token_issue(api_key=tenant_a.api_key)
    console.force_login(admin_a)

    response = console.post(
        url("cdp_apikey_changelist"),
        {
            "action": "revoke_selected",
            "_selected_action": [tenant_a.api_key.pk, tenant_b.api_key.pk],
        },
        follow=True,
    )

    tenant_a.api_key.refresh_from_db()
    tenant_b.api_key.refresh_from_db()
    assert tenant_a.api_key.revoked_at is not None
    assert not AuthToken.objects.filter(api_key=tenant_a.api_key).exists()
    assert tenant_b.api_key.revoked_at is None  # not in A's list, so not selectable
    assert "Revoked 1 API key(s)" in response.content.decode()
    listing = console.get(url("cdp_apikey_changelist") + "?status=revoked")
    assert list(listing.context["cl"].result_list) == [tenant_a.api_key]


def test_a_key_page_is_read_only(console, admin_a, tenant_a):
    console.force_login(admin_a)

    page = console.get(url("cdp_apikey_change", tenant_a.api_key.pk))

    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert tenant_a.api_key.prefix in page.content.decode()
    response = console.post(url("cdp_apikey_change", tenant_a.api_key.pk), {"name": "renamed"})
    assert response.status_code == 403
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).name == "ingest"
