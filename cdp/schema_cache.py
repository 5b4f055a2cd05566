"""An organization's schema, kept in each worker process between requests: its data
models with their fields (`cdp.selectors.organization_models`) and what apps build from
them (journeys: the compiled User Event configurations), so the ingest path resolves
objectTypes, momCodes and User Events without a query.

Coherence across workers: a per-organization version token lives in the shared store;
every change to a watched model (DataModel, FieldDefinition, and what apps register with
`schema_cache_watch`), through any path, replaces the token, and a worker serves its
copy only while the token it was loaded under is current. The ingest path reads the
token in its one round trip to the store (`cdp/gate.py`); other callers pay one read.
The token is replaced when the change is saved (so the same process sees it at once)
and again when its transaction commits (so no worker can have cached, under the new
token, what it read before the commit). A lost token is drawn again, which also
invalidates every copy.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction

from cdp.shared_store import Put, shared_store

_PREFIX = "cdp:schema-version:"
_MAX_COPIES = 1024

_lock = threading.Lock()
_copies: OrderedDict[tuple[int, bytes, str], Any] = OrderedDict()

T = TypeVar("T")


def schema_version_key(organization_id: int) -> str:
    return _PREFIX + str(organization_id)


def schema_version(organization_id: int, *, read: bytes | None = None) -> bytes:
    """The organization's current token; `read` is the value the caller already read from
    the store (None: not read, or missing), so that only a missing token costs a call."""
    if read is not None:
        return read
    key = schema_version_key(organization_id)
    (held,) = shared_store().get_many([key])
    return held if held is not None else shared_store().add(key, secrets.token_hex(8).encode())


def schema_cached(
    organization_id: int, name: str, load: Callable[[], T], *, version: bytes | None = None
) -> T:
    """`load()`'s result for this organization, from this worker's copy while the schema
    version it was loaded under is current. `name` tells apart what different callers
    keep; `version` is the token when the caller already read it."""
    slot = (organization_id, version or schema_version(organization_id), name)
    with _lock:
        if slot in _copies:
            _copies.move_to_end(slot)
            return _copies[slot]
    loaded = load()
    with _lock:
        _copies[slot] = loaded
        while len(_copies) > _MAX_COPIES:
            _copies.popitem(last=False)
    return loaded


def schema_changed(organization_id: int) -> None:
    """Invalidate every worker's copies of the organization's schema."""

    def replace() -> None:
        key = schema_version_key(organization_id)
        shared_store().exchange(puts=[Put(key, secrets.token_hex(8).encode(), None)])

    replace()
    transaction.on_commit(replace)


def _on_change(sender: type, instance: Any, **kwargs: Any) -> None:
    schema_changed(instance.organization_id)


def schema_cache_watch(*models: type) -> None:
    """Replace the organization's token whenever a row of `models` (each with an
    `organization_id`) is saved or deleted. Signals, not services, because every writer
    of these rows must invalidate (see cdp/token_cache.py)."""
    from django.db.models.signals import post_delete, post_save

    for model in models:
        for signal in (post_save, post_delete):
            signal.connect(_on_change, sender=model, dispatch_uid=f"schema_cache_{model.__name__}")
