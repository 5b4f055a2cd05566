"""Writes and checks for API keys and the tokens issued for them: creating and revoking a
key, authenticating with one, issuing, verifying and purging tokens. A raw key or token is
returned once and never stored; only its digest is (cdp/keys.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from cdp import keys
from cdp.models import ApiKey, AuthToken, Membership, Organization
from cdp.token_cache import VerifiedToken, token_cache_get, token_cache_set

if TYPE_CHECKING:
    # The user model (settings.AUTH_USER_MODEL), as the type checker knows it.
    from django.contrib.auth.models import User


class TokenInvalid(Exception):
    """Unknown token, not issued for this key, revoked key, inactive user or organization."""


class TokenExpired(Exception):
    pass


def api_key_create(
    *,
    membership: Membership,
    name: str,
    created_by: User | None = None,
    raw_key: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its raw value, which is never stored nor shown again.

    `name` must differ from the names of the member's unrevoked keys (a revoked key's name
    may be given again); `raw_key` lets provisioning import a known key (40 lowercase
    hex). Raises ValidationError on `name` or `key`.
    """
    if raw_key is not None and not keys.API_KEY_RE.match(raw_key):
        raise ValidationError({"key": "An API key is 40 lowercase hexadecimal characters."})
    if _live_name_taken(membership=membership, name=name):
        raise _name_taken_error(name)
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
            # One of two constraints: a concurrent request gave the member a live key of
            # this name since the check above (apikey_unique_live_name), or the prefix was
            # drawn before (apikey_unique_org_prefix), which a fresh draw cures.
            if _live_name_taken(membership=membership, name=name):
                raise _name_taken_error(name) from None
            if raw_key is not None:
                raise ValidationError(
                    {"key": "This organization already has a key with the same prefix."}
                ) from None
    raise RuntimeError("could not draw a unique API key prefix")  # 5 collisions of 32 bits


def _live_name_taken(*, membership: Membership, name: str) -> bool:
    return ApiKey.objects.filter(
        organization=membership.organization_id,
        membership=membership,
        name=name,
        revoked_at__isnull=True,
    ).exists()


def _name_taken_error(name: str) -> ValidationError:
    return ValidationError(
        {
            "name": f"This member already has an API key named “{name}”: choose another "
            "name, or revoke that key first."
        }
    )


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
