"""Writes for an organization's members: users, their memberships and roles, their
access to the Console, and the one-time links with which a new member sets their first
password. An organization always keeps someone to manage it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

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
    a usable password: they set one through `set_password_token_issue`'s link) when there
    is none, and grant Console access.

    A user that exists and one that does not get the same answer here; the Console shows a
    set-password link only for a user without a password (see `set_password_link_memberships`).
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


# --- set-password links ---------------------------------------------------------------------


def set_password_link_memberships(*, issued_by: User) -> QuerySet[Membership]:
    """The memberships whose user `issued_by` may give a set-password link.

    The user is active and has no usable password yet (once they set one, no link is made:
    a forgotten password is an operator's `manage.py changepassword`), and `issued_by`
    is an owner or admin of *every* organization the user belongs to, or a superuser.
    Usernames are global: without the last rule, an admin of one organization could add
    another organization's new member, set their password through a link and sign in as
    them there.
    """
    waiting = Membership.objects.filter(
        user__is_active=True, user__password__startswith=UNUSABLE_PASSWORD_PREFIX
    )
    if issued_by.is_superuser:
        return waiting
    managed = Membership.objects.filter(user=issued_by, role__in=MANAGER_ROLES)
    unmanaged = Membership.objects.filter(user=OuterRef("user_id")).exclude(
        organization__in=managed.values("organization_id")
    )
    return waiting.filter(user__is_superuser=False).exclude(Exists(unmanaged))


def set_password_link_refusal(
    *, organization: Organization, membership: Membership, issued_by: User
) -> str | None:
    """Why `issued_by` may not give `membership`'s user a set-password link, or None when
    they may (`set_password_link_memberships` holds it)."""
    if membership.organization_id != organization.pk:
        return "Unknown member."
    allowed = set_password_link_memberships(issued_by=issued_by).filter(pk=membership.pk)
    if allowed.exists():
        return None
    user = membership.user
    if user.has_usable_password():
        return (
            f"{user.username} has set a password already and signs in with it; a forgotten "
            "password is reset by an operator."
        )
    if not user.is_active:
        return f"{user.username} is deactivated."
    if user.is_superuser:
        return f"{user.username} is a superuser: another superuser sets their password."
    manages_here = Membership.objects.filter(
        organization=organization, user=issued_by, role__in=MANAGER_ROLES
    ).exists()
    if not (issued_by.is_superuser or manages_here):
        return "Only the organization's owners and admins make set-password links."
    return (
        f"{user.username} also belongs to an organization you do not manage: an operator "
        "makes their set-password link."
    )


def set_password_token_issue(
    *, organization: Organization, membership: Membership, issued_by: User
) -> tuple[str, str]:
    """A one-time link's parts, `(uidb64, token)`, with which `membership`'s user sets their
    first password: Django's `default_token_generator`, as PasswordResetConfirmView checks
    it. Nothing of it is stored; show it once.

    The token stops working when the password is set (it signs the password hash), after
    PASSWORD_RESET_TIMEOUT, and when a newer link is issued: issuing replaces the user's
    unusable password by a new one. Refused (ValidationError) with
    `set_password_link_refusal`'s reason.
    """
    refusal = set_password_link_refusal(
        organization=organization, membership=membership, issued_by=issued_by
    )
    if refusal is not None:
        raise ValidationError(refusal)
    user = membership.user
    current = user.password
    user.set_unusable_password()
    # Compare and set: a member setting their password through the earlier link at this
    # moment keeps it, rather than having it replaced by an unusable one.
    replaced = (
        get_user_model().objects.filter(pk=user.pk, password=current).update(password=user.password)
    )
    if not replaced:
        raise ValidationError(f"{user.username} has just set a password.")
    return urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
