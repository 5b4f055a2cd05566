"""Writes for an organization's members: users, their memberships and roles, and their
access to the Console. An organization always keeps someone to manage it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from cdp.models import Membership, Organization, Role

if TYPE_CHECKING:
    # The user model (settings.AUTH_USER_MODEL), as the type checker knows it.
    from django.contrib.auth.models import User

# Roles that manage an organization's members, keys and settings. An organization keeps at
# least one member holding one of them, so it is never left without anyone to manage it.
MANAGER_ROLES = (Role.OWNER, Role.ADMIN)


def user_create(*, username: str, password: str | None = None) -> User:
    user_model = get_user_model()
    user = user_model(username=username, email=username if "@" in username else "")
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    return user


def member_add(*, organization: Organization, user: User, role: str = Role.VIEWER) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}: use one of {Role.values}."})
    membership, created = Membership.objects.get_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def console_access_grant(*, user: User) -> User:
    """Let `user` sign in to the Console (Django's `is_staff`).

    Call it whenever a membership is created, whatever the role: the Console shows a member
    only their organizations' objects and limits writes by role, so staff status alone
    grants nothing. Provisioning and the Console's member form both call it.
    """
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


def _managers_left_check(*, organization: Organization, leaving: Membership) -> None:
    others = (
        Membership.objects.filter(organization=organization, role__in=MANAGER_ROLES)
        .exclude(pk=leaving.pk)
        .exists()
    )
    if not others:
        raise ValidationError(
            {
                "role": "The organization needs at least one owner or admin: promote another "
                "member first."
            }
        )


def member_invite(*, organization: Organization, username: str, role: str) -> Membership:
    """Add the user `username` to the organization with `role`, creating the user (without
    a usable password: an operator sets it) when there is none, and grant Console access.

    A user that exists and one that does not get the same answer, so a tenant learns
    nothing about other tenants' users.
    """
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}: use one of {Role.values}."})
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_create(username=username)
        elif Membership.objects.filter(organization=organization, user=user).exists():
            raise ValidationError({"username": f"{username} is already a member."})
        membership = member_add(organization=organization, user=user, role=role)
        console_access_grant(user=user)
    return membership


def member_role_set(*, organization: Organization, membership: Membership, role: str) -> Membership:
    """Change a member's role; the last owner or admin cannot step down."""
    if membership.organization_id != organization.pk:
        raise ValidationError({"membership": "Unknown member."})
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}: use one of {Role.values}."})
    if membership.role == role:
        return membership
    with transaction.atomic():
        if role not in MANAGER_ROLES and membership.role in MANAGER_ROLES:
            _managers_left_check(organization=organization, leaving=membership)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def member_remove(*, organization: Organization, membership: Membership) -> None:
    """Remove a member; their API keys and the keys' tokens go with the membership.

    The last owner or admin cannot be removed.
    """
    if membership.organization_id != organization.pk:
        raise ValidationError({"membership": "Unknown member."})
    with transaction.atomic():
        if membership.role in MANAGER_ROLES:
            _managers_left_check(organization=organization, leaving=membership)
        membership.delete()
