"""API keys and tokens: random from `secrets`, stored only as a SHA-256 digest.

Random 160-bit keys do not need a slow password hash; a digest compared with
`hmac.compare_digest` is the standard for them (see djangorestframework-api-key).
"""

import hashlib
import hmac
import re
import secrets

API_KEY_RE = re.compile(r"^[0-9a-f]{40}\Z")  # `\Z`: `$` would accept a trailing newline
API_KEY_PREFIX_LENGTH = 8


def api_key_generate() -> str:
    return secrets.token_hex(20)


# A token names its organization in front, `<organization id in base 36>.<random>`, so
# that it is looked up by (organization, digest): on one shard once the tenant tables are
# distributed (docs/scale-out.md). Clients treat tokens as opaque; nothing is secret about
# the prefix, and the digest covers the whole token, so a changed prefix finds nothing.
TOKEN_RE = re.compile(r"^([0-9a-z]{1,13})\.[A-Za-z0-9_-]{43}\Z")


def token_generate(organization_id: int) -> str:
    return f"{_base36(organization_id)}.{secrets.token_urlsafe(32)}"


def token_organization_id(raw: str) -> int | None:
    """The organization a token names, or None for a string no token has."""
    match = TOKEN_RE.match(raw)
    return int(match[1], 36) if match else None


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
        if not number:
            return digits


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def digest_matches(raw: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(raw), stored_digest)


def api_key_prefix(raw: str) -> str:
    return raw[:API_KEY_PREFIX_LENGTH]
