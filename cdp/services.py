"""Writes for tenants, access and data models. Keyword-only, organization first."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from cdp import identifiers, keys
from cdp.models import (
    ApiKey,
    AuthToken,
    DataModel,
    FieldDefinition,
    Membership,
    ModelKind,
    Organization,
    Role,
    validate_custom_field_name,
)
from cdp.schema import (
    CUSTOM_MODEL_OBJECT_TYPE,
    KNOWN_TAGS,
    SYSTEM_MODELS,
    custom_field_pattern,
)
from cdp.token_cache import VerifiedToken, token_cache_get, token_cache_set

# Rows of these system object types exist in every organization. `custom-model` is the
# family of the organization's custom models (each a DataModel of kind custom), not a
# model of its own (docs/decisions.md).
SYSTEM_OBJECT_TYPES = tuple(t for t in SYSTEM_MODELS if t != CUSTOM_MODEL_OBJECT_TYPE)


class TokenInvalid(Exception):
    """Unknown token, not issued for this key, revoked key, inactive user or organization."""


class TokenExpired(Exception):
    pass


def organization_create(*, name: str, group_key: str | None = None) -> Organization:
    """Create a tenant with its system models. `group_key` lets provisioning import a
    known cdpGKey (32 lowercase hex); it is drawn at random otherwise."""
    if group_key is not None:
        if not identifiers.GROUP_KEY_RE.match(group_key):
            raise ValidationError(
                {"groupKey": "A group key is 32 lowercase hexadecimal characters."}
            )
        if Organization.objects.filter(group_key=group_key).exists():
            raise ValidationError({"groupKey": "Another organization has this group key."})
    with transaction.atomic():
        organization = Organization.objects.create(
            name=name, group_key=group_key or identifiers.group_key_generate()
        )
        system_models_ensure(organization=organization)
    return organization


def system_models_ensure(*, organization: Organization) -> list[DataModel]:
    """Create the organization's missing system models (idempotent)."""
    existing = set(
        DataModel.objects.filter(organization=organization, kind=ModelKind.SYSTEM).values_list(
            "object_type", flat=True
        )
    )
    created = [
        DataModel(
            organization=organization,
            kind=ModelKind.SYSTEM,
            object_type=object_type,
            name=SYSTEM_MODELS[object_type].name,
            key_field=SYSTEM_MODELS[object_type].key_field,
            tags=list(SYSTEM_MODELS[object_type].tags),
        )
        for object_type in SYSTEM_OBJECT_TYPES
        if object_type not in existing
    ]
    return DataModel.objects.bulk_create(created)


def member_add(
    *, organization: Organization, user: AbstractBaseUser, role: str = Role.VIEWER
) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}: use one of {Role.values}."})
    membership, created = Membership.objects.get_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def user_create(*, username: str, password: str | None = None) -> AbstractBaseUser:
    user_model = get_user_model()
    user = user_model(username=username, email=username if "@" in username else "")
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    return user


