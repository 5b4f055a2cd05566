"""The organization's page: members and roles (member_invite / member_role_set /
member_remove), the group key read-only, its API keys, the callback settings (edited in
tests/console/test_callbacks.py)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from cdp.models import Membership
from tests.console.conftest import console_member, form_data, url


def _page(console, tenant):
    return console.get(url("cdp_organization_change", tenant.organization.pk))


def _member_rows(response):
    formset = response.context["inline_admin_formsets"][0].formset
    return formset, {
        form.instance.user.username: form for form in formset.forms if form.instance.pk
    }


def test_the_page_shows_group_key_members_keys_and_callback_settings(
    console, admin_a, tenant_a, tenant_b
):
    console_member(tenant_a, "viewer@acme.test", "viewer")
    console.force_login(admin_a)

    response = _page(console, tenant_a)

    page = response.content.decode()
    assert f'<code id="group-key" class="copy-source">{tenant_a.group_key}</code>' in page
    assert "group_key" not in response.context["adminform"].form.fields
    _formset, rows = _member_rows(response)
    assert set(rows) == {"ops@acme.test", "viewer@acme.test"}
    assert 'id="organization-api-keys"' in page and tenant_a.api_key.prefix in page
    assert tenant_b.api_key.prefix not in page
    assert "Callback settings" in page and "Owners and admins set the URL" in page
    # The callback URL and switch are edited here (tests/console/test_callbacks.py).
    assert {"callback_url", "callback_enabled"} <= set(response.context["adminform"].form.fields)
    assert url("cdp_apikey_add") + f"?organization={tenant_a.organization.pk}" in page


def test_renaming_goes_through_the_service(console, admin_a, tenant_a):
    console.force_login(admin_a)
    data = form_data(_page(console, tenant_a))
    data["name"] = "Acme Retail Group"

    assert (
        console.post(url("cdp_organization_change", tenant_a.organization.pk), data).status_code
        == 302
    )

    tenant_a.organization.refresh_from_db()
    assert tenant_a.organization.name == "Acme Retail Group"


def test_adding_a_member_creates_the_user_with_console_access(console, admin_a, tenant_a):
    console.force_login(admin_a)
    response = _page(console, tenant_a)
    formset, _rows = _member_rows(response)
    extra = len(formset.forms) - 1
    data = form_data(response)
    data.update(
        {f"memberships-{extra}-username": "new@acme.test", f"memberships-{extra}-role": "editor"}
    )

    result = console.post(url("cdp_organization_change", tenant_a.organization.pk), data)

    # The page that follows gives the new member's one-time set-password link
    # (tests/console/test_members_set_password.py has the rest of that flow).
    assert result.status_code == 200
    assert "/console/set-password/" in result.content.decode()
    assert "no-store" in result["Cache-Control"]
    membership = Membership.objects.get(user__username="new@acme.test")
    assert (membership.organization, membership.role) == (tenant_a.organization, "editor")
    assert membership.user.is_staff and not membership.user.has_usable_password()


def test_adding_an_existing_user_of_another_tenant_adds_the_membership(
    console, admin_a, tenant_a, tenant_b
):
    console.force_login(admin_a)
    response = _page(console, tenant_a)
    formset, _rows = _member_rows(response)
    extra = len(formset.forms) - 1
    data = form_data(response)
    data.update(
        {f"memberships-{extra}-username": tenant_b.username, f"memberships-{extra}-role": "viewer"}
    )

    console.post(url("cdp_organization_change", tenant_a.organization.pk), data)

    assert set(
        Membership.objects.filter(user=tenant_b.user).values_list("organization__name", "role")
    ) == {("Globex", "admin"), ("Acme Retail", "viewer")}
    assert get_user_model().objects.filter(username=tenant_b.username).count() == 1


def test_changing_a_role_and_removing_a_member(console, admin_a, tenant_a):
    console_member(tenant_a, "viewer@acme.test", "viewer")
    console_member(tenant_a, "leaver@acme.test", "editor")
    console.force_login(admin_a)
    response = _page(console, tenant_a)
    _formset, rows = _member_rows(response)
    data = form_data(response)
    data[f"{rows['viewer@acme.test'].prefix}-role"] = "editor"
    data[f"{rows['leaver@acme.test'].prefix}-DELETE"] = "on"

    result = console.post(url("cdp_organization_change", tenant_a.organization.pk), data)

    assert result.status_code == 302
    assert Membership.objects.get(user__username="viewer@acme.test").role == "editor"
    assert not Membership.objects.filter(user__username="leaver@acme.test").exists()


def test_the_last_admin_cannot_step_down_and_the_error_is_on_the_row(console, admin_a, tenant_a):
    console.force_login(admin_a)
    response = _page(console, tenant_a)
    _formset, rows = _member_rows(response)
    data = form_data(response)
    data[f"{rows['ops@acme.test'].prefix}-role"] = "viewer"
    data["name"] = "Renamed in the same post"

    result = console.post(url("cdp_organization_change", tenant_a.organization.pk), data)

    assert result.status_code == 200
    _formset, rows = _member_rows(result)
    assert "at least one owner or admin" in str(rows["ops@acme.test"].errors)
    assert tenant_a.membership.__class__.objects.get(pk=tenant_a.membership.pk).role == "admin"
    tenant_a.organization.refresh_from_db()
    assert tenant_a.organization.name == "Acme Retail"  # the whole post was rolled back


def test_inviting_someone_already_a_member_is_refused_on_the_row(console, admin_a, tenant_a):
    console.force_login(admin_a)
    response = _page(console, tenant_a)
    formset, _rows = _member_rows(response)
    extra = len(formset.forms) - 1
    data = form_data(response)
    data.update(
        {f"memberships-{extra}-username": "ops@acme.test", f"memberships-{extra}-role": "viewer"}
    )

    result = console.post(url("cdp_organization_change", tenant_a.organization.pk), data)

    assert result.status_code == 200
    formset = result.context["inline_admin_formsets"][0].formset
    assert "already a member" in str(formset.forms[extra].errors)
    assert Membership.objects.filter(organization=tenant_a.organization).count() == 1


def test_tenants_cannot_create_organizations_but_a_superuser_can(console, admin_a, superuser):
    console.force_login(admin_a)
    assert console.get(url("cdp_organization_add")).status_code == 403

    console.force_login(superuser)
    response = console.post(url("cdp_organization_add"), {"name": "Initech"})

    from cdp.models import DataModel, Organization

    created = Organization.objects.get(name="Initech")
    assert response.status_code == 302
    assert DataModel.objects.filter(organization=created).count() == 4  # its system models


def test_the_callback_signing_secret_is_never_shown(console, admin_a, tenant_a):
    from django.utils import timezone

    from cdp.models import Organization

    secret = "5ec2e7" * 10
    Organization.objects.filter(pk=tenant_a.organization.pk).update(
        callback_url="https://partner.example/cdp-callback",
        callback_secret=secret,
        callback_secret_set_at=timezone.now(),
    )
    console.force_login(admin_a)

    page = _page(console, tenant_a).content.decode()

    assert "https://partner.example/cdp-callback" in page
    assert "(not shown)" in page
    assert secret not in page
    assert (
        secret
        not in console.get(
            url("cdp_organization_history", tenant_a.organization.pk)
        ).content.decode()
    )
