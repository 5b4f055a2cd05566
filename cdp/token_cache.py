"""Verified tokens, kept briefly in the shared cache so a request authenticates with one
cache read instead of a four-table query (docs/performance.md).

An entry is a detached snapshot of the API key, its organization and its member (no
password, no secret), keyed by the token's digest, and lives at most
`CDP_TOKEN_CACHE_SECONDS` and never past the token's expiry. Everything that can make a
cached token invalid forgets it at once, in every worker (the cache is shared):

- a deleted token (revocation deletes a key's tokens; removing a member, a key or an
  organization deletes them by cascade), through `post_delete`;
- any change to an organization or a user (deactivation above all), through `post_save`.

Signals are used here, not in services, because this is cache coherence, not business
logic: every path that writes those rows (services, the Console, the shell) must forget.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone

from cdp.models import ApiKey, AuthToken, Membership, Organization

_PREFIX = "cdp:token:"
# Organization columns a request may need later; never a secret.
_ORGANIZATION_FIELDS = ("id", "name", "group_key", "is_active", "callback_url", "callback_enabled")
_API_KEY_FIELDS = ("id", "organization_id", "membership_id", "name", "prefix", "digest")
_MEMBERSHIP_FIELDS = ("id", "organization_id", "user_id", "role")


def _key(token_digest: str) -> str:
    return _PREFIX + token_digest


def _values(instance: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in names if hasattr(instance, name)}


def token_cache_get(token_digest: str) -> tuple[ApiKey, datetime] | None:
    """The cached API key (with organization and member) and the token's expiry, or None."""
    entry = cache.get(_key(token_digest))
    if entry is None:
        return None
    organization = Organization(**entry["organization"])
    user = get_user_model()(**entry["user"])
    membership = Membership(**entry["membership"])
    membership.organization = organization
    membership.user = user
    api_key = ApiKey(**entry["api_key"])
    api_key.organization = organization
    api_key.membership = membership
    return api_key, entry["expires_at"]


def token_cache_set(token_digest: str, api_key: ApiKey, expires_at: datetime) -> None:
    seconds = min(
        settings.CDP_TOKEN_CACHE_SECONDS, int((expires_at - timezone.now()).total_seconds())
    )
    if seconds <= 0:
        return
    user = api_key.membership.user
    entry = {
        "api_key": _values(api_key, _API_KEY_FIELDS),
        "organization": _values(api_key.organization, _ORGANIZATION_FIELDS),
        "membership": _values(api_key.membership, _MEMBERSHIP_FIELDS),
        "user": {"id": user.pk, "username": user.get_username(), "is_active": user.is_active},
        "expires_at": expires_at,
    }
    cache.set(_key(token_digest), entry, timeout=seconds)


def token_cache_forget(digests: list[str]) -> None:
    if digests:
        cache.delete_many([_key(d) for d in digests])


def _forget_token(sender: type, instance: AuthToken, **kwargs: Any) -> None:
    token_cache_forget([instance.digest])


def _forget_organization(sender: type, instance: Organization, **kwargs: Any) -> None:
    token_cache_forget(
        list(AuthToken.objects.filter(organization=instance).values_list("digest", flat=True))
    )


def _forget_user(sender: type, instance: Any, **kwargs: Any) -> None:
    token_cache_forget(
        list(
            AuthToken.objects.filter(api_key__membership__user=instance).values_list(
                "digest", flat=True
            )
        )
    )


def token_cache_connect() -> None:
    """Connect the invalidation receivers (from CdpConfig.ready)."""
    from django.db.models.signals import post_delete, post_save

    post_delete.connect(_forget_token, sender=AuthToken, dispatch_uid="token_cache_token")
    post_save.connect(
        _forget_organization, sender=Organization, dispatch_uid="token_cache_organization"
    )
    post_save.connect(_forget_user, sender=get_user_model(), dispatch_uid="token_cache_user")
