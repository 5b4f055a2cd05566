"""Suppressions: an erasure request made with `suppress` keeps a SHA-256 digest of each
identifier it was given, never the value, and from then on an entry carrying one of them
is refused (status 101, `Suppressed by an erasure request`) until an owner lifts it.

The digests travel with the organization's schema (`cdp.schema_cache`): every worker
keeps them in memory under the schema version the ingest path already reads, so the
check costs no query, and an organization without suppressions pays nothing per entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from cdp.models import ErasureRequest
from cdp.schema_cache import schema_cached

SUPPRESSED_MESSAGE = "Suppressed by an erasure request"

# The identifiers a person is erased and suppressed by, and the fields of an entry or a
# record that carry each: the Order model names its email and phone customerEmail and
# customerPhone (the same fields cdp.models' erasure indexes read).
IDENTIFIER_FIELDS: dict[str, tuple[str, ...]] = {
    "customerId": ("customerId",),
    "email": ("email", "customerEmail"),
    "phone": ("phone", "customerPhone"),
}


def identifier_digest(kind: str, value: str) -> str:
    """`<kind>:<SHA-256 hex>` of an identifier: emails compare case-insensitively, so
    theirs is the digest of the lower-cased address."""
    normalized = value.lower() if kind == "email" else value
    return f"{kind}:{hashlib.sha256(normalized.encode()).hexdigest()}"


def suppressed_digests(organization_id: int, *, version: bytes | None = None) -> frozenset[str]:
    """The organization's suppressed identifiers' digests, from this worker's copy while
    the schema version is current (`version`: the token, when the caller read it)."""

    def load() -> frozenset[str]:
        rows = ErasureRequest.objects.filter(
            organization_id=organization_id, suppress=True, suppression_lifted_at__isnull=True
        ).values_list("digests", flat=True)
        return frozenset(digest for digests in rows for digest in digests)

    return schema_cached(organization_id, "suppressions", load, version=version)


def suppressed_fields(values: Mapping[str, Any], digests: frozenset[str]) -> list[str]:
    """The fields of `values` (an entry's validated fields, flat) whose identifier
    `digests` suppress: ["customerId", …]; [] for none."""
    found = []
    for kind, fields in IDENTIFIER_FIELDS.items():
        for field in fields:
            value = values.get(field)
            if isinstance(value, str) and value and identifier_digest(kind, value) in digests:
                found.append(field)
    return found
