"""An organization's data models with their schemas, kept in each worker process between
requests, so the ingest hot path resolves objectTypes and momCodes without a query.

Coherence across workers: a per-organization version token lives in the shared cache;
every change to a DataModel or FieldDefinition (through any path: services, the Console,
provisioning) replaces the token, and a worker serves its copy only while the token it
was loaded under is still current. A request pays one cache read for that check. If the
shared cache loses the token, a new one is drawn, which also invalidates every copy.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

_PREFIX = "cdp:models-version:"
_MAX_ORGANIZATIONS = 512

_lock = threading.Lock()
_copies: OrderedDict[tuple[int, str], Any] = OrderedDict()


def _version(organization_id: int) -> str:
    key = _PREFIX + str(organization_id)
    version = cache.get(key)
    if version is None:
        cache.add(key, secrets.token_hex(8), timeout=None)
        version = cache.get(key)
    return version


def models_cached(organization_id: int, load: Callable[[], Any]) -> Any:
    """The organization's models as `load()` returns them, from this worker's copy while it
    is current."""
    slot = (organization_id, _version(organization_id))
    with _lock:
        if slot in _copies:
            _copies.move_to_end(slot)
            return _copies[slot]
    loaded = load()
    with _lock:
        _copies[slot] = loaded
        while len(_copies) > _MAX_ORGANIZATIONS:
            _copies.popitem(last=False)
    return loaded


def models_changed(organization_id: int) -> None:
    """Invalidate every worker's copy of the organization's models."""
    cache.set(_PREFIX + str(organization_id), secrets.token_hex(8), timeout=None)


def _on_change(sender: type, instance: Any, **kwargs: Any) -> None:
    models_changed(instance.organization_id)


def model_cache_connect() -> None:
    """Connect the invalidation receivers (from CdpConfig.ready). Signals, not services,
    because every writer of these rows must invalidate (see cdp/token_cache.py)."""
    from django.db.models.signals import post_delete, post_save

    from cdp.models import DataModel, FieldDefinition

    for model in (DataModel, FieldDefinition):
        for signal in (post_save, post_delete):
            signal.connect(_on_change, sender=model, dispatch_uid=f"model_cache_{model.__name__}")
