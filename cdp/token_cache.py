"""Verified tokens, kept briefly in the shared store so a request authenticates without a
query: the entry's read rides in the request's one round trip to the store
(`cdp/gate.py`).

An entry is a JSON snapshot of the API key, its organization and its member (no
password, no secret; the key only as its digest), keyed by the token's digest, and
lives at most `CDP_TOKEN_CACHE_SECONDS` and never past the token's expiry. Each worker
also keeps the decoded form of the entries it has read, keyed by the entry's bytes, so a
request rebuilds no objects while its entry is unchanged; a changed or deleted entry
has other bytes, or none.

Everything that can make a cached token invalid forgets it at once, in every worker
(the store is shared):

- a deleted token (revocation deletes a key's tokens; removing a member, a key or an
  organization deletes them by cascade), through `post_delete`;
- any change to an organization or a user (deactivation above all), through `post_save`.

Signals are used here, not in services, because this is cache coherence, not business
logic: every path that writes those rows (services, the Console, the shell) must forget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from cdp.models import ApiKey, AuthToken, Membership, Organization
from cdp.shared_store import Put, shared_store

_PREFIX = "cdp:token:"
# Organization columns a request may need later; never a secret.
_ORGANIZATION_FIELDS = ("id", "name", "group_key", "is_active", "callback_url", "callback_enabled")
_API_KEY_FIELDS = ("id", "organization_id", "membership_id", "name", "prefix", "digest")
_MEMBERSHIP_FIELDS = ("id", "organization_id", "user_id", "role")
_MEMO_SIZE = 4096


@dataclass(frozen=True)
class VerifiedToken:
    """A token's API key (with `organization` and `membership.user` attached) and expiry."""

    api_key: ApiKey
    expires_at: datetime

    @property
    def organization_id(self) -> int:
        return self.api_key.organization_id


def token_key(token_digest: str) -> str:
    return _PREFIX + token_digest


def _values(instance: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in names}


def token_entry_encode(api_key: ApiKey, expires_at: datetime) -> bytes:
    user = api_key.membership.user
    return orjson.dumps(
        {
            "api_key": _values(api_key, _API_KEY_FIELDS),
            "organization": _values(api_key.organization, _ORGANIZATION_FIELDS),
            "membership": _values(api_key.membership, _MEMBERSHIP_FIELDS),
            "user": {"id": user.pk, "username": user.get_username(), "is_active": user.is_active},
            "expires_at": int(expires_at.timestamp() * 1_000_000),
        }
    )


_memo_lock = threading.Lock()
_memo: OrderedDict[bytes, VerifiedToken] = OrderedDict()


def token_entry_decode(entry: bytes) -> VerifiedToken:
    """The entry as model instances (unsaved snapshots), from this worker's memo when it
    decoded the same bytes before."""
    with _memo_lock:
        known = _memo.get(entry)
        if known is not None:
            _memo.move_to_end(entry)
            return known
    data = orjson.loads(entry)
    organization = Organization(**data["organization"])
    user = get_user_model()(**data["user"])
    membership = Membership(**data["membership"])
    membership.organization = organization
    membership.user = user
    api_key = ApiKey(**data["api_key"])
    api_key.organization = organization
    api_key.membership = membership
    expires_at = datetime.fromtimestamp(data["expires_at"] / 1_000_000, tz=UTC)
    verified = VerifiedToken(api_key, expires_at)
    with _memo_lock:
        _memo[entry] = verified
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    return verified


# What the cache holds for a token the database refused (unknown, revoked key, inactive
# member or organization): a retry with it is refused without a query, for a while.
INVALID_ENTRY = b"invalid"


def token_invalid_put(token_digest: str) -> Put:
    """The write that remembers a refused token for CDP_TOKEN_CACHE_SECONDS: a client (or
    an attacker) repeating a bad token costs no query each time."""
    return Put(token_key(token_digest), INVALID_ENTRY, settings.CDP_TOKEN_CACHE_SECONDS)


def token_entry_put(token_digest: str, api_key: ApiKey, expires_at: datetime) -> Put | None:
    """The write that caches a verified token, to send with the request's other
    operations; None when the token expires too soon to be worth caching."""
    seconds = min(
        settings.CDP_TOKEN_CACHE_SECONDS, int((expires_at - timezone.now()).total_seconds())
    )
    if seconds <= 0:
        return None
    return Put(token_key(token_digest), token_entry_encode(api_key, expires_at), seconds)


def token_cache_get(token_digest: str) -> VerifiedToken | None:
    (entry,), _counts = shared_store().exchange(gets=[token_key(token_digest)])
    if entry is None or entry == INVALID_ENTRY:  # a refused token is looked up again here
        return None
    return token_entry_decode(entry)


def token_cache_set(token_digest: str, api_key: ApiKey, expires_at: datetime) -> None:
    put = token_entry_put(token_digest, api_key, expires_at)
    if put is not None:
        shared_store().exchange(puts=[put])


def token_cache_forget(digests: list[str]) -> None:
    shared_store().delete([token_key(d) for d in digests])


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
