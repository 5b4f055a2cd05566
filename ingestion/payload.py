"""Reading and checking an ingest request's body, checks 5–9 of the wire contract, in order."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from cdp.errors import EntriesLimitExceeded, InvalidJson, InvalidValue
from cdp.request_body import body_read as request_body_read
from cdp.request_body import json_parse, payload_too_large


@dataclass(frozen=True)
class IngestPayload:
    object_type: str
    source: str
    entries: list[Any]
    je_config_id: str | None
    je_event_key: str | None
    ignored_update_cfs: tuple[str, ...]
    init_data: bool


def body_read(source: bytes | HttpRequest) -> bytes:
    """The raw body, refused (413) before it is parsed when it is over
    CDP_INGEST_MAX_BODY_BYTES: from an HTTP request as `cdp.request_body.body_read` reads
    it (a lying or absent length, a chunked body, cannot get past the limit); bytes (the
    Console's test form) are checked as they are."""
    limit = settings.CDP_INGEST_MAX_BODY_BYTES
    if not isinstance(source, bytes):
        return request_body_read(source, limit)
    if len(source) > limit:
        raise payload_too_large(limit)
    return source


# Set on every request by cdp.middleware.RequestIdMiddleware. HttpRequest's type does not
# declare it, so it is read by name (`http_request_id`).
REQUEST_ID_ATTRIBUTE = "request_id"


def http_request_id(request: HttpRequest) -> str:
    """The request's id (32 hex), as cdp.middleware.RequestIdMiddleware set it."""
    request_id: str = getattr(request, REQUEST_ID_ATTRIBUTE)
    return request_id


# Valid JSON syntax, but no text PostgreSQL can store (in text or jsonb): U+0000, and a
# lone surrogate (an escape such as "\ud800" without its pair, which is no Unicode
# character at all, and which neither UTF-8 nor orjson can write). Refused here, as bad
# JSON, rather than failing (500) at the write. orjson refuses lone surrogates as it
# parses, so a body only needs the scan for U+0000; import_records' JSON and CSV readers
# (the standard library's) let both through.


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    if text.isascii():  # O(1): most text, and no surrogate can be in it
        return False
    try:
        text.encode("utf-8")  # fails on a lone surrogate, and on nothing else
    except UnicodeEncodeError:
        return True
    return False


def holds_unstorable_text(data: Any) -> bool:
    """Whether any string, key or value, anywhere in `data` holds U+0000 or a lone
    surrogate (which PostgreSQL cannot store). Also used by import_records, whose files
    are not parsed here."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if _unstorable(value):
                return True
        elif isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def body_parse(body: bytes, content_type: str) -> dict[str, Any]:
    """The body as a JSON object (check 6), parsed with orjson: strict UTF-8, no NaN or
    Infinity, no lone surrogates, nesting at most 1024 deep."""
    data = json_parse(body, content_type)
    if not isinstance(data, dict):
        raise InvalidJson("Body must be a JSON object")
    # U+0000 reaches the data only through the escape "\u0000": scan only then.
    if b"\\u0000" in body and holds_unstorable_text(data):
        raise InvalidJson("Body holds text that cannot be stored: U+0000")
    return data


def _flag(raw: str | None) -> bool | None:
    """A `true`/`false` query value (any case; absent: false); None when it is neither."""
    if raw is None:
        return False
    lowered = raw.strip().lower()
    return lowered == "true" if lowered in ("true", "false") else None


def query_flags_parse(init_data: str | None, dry_run: str | None) -> tuple[bool, bool]:
    """Check 7: (initData, dryRun)."""
    flags = _flag(init_data), _flag(dry_run)
    bad = [name for name, flag in zip(("initData", "dryRun"), flags, strict=True) if flag is None]
    if bad:
        raise InvalidValue(bad)
    return flags[0] is True, flags[1] is True


def is_dry_run(raw: str | None) -> bool:
    """Whether the request asks for a dry run, before check 7 decides whether the value is
    valid: a dry run ignores the Idempotency-Key header, which is checked first."""
    return _flag(raw) is True


IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")


def idempotency_key_check(raw: str | None) -> str | None:
    """The `Idempotency-Key` header, checked right after the rate limits: 1–255 visible
    ASCII characters (None: no header)."""
    if raw is None:
        return None
    if not _IDEMPOTENCY_KEY_RE.fullmatch(raw):
        raise InvalidValue([IDEMPOTENCY_KEY_HEADER])
    return raw


def request_fingerprint(body: bytes, init_data: bool | str | None) -> str:
    """What a retry must repeat to be answered the stored answer: SHA-256 of the raw body
    bytes together with the initData value (as parsed; an invalid one as sent)."""
    value = init_data if isinstance(init_data, bool) else _flag(init_data)
    shown = str(value).lower() if value is not None else f"invalid:{init_data}"
    return hashlib.sha256(f"initData={shown}\n".encode() + body).hexdigest()


def _nonblank_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# The length of the stored `source` (EntityRecord, IngestionRequest): longer cannot be kept.
SOURCE_MAX_LENGTH = 100


def _source_text(value: Any) -> bool:
    return _nonblank_text(value) and len(value.strip()) <= SOURCE_MAX_LENGTH


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _text_list(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _blank_to_none(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


# The body's fields in the contract's order: messages name bad fields in this order.
_FIELD_CHECKS = (
    ("objectType", _nonblank_text),
    ("source", _source_text),
    ("jeConfigId", _optional_text),
    ("jeEventKey", _optional_text),
    ("entries", lambda v: isinstance(v, list) and len(v) > 0),
    ("ignoredUpdateCfs", _text_list),
)


def payload_check(
    data: dict[str, Any], *, init_data: bool, max_entries: int | None
) -> IngestPayload:
    """Checks 8 and 9; `max_entries` None takes any number (imports batch for themselves)."""
    bad = [name for name, is_valid in _FIELD_CHECKS if not is_valid(data.get(name))]
    if bad:
        raise InvalidValue(bad)
    entries = data["entries"]
    limit = max_entries
    if limit is not None and len(entries) > limit:
        raise EntriesLimitExceeded(
            f"Too many entries: {len(entries)}; the limit is {limit} per request"
        )
    return IngestPayload(
        object_type=data["objectType"].strip(),
        source=data["source"].strip(),
        entries=entries,
        je_config_id=_blank_to_none(data.get("jeConfigId")),
        je_event_key=_blank_to_none(data.get("jeEventKey")),
        ignored_update_cfs=tuple(dict.fromkeys(data.get("ignoredUpdateCfs") or ())),
        init_data=init_data,
    )
