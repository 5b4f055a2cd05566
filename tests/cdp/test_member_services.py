"""Member services behind the Console's Organization page, and Console access."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from cdp import services
from cdp.models import ApiKey, AuthToken, Membership


def test_console_access_grant_makes_the_user_staff_once(tenant_a):
    assert not tenant_a.user.is_staff

    services.console_access_grant(user=tenant_a.user)
    services.console_access_grant(user=tenant_a.user)

    tenant_a.user.refresh_from_db()
    assert tenant_a.user.is_staff and not tenant_a.user.is_superuser


def test_member_invite_creates_a_user_without_password_or_reuses_one(tenant_a, tenant_b):
    created = services.member_invite(
        organization=tenant_a.organization, username="new@acme.test", role="viewer"
    )
    reused = services.member_invite(
        organization=tenant_a.organization, username=tenant_b.username, role="editor"
    )

    assert created.user.is_staff and not created.user.has_usable_password()
    assert reused.user == tenant_b.user and reused.role == "editor"
    with pytest.raises(ValidationError, match="already a member"):
        services.member_invite(
            organization=tenant_a.organization, username="new@acme.test", role="admin"
        )
    with pytest.raises(ValidationError):
        services.member_invite(organization=tenant_a.organization, username="x@a.test", role="god")


def test_the_last_manager_can_neither_step_down_nor_leave(tenant_a):
    with pytest.raises(ValidationError, match="at least one owner or admin"):
        services.member_role_set(
            organization=tenant_a.organization, membership=tenant_a.membership, role="editor"
        )
    with pytest.raises(ValidationError, match="at least one owner or admin"):
        services.member_remove(organization=tenant_a.organization, membership=tenant_a.membership)

    other = services.member_invite(
        organization=tenant_a.organization, username="owner@acme.test", role="owner"
    )
    services.member_role_set(
        organization=tenant_a.organization, membership=tenant_a.membership, role="editor"
    )
    assert Membership.objects.get(pk=tenant_a.membership.pk).role == "editor"
    assert other.role == "owner"


def test_removing_a_member_takes_their_keys_and_tokens(tenant_a):
    services.member_invite(
        organization=tenant_a.organization, username="owner@acme.test", role="owner"
    )
    services.token_issue(api_key=tenant_a.api_key)

    services.member_remove(organization=tenant_a.organization, membership=tenant_a.membership)

    assert not Membership.objects.filter(pk=tenant_a.membership.pk).exists()
    assert not ApiKey.objects.filter(pk=tenant_a.api_key.pk).exists()
    assert not AuthToken.objects.filter(organization=tenant_a.organization).exists()


def test_member_services_refuse_another_organizations_membership(tenant_a, tenant_b):
    with pytest.raises(ValidationError):
        services.member_role_set(
            organization=tenant_a.organization, membership=tenant_b.membership, role="viewer"
        )
    with pytest.raises(ValidationError):
        services.member_remove(organization=tenant_a.organization, membership=tenant_b.membership)
    assert Membership.objects.get(pk=tenant_b.membership.pk).role == "admin"