def api_key_create(
    *,
    membership: Membership,
    name: str,
    created_by: AbstractBaseUser | None = None,
    raw_key: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its raw value, which is never stored nor shown again.

    `raw_key` lets provisioning import a known key (40 lowercase hex).
    """
    if raw_key is not None and not keys.API_KEY_RE.match(raw_key):
        raise ValidationError({"key": "An API key is 40 lowercase hexadecimal characters."})
    for _attempt in range(5):
        raw = raw_key or keys.api_key_generate()
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    organization=membership.organization,
                    membership=membership,
                    name=name,
                    prefix=keys.api_key_prefix(raw),
                    digest=keys.digest(raw),
                    created_by=created_by,
                )
            return api_key, raw
        except IntegrityError:
            if raw_key is not None:
                raise ValidationError(
                    {"key": "This organization already has a key with the same prefix."}
                ) from None
    raise RuntimeError("could not draw a unique API key prefix")  # 5 collisions of 32 bits


def api_key_revoke(*, organization: Organization, api_key_id: int) -> ApiKey:
    """Revoke a key of this organization and delete its tokens."""
    with transaction.atomic():
        api_key = ApiKey.objects.select_for_update().get(organization=organization, pk=api_key_id)
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
        AuthToken.objects.filter(organization=organization, api_key=api_key).delete()
    return api_key


def api_key_authenticate(*, group_key: str, username: str, raw_key: str) -> ApiKey | None:
    """The unrevoked key `raw_key` of active user `username` in active organization
    `group_key`, or None. One answer for every mismatch, so nothing can be enumerated."""
    candidates = ApiKey.objects.select_related("organization", "membership__user").filter(
        organization__group_key=group_key,
        organization__is_active=True,
        membership__user__username=username,
        membership__user__is_active=True,
        prefix=keys.api_key_prefix(raw_key),
        revoked_at__isnull=True,
    )
    matched = None
    # Compare every candidate, in constant time, so timing does not tell them apart.
    for candidate in candidates:
        if keys.digest_matches(raw_key, candidate.digest):
            matched = candidate
    return matched


def token_issue(*, api_key: ApiKey) -> tuple[AuthToken, str]:
    """Issue a token for `api_key`; return it with its raw value (only the digest is stored)."""
    raw = keys.token_generate(api_key.organization_id)
    now = timezone.now()
    token = AuthToken.objects.create(
        organization=api_key.organization,
        api_key=api_key,
        digest=keys.digest(raw),
        issued_at=now,
        expires_at=now + timedelta(seconds=settings.CDP_TOKEN_TTL_SECONDS),
    )
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return token, raw


def token_lookup(*, token_digest: str, organization_id: int | None) -> VerifiedToken:
    """The token of this digest in the organization it names (`keys.token_organization_id`),
    with its key, organization and member; raises TokenInvalid when it is unknown (a
    string that names no organization, without a query), its key revoked, or its user or
    organization inactive. One query. Does not check the expiry."""
    if organization_id is None:
        raise TokenInvalid
    token = (
        AuthToken.objects.select_related("api_key__organization", "api_key__membership__user")
        .filter(organization_id=organization_id, digest=token_digest)
        .first()
    )
    if token is None:
        raise TokenInvalid
    api_key = token.api_key
    if (
        api_key.revoked_at is not None
        or not api_key.organization.is_active
        or not api_key.membership.user.is_active
    ):
        raise TokenInvalid
    return VerifiedToken(api_key, token.expires_at)


def token_check(*, verified: VerifiedToken, raw_api_key: str) -> ApiKey:
    """The token's key, if `raw_api_key` is that key and the token has not expired; raises
    TokenInvalid or TokenExpired. Checked on every request, cached or not: the cache
    holds only the key's digest."""
    if not keys.digest_matches(raw_api_key, verified.api_key.digest):
        raise TokenInvalid
    if verified.expires_at <= timezone.now():
        raise TokenExpired
    return verified.api_key


def token_verify(*, raw_token: str, raw_api_key: str) -> ApiKey:
    """The API key a token was issued for, checked against the raw key sent with it.

    Raises TokenInvalid or TokenExpired. The returned key carries its organization and
    membership user, so later steps need no query to reach them. (The ingest path does the
    same in its one round trip to the shared store: `cdp/gate.py`.)
    """
    token_digest = keys.digest(raw_token)
    verified = token_cache_get(token_digest)
    if verified is None:
        verified = token_lookup(
            token_digest=token_digest, organization_id=keys.token_organization_id(raw_token)
        )
        token_cache_set(token_digest, verified.api_key, verified.expires_at)
    return token_check(verified=verified, raw_api_key=raw_api_key)


def auth_tokens_purge_expired(*, now: datetime | None = None, batch_size: int = 5000) -> int:
    """Delete the tokens, of every organization, that expired by `now`; returns how many.

    Organization by organization (each lookup uses the tenant-leading index) and in
    batches, so a large backlog never holds locks on much of the table. An expired token
    is refused anyway (`TokenExpired`); this only keeps the table small.
    """
    now = now or timezone.now()
    deleted = 0
    for organization_id in Organization.objects.order_by("pk").values_list("pk", flat=True):
        expired = AuthToken.objects.filter(organization_id=organization_id, expires_at__lte=now)
        while ids := list(expired.values_list("pk", flat=True)[:batch_size]):
            _count, per_model = AuthToken.objects.filter(
                organization_id=organization_id, pk__in=ids
            ).delete()
            deleted += per_model.get(AuthToken._meta.label, 0)
    return deleted


def custom_model_create(
    *,
    organization: Organization,
    name: str,
    mom_code: str | None = None,
    tags: list[str] | None = None,
) -> DataModel:
    if mom_code is not None and not identifiers.MOM_CODE_RE.match(mom_code):
        raise ValidationError({"momCode": "A momCode reads M-XXXXX-O-XXXXX-M (A-Z, 0-9)."})
    tags = list(tags) if tags is not None else []
    unknown = [t for t in tags if t not in KNOWN_TAGS]
    if unknown:
        raise ValidationError({"tags": f"Unknown tags {unknown}: use {list(KNOWN_TAGS)}."})
    if DataModel.objects.filter(organization=organization, name=name).exists():
        raise ValidationError({"name": f"A model named {name!r} already exists."})
    for _attempt in range(5):
        code = mom_code or identifiers.mom_code_generate()
        try:
            with transaction.atomic():
                return DataModel.objects.create(
                    organization=organization,
                    kind=ModelKind.CUSTOM,
                    object_type=CUSTOM_MODEL_OBJECT_TYPE,
                    name=name,
                    mom_code=code,
                    key_field=SYSTEM_MODELS[CUSTOM_MODEL_OBJECT_TYPE].key_field,
                    tags=tags,
                )
        except IntegrityError:
            if mom_code is not None:
                raise ValidationError({"momCode": f"momCode {mom_code} is taken."}) from None
    raise RuntimeError("could not draw a unique momCode")


def field_definition_create(
    *,
    organization: Organization,
    data_model: DataModel,
    name: str,
    label: str = "",
    required: bool = False,
) -> FieldDefinition:
    """Declare a custom field; its type follows from its name."""
    if data_model.organization_id != organization.pk:
        raise ValidationError({"data_model": "Unknown model."})
    validate_custom_field_name(name)
    pattern = custom_field_pattern(name)
    assert pattern is not None
    if FieldDefinition.objects.filter(
        organization=organization, data_model=data_model, name=name
    ).exists():
        raise ValidationError({"name": f"Field {name} already exists on {data_model.name}."})
    return FieldDefinition.objects.create(
        organization=organization,
        data_model=data_model,
        name=name,
        label=label,
        type=pattern.type.value,
        required=required,
    )


def field_definition_update(
    *, organization: Organization, field_definition: FieldDefinition, label: str, required: bool
) -> FieldDefinition:
    if field_definition.organization_id != organization.pk:
        raise ValidationError({"field": "Unknown field."})
    field_definition.label = label
    field_definition.required = required
    field_definition.save(update_fields=["label", "required"])
    return field_definition


def organization_rename(*, organization: Organization, name: str) -> Organization:
    """Rename an organization; its group key, the tenant's identity on the wire, never changes."""
    if not name.strip():
        raise ValidationError({"name": "An organization needs a name."})
    if organization.name != name:
        organization.name = name
        organization.save(update_fields=["name"])
    return organization


def custom_model_tags_set(
    *, organization: Organization, data_model: DataModel, tags: list[str]
) -> DataModel:
    """Replace the tags of one of the organization's custom models (system models keep the
    tags their spec gives them)."""
    if data_model.organization_id != organization.pk or not data_model.is_custom:
        raise ValidationError({"model": "Unknown custom model."})
    unknown = [t for t in tags if t not in KNOWN_TAGS]
    if unknown:
        raise ValidationError({"tags": f"Unknown tags {unknown}: use {list(KNOWN_TAGS)}."})
    if data_model.tags != list(tags):
        data_model.tags = list(tags)
        data_model.save(update_fields=["tags"])
    return data_model


# Roles that manage an organization's members, keys and settings. An organization keeps at
# least one member holding one of them, so it is never left without anyone to manage it.
MANAGER_ROLES = (Role.OWNER, Role.ADMIN)


def console_access_grant(*, user: AbstractBaseUser) -> AbstractBaseUser:
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
