"""A member added in the Console sets their own password: the page after saving shows,
once and uncached, a one-time link (Django's password-reset token) for the admin to hand
over; the link's page sets the password (validators apply), after which the member signs
in with their email, and the link works no more. Owners and admins of every organization
of the member make new links until the password is set; nobody else does."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.test import Client

from cdp import services
from cdp.models import Membership
from cdp.services.members import set_password_token_issue
from tests.console.conftest import PASSWORD, form_data, url

NEW_MEMBER = "new.member@acme.test"
NEW_PASSWORD = "violet-harbour-lantern-42"
LINK = re.compile(r"http://testserver/console/set-password/[A-Za-z0-9_-]+/[a-z0-9]+-[a-f0-9]+/")
DEAD = "This link was used or has expired; ask an admin for a new one."


@pytest.fixture(autouse=True)
def _fresh_attempts(db):
    from axes.models import AccessAttempt

    AccessAttempt.objects.all().delete()


def _org_url(tenant) -> str:
    return url("cdp_organization_change", tenant.organization.pk)


def _add_member(console: Client, tenant, username: str, role: str = "editor"):
    """POST the Organization page with one new member row, as the browser sends it."""
    page = console.get(_org_url(tenant))
    formset = page.context["inline_admin_formsets"][0].formset
    extra = len(formset.forms) - 1
    data = form_data(page)
    data.update({f"memberships-{extra}-username": username, f"memberships-{extra}-role": role})
    return console.post(_org_url(tenant), data)


def _links(response) -> list[str]:
    return LINK.findall(response.content.decode())


def _link_url(tenant, membership) -> str:
    return url("cdp_organization_member_set_password_link", tenant.organization.pk, membership.pk)


def _set_password(link: str, password: str = NEW_PASSWORD) -> tuple[Client, object]:
    """Open `link` signed out and submit `password` twice; (the client, the last answer)."""
    member = Client()
    opened = member.get(link)
    assert opened.status_code == 302  # the token moves to the session
    form_url = opened["Location"]
    assert form_url.endswith("/choose/") and link.rsplit("/", 2)[-2] not in form_url
    assert member.get(form_url).status_code == 200
    answer = member.post(form_url, {"new_password1": password, "new_password2": password})
    return member, answer


def _sign_in(client: Client, username: str, password: str):
    return client.post(url("login"), {"username": username, "password": password})


def _signed_in_as(client: Client, user) -> bool:
    return client.session.get("_auth_user_id") == str(user.pk)


def test_adding_a_member_shows_their_link_once_on_a_page_kept_by_no_cache(
    console, admin_a, tenant_a
):
    console.force_login(admin_a)

    saved = _add_member(console, tenant_a, NEW_MEMBER)

    assert saved.status_code == 200
    assert "no-store" in saved["Cache-Control"].split(", ")
    [link] = _links(saved)
    page = saved.content.decode()
    assert NEW_MEMBER in page and "shown this once" in page and "for 3\xa0days" in page
    assert 'class="button copy-button" data-copy-target="set-password-link-1"' in page
    user = get_user_model().objects.get(username=NEW_MEMBER)
    assert not user.has_usable_password()
    # Never again: not on the Organization page, in the history, the session or messages.
    token = link.rsplit("/", 2)[-2]
    again = console.get(_org_url(tenant_a)).content.decode()
    assert token not in again and not _links(console.get(_org_url(tenant_a)))
    history = console.get(url("cdp_organization_history", tenant_a.organization.pk))
    assert token not in history.content.decode()
    assert not any(token in entry.change_message for entry in LogEntry.objects.all())
    assert token not in str(dict(console.session.items()))


def test_one_save_that_also_generates_the_callback_secret_shows_both_once(
    console, admin_a, tenant_a
):
    from cdp.models import Organization

    console.force_login(admin_a)
    page = console.get(_org_url(tenant_a))
    extra = len(page.context["inline_admin_formsets"][0].formset.forms) - 1
    data = form_data(page)
    data.update(
        {
            "callback_url": "https://partner.example/cdp-callback",
            "callback_enabled": "on",
            f"memberships-{extra}-username": NEW_MEMBER,
            f"memberships-{extra}-role": "viewer",
        }
    )

    saved = console.post(_org_url(tenant_a), data)

    assert saved.status_code == 200 and "no-store" in saved["Cache-Control"].split(", ")
    secret = Organization.objects.get(pk=tenant_a.organization.pk).callback_secret
    assert f'<code id="callback-secret-raw" class="copy-source">{secret}</code>' in (
        saved.content.decode()
    )
    assert len(_links(saved)) == 1


def test_the_link_sets_the_password_and_the_member_then_signs_in(console, admin_a, tenant_a):
    console.force_login(admin_a)
    [link] = _links(_add_member(console, tenant_a, NEW_MEMBER))

    member, answer = _set_password(link)

    assert answer.status_code == 302 and answer["Location"] == url("login")
    user = get_user_model().objects.get(username=NEW_MEMBER)
    assert user.check_password(NEW_PASSWORD)
    assert not _signed_in_as(member, user)  # setting the password does not sign in
    sign_in_page = member.get(url("login")).content.decode()
    assert "Your password is set" in sign_in_page
    assert _sign_in(member, NEW_MEMBER, NEW_PASSWORD).status_code == 302
    assert _signed_in_as(member, user)
    home = member.get(url("index"))
    assert home.status_code == 200 and NEW_MEMBER in home.content.decode()


def test_a_second_use_of_the_link_fails_clearly(console, admin_a, tenant_a):
    console.force_login(admin_a)
    [link] = _links(_add_member(console, tenant_a, NEW_MEMBER))
    _set_password(link)

    reused = Client().get(link)

    assert reused.status_code == 200
    page = reused.content.decode()
    assert DEAD in page and 'id="set-password-form"' not in page
    assert get_user_model().objects.get(username=NEW_MEMBER).check_password(NEW_PASSWORD)


def test_an_expired_link_fails_clearly(console, admin_a, tenant_a, monkeypatch):
    console.force_login(admin_a)
    [link] = _links(_add_member(console, tenant_a, NEW_MEMBER))
    issued = PasswordResetTokenGenerator()._now()
    later = issued + timedelta(days=3, minutes=1)
    monkeypatch.setattr(PasswordResetTokenGenerator, "_now", lambda self: later)

    expired = Client().get(link)

    assert expired.status_code == 200 and DEAD in expired.content.decode()
    assert not get_user_model().objects.get(username=NEW_MEMBER).has_usable_password()


@pytest.mark.parametrize(
    "link_of",
    [
        lambda link: link.replace("/set-password/", "/set-password/AAAA", 1),
        lambda link: link[:-2] + ("1" if link[-2] == "0" else "0") + "/",
        lambda link: link.rsplit("/", 2)[0] + "/not-a-token/",
    ],
    ids=["unknown user", "altered token", "garbage"],
)
def test_a_bad_link_fails_clearly(console, admin_a, tenant_a, link_of):
    console.force_login(admin_a)
    [link] = _links(_add_member(console, tenant_a, NEW_MEMBER))

    answer = Client().get(link_of(link))

    assert answer.status_code == 200 and DEAD in answer.content.decode()


def test_the_password_validators_apply(console, admin_a, tenant_a):
    console.force_login(admin_a)
    [link] = _links(_add_member(console, tenant_a, NEW_MEMBER))

    _member, refused = _set_password(link, password="qwerty")

    assert refused.status_code == 200
    page = refused.content.decode()
    assert "This password is too short" in page and "This password is too common" in page
    assert not get_user_model().objects.get(username=NEW_MEMBER).has_usable_password()


def test_an_existing_user_added_to_another_organization_gets_no_link(
    console, admin_a, tenant_a, tenant_b
):
    console.force_login(admin_a)
    password_before = tenant_b.user.password

    saved = _add_member(console, tenant_a, tenant_b.username, role="viewer")

    assert saved.status_code == 302 and saved["Location"] == url("cdp_organization_changelist")
    assert Membership.objects.filter(
        organization=tenant_a.organization, user=tenant_b.user
    ).exists()
    tenant_b.user.refresh_from_db()
    assert tenant_b.user.password == password_before
    rows = console.get(_org_url(tenant_a)).content.decode()
    assert "New set-password link" not in rows


def test_a_new_link_replaces_the_earlier_one(console, admin_a, tenant_a):
    console.force_login(admin_a)
    [first] = _links(_add_member(console, tenant_a, NEW_MEMBER))
    membership = Membership.objects.get(user__username=NEW_MEMBER)
    rows = console.get(_org_url(tenant_a)).content.decode()
    assert f'href="{_link_url(tenant_a, membership)}"' in rows

    asked = console.get(_link_url(tenant_a, membership))
    made = console.post(_link_url(tenant_a, membership))

    assert asked.status_code == 200 and "replaces their earlier links" in asked.content.decode()
    assert not _links(asked)
    assert made.status_code == 200 and "no-store" in made["Cache-Control"].split(", ")
    [second] = _links(made)
    assert second != first
    assert DEAD in Client().get(first).content.decode()
    _set_password(second)
    assert get_user_model().objects.get(username=NEW_MEMBER).check_password(NEW_PASSWORD)
    assert LogEntry.objects.filter(change_message__contains="set-password link").count() == 1
    # Once the password is set, there is no button and no link.
    rows = console.get(_org_url(tenant_a)).content.decode()
    assert f'href="{_link_url(tenant_a, membership)}"' not in rows
    refused = console.post(_link_url(tenant_a, membership), follow=True)
    assert "has set a password already" in refused.content.decode()
    assert not _links(refused)


def test_an_admin_of_b_cannot_make_links_for_members_of_a(
    console, admin_a, admin_b, tenant_a, tenant_b
):
    console.force_login(admin_a)
    _add_member(console, tenant_a, NEW_MEMBER)
    membership = Membership.objects.get(user__username=NEW_MEMBER)
    password_before = membership.user.password
    console.force_login(admin_b)

    for link_url in (
        _link_url(tenant_a, membership),  # A's organization
        url("cdp_organization_member_set_password_link", tenant_b.organization.pk, membership.pk),
    ):
        assert console.get(link_url).status_code == 404
        assert console.post(link_url).status_code == 404

    membership.user.refresh_from_db()
    assert membership.user.password == password_before


def test_no_link_for_a_new_member_whom_another_organization_also_added(
    console, admin_a, admin_b, tenant_a, tenant_b
):
    """Usernames are global: B's admin, adding A's member who has no password yet, must not
    get to choose that password (and so sign in to A as them)."""
    console.force_login(admin_a)
    [a_link] = _links(_add_member(console, tenant_a, NEW_MEMBER))
    console.force_login(admin_b)

    added = _add_member(console, tenant_b, NEW_MEMBER, role="admin")

    assert added.status_code == 302 and not _links(added)
    in_b = Membership.objects.get(organization=tenant_b.organization, user__username=NEW_MEMBER)
    assert "New set-password link" not in console.get(_org_url(tenant_b)).content.decode()
    refused = console.post(_link_url(tenant_b, in_b), follow=True)
    assert "belongs to an organization you do not manage" in refused.content.decode()
    assert not _links(refused)
    # The link A's admin handed over still works.
    _set_password(a_link)
    assert get_user_model().objects.get(username=NEW_MEMBER).check_password(NEW_PASSWORD)


def test_a_superuser_makes_links_for_any_member_without_a_password(
    console, admin_a, admin_b, superuser, tenant_a, tenant_b
):
    console.force_login(admin_a)
    _add_member(console, tenant_a, NEW_MEMBER)
    console.force_login(admin_b)
    _add_member(console, tenant_b, NEW_MEMBER)
    in_b = Membership.objects.get(organization=tenant_b.organization, user__username=NEW_MEMBER)
    console.force_login(superuser)

    [link] = _links(console.post(_link_url(tenant_b, in_b)))

    _set_password(link)
    assert get_user_model().objects.get(username=NEW_MEMBER).check_password(NEW_PASSWORD)


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_viewers_and_editors_neither_add_members_nor_make_links(
    console, admin_a, tenant_a, role, request
):
    console.force_login(admin_a)
    _add_member(console, tenant_a, NEW_MEMBER)
    membership = Membership.objects.get(user__username=NEW_MEMBER)
    password_before = membership.user.password
    member = request.getfixturevalue(f"{role}_a")
    console.force_login(member)

    page = console.get(_org_url(tenant_a))
    data = form_data(page)
    row = int(data["memberships-TOTAL_FORMS"])
    data["memberships-TOTAL_FORMS"] = str(row + 1)
    data.update({f"memberships-{row}-username": "x@acme.test", f"memberships-{row}-role": "admin"})

    assert "New set-password link" not in page.content.decode()
    assert "not set yet" in page.content.decode()
    assert console.post(_org_url(tenant_a), data).status_code == 403
    assert not get_user_model().objects.filter(username="x@acme.test").exists()
    assert console.get(_link_url(tenant_a, membership)).status_code == 403
    assert console.post(_link_url(tenant_a, membership)).status_code == 403
    membership.user.refresh_from_db()
    assert membership.user.password == password_before


def test_the_sign_in_page_asks_for_the_email(console, admin_a):
    page = console.get(url("login")).content.decode()

    assert '<label for="id_username" class="required">Email:</label>' in page
    assert "Username" not in page
    refused = _sign_in(console, admin_a.username, "not-the-password").content.decode()
    assert "Please enter the correct" in refused
    assert _sign_in(console, admin_a.username, PASSWORD).status_code == 302


def test_the_member_services_refuse_another_organizations_member(tenant_a, tenant_b):
    invited = services.member_invite(
        organization=tenant_a.organization, username=NEW_MEMBER, role="viewer"
    )

    with pytest.raises(ValidationError, match="Unknown member"):
        set_password_token_issue(
            organization=tenant_b.organization, membership=invited, issued_by=tenant_b.user
        )
