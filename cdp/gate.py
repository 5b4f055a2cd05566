"""Admission of a Data Ingestion or Read API request (checks 1–4), in one round trip to
the shared store: the token's cached entry, the rate-limit windows of its API key and
its organization's schema version travel in one pipeline.

The windows are counted before the token's entry is seen, so each worker remembers which
key and organization a token belongs to (a token is issued for one key, for good). A
worker's first request with a token reads the entry first, with the client address's
window of refused tokens counted in the same round trip (taken back for a valid token):
three round trips, once. When the request is then refused (401), its counts are taken
back, so only admitted requests count, as the contract says.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from cdp import keys, services
from cdp.errors import Unauthorized
from cdp.models import ApiKey, Organization
from cdp.ratelimit import (
    Window,
    rate_limit_refusal,
    window_counters,
    window_now,
    windows_from_setting,
)
from cdp.schema_cache import schema_version, schema_version_key
from cdp.shared_store import Put, SharedStore, shared_store
from cdp.token_cache import (
    INVALID_ENTRY,
    VerifiedToken,
    token_entry_decode,
    token_entry_put,
    token_invalid_put,
    token_key,
)

HEADERS_REQUIRED = "TOKEN and API_KEY headers are required"
INVALID = "Invalid token or API key"
EXPIRED = "Token has expired"

_KNOWN_SIZE = 8192
_known_lock = threading.Lock()
# token digest → (API key id, organization id), learned from verified entries.
_known: OrderedDict[str, tuple[int, int]] = OrderedDict()


@dataclass(frozen=True)
class Admission:
    api_key: ApiKey  # with `organization` and `membership.user` attached
    schema_version: bytes

    @property
    def organization(self) -> Organization:
        return self.api_key.organization


def _remember(token_digest: str, verified: VerifiedToken) -> tuple[int, int]:
    ids = (verified.api_key.pk, verified.organization_id)
    with _known_lock:
        _known[token_digest] = ids
        while len(_known) > _KNOWN_SIZE:
            _known.popitem(last=False)
    return ids


def _known_ids(token_digest: str) -> tuple[int, int] | None:
    with _known_lock:
        return _known.get(token_digest)


def _verify(
    token_digest: str, organization_id: int | None, entry: bytes | None
) -> tuple[VerifiedToken, Put | None]:
    """The token from its cached entry, or from the database (with the write that caches
    it again). Raises TokenInvalid; a token the database refuses is remembered as such
    (the store forgets it with every change to a user or an organization)."""
    if entry == INVALID_ENTRY:
        raise services.TokenInvalid
    if entry is not None:
        return token_entry_decode(entry), None
    try:
        verified = services.token_lookup(token_digest=token_digest, organization_id=organization_id)
    except services.TokenInvalid:
        shared_store().exchange(puts=[token_invalid_put(token_digest)])
        raise
    return verified, token_entry_put(token_digest, verified.api_key, verified.expires_at)


REFUSED_SCOPE = "badtoken:addr"
REFUSED_LABEL = "of refused tokens"


def _first_sight(
    store: SharedStore, token_digest: str, organization_id: int | None, client_address: str
) -> tuple[VerifiedToken, Put | None]:
    """A token this worker has not seen: its entry (or the database), with the client
    address's window of refused tokens counted in the same round trip, first, and
    decided on: a full window refuses (429) before any query, a refused token answers 401
    and stays counted, a valid one is taken back."""
    windows = windows_from_setting(settings.CDP_REFUSED_TOKEN_RATE_LIMITS)
    now = window_now()
    counters = window_counters(
        scope=REFUSED_SCOPE, ident=client_address or "unknown", windows=windows, now=now
    )
    (entry,), counts = store.exchange(gets=[token_key(token_digest)], counters=counters)
    refusal = rate_limit_refusal(
        counts=counts, counters=counters, windows=windows, now=now, scope_label=REFUSED_LABEL
    )
    if refusal is not None:
        raise refusal
    try:
        verified, put = _verify(token_digest, organization_id, entry)
    except services.TokenInvalid:
        raise Unauthorized(INVALID) from None
    store.decrement([c.key for c in counters])  # once per token and worker
    return verified, put


def api_request_admit(
    *,
    raw_token: str,
    raw_api_key: str,
    scope: str,
    windows: Sequence[Window],
    scope_label: str,
    client_address: str = "",
) -> Admission:
    """The request's API key and schema version; raises Unauthorized (checks 1–3) or
    RateLimited (check 4, with this request not counted; or, for a token this worker has
    not seen, too many refused tokens from `client_address`)."""
    if not raw_token or not raw_api_key:
        raise Unauthorized(HEADERS_REQUIRED)
    token_digest = keys.digest(raw_token)
    token_organization = keys.token_organization_id(raw_token)
    store = shared_store()
    verified: VerifiedToken | None = None
    puts: list[Put] = []
    ids = _known_ids(token_digest)
    if ids is None:
        verified, put = _first_sight(store, token_digest, token_organization, client_address)
        puts += [put] if put else []
        ids = _remember(token_digest, verified)

    api_key_id, organization_id = ids
    now = window_now()
    counters = window_counters(scope=scope, ident=str(api_key_id), windows=windows, now=now)
    gets = [schema_version_key(organization_id)]
    if verified is None:
        gets.append(token_key(token_digest))
    values, counts = store.exchange(puts=puts, gets=gets, counters=counters)

    try:
        if verified is None:
            verified, put = _verify(token_digest, token_organization, values[1])
            if put is not None:
                store.exchange(puts=[put])
        api_key = services.token_check(verified=verified, raw_api_key=raw_api_key)
    except (services.TokenInvalid, services.TokenExpired) as refused:
        store.decrement([c.key for c in counters])
        message = EXPIRED if isinstance(refused, services.TokenExpired) else INVALID
        raise Unauthorized(message) from None
    refusal = rate_limit_refusal(
        counts=counts, counters=counters, windows=windows, now=now, scope_label=scope_label
    )
    if refusal is not None:
        raise refusal
    return Admission(api_key, schema_version(organization_id, read=values[0]))
