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


def token_generate() -> str:
    return secrets.token_urlsafe(32)


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def digest_matches(raw: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(raw), stored_digest)


def api_key_prefix(raw: str) -> str:
    return raw[:API_KEY_PREFIX_LENGTH]
