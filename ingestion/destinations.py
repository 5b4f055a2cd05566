"""Destinations: an organization's user events pushed, signed, to other systems.

Queuing: the ingest plan routes the request's events to the organization's enabled
destinations (`destination_routes`, cached with the schema) and holds one delivery row per
destination and 100 events (`deliveries_plan`); the write statement stores them with the
events, in the request's transaction (ingestion/writer.py). A dry run writes nothing, and
events suppressed by initData are not events: neither is queued.

Delivering (`manage.py run_worker`, task `deliver_destinations`): due rows are claimed
with a lease as the callback outbox's are (ingestion/callbacks.py `outbox_claim`), their
events read and rendered exactly as the Read API lists them, and POSTed with the Standard
Webhooks headers: `webhook-id` (the row's, the same on every attempt), `webhook-timestamp`
and `webhook-signature` (`v1,` + base64 HMAC-SHA256 over `<id>.<timestamp>.<body>`, keyed
with the base64-decoded part of the `whsec_` secret). A 2xx answer is delivered; anything
else is retried with the callback backoff until the last attempt fails the row. At least
once: receivers deduplicate by `eventId` (docs/destinations.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from cdp.callback_settings import CallbackUrlRefused, callback_target_resolve, callback_url_check
from cdp.models import Organization
from cdp.schema_cache import schema_cached
from ingestion.callbacks import (
    Attempt,
    DeliveryRun,
    http_post,
    outbox_deliver_due,
)
from ingestion.models import CallbackStatus, Destination, DestinationDelivery
from ingestion.selectors import user_event_as_json
from journeys.events import EventRow
from journeys.models import UserEvent

BATCH_EVENTS = 100
USER_AGENT = "cdp-destinations/1.0"
SECRET_PREFIX = "whsec_"


class DestinationInvalid(ValueError):
    """A destination's settings cannot be saved; the message says why."""


# ---------------------------------------------------------------------------------------
# The signature (Standard Webhooks).


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_signature(*, secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_headers(*, secret: str, webhook_id: str, body: bytes, now: datetime) -> dict[str, str]:
    timestamp = str(int(now.timestamp()))
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": webhook_signature(
            secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body
        ),
    }


# ---------------------------------------------------------------------------------------
# Settings (the Console and provisioning).


def destination_settings_check(
    *, name: str, url: str, events: Iterable[str]
) -> tuple[str, str, list[str]]:
    """The settings as stored (name stripped, event names sorted and unique), or
    DestinationInvalid saying which is wrong (`<field>: <why>`)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise DestinationInvalid("name: required, at most 100 characters")
    try:
        callback_url_check(url)
    except CallbackUrlRefused as refused:
        raise DestinationInvalid(f"url: {refused}") from None
    names = list(events)
    if any(not isinstance(e, str) or not e.strip() for e in names):
        raise DestinationInvalid("events: event names, each a non-empty string")
    return name, url, sorted({e.strip() for e in names})


def destination_create(
    *,
    organization: Organization,
    name: str,
    url: str,
    events: Iterable[str] = (),
    enabled: bool = True,
) -> tuple[Destination, str]:
    """A new destination and its signing secret (returned once; shown once)."""
    name, url, names = destination_settings_check(name=name, url=url, events=events)
    if Destination.objects.filter(organization=organization, name=name).exists():
        raise DestinationInvalid(f"name: a destination named {name!r} exists already")
    secret = secret_generate()
    destination = Destination.objects.create(
        organization=organization,
        name=name,
        url=url,
        events=names,
        enabled=enabled,
        secret=secret,
    )
    return destination, secret


def destination_update(
    *,
    destination: Destination,
    url: str | None = None,
    events: Iterable[str] | None = None,
    enabled: bool | None = None,
) -> Destination:
    """Change a destination; disabling it stops new queuing and pauses its deliveries."""
    _, url, names = destination_settings_check(
        name=destination.name,
        url=destination.url if url is None else url,
        events=destination.events if events is None else events,
    )
    destination.url, destination.events = url, names
    if enabled is not None:
        destination.enabled = enabled
    destination.save(update_fields=["url", "events", "enabled", "updated_at"])
    return destination


def deliveries_replay(
    *, organization: Organization, destination: Destination, delivery_ids: Sequence[int] | None
) -> int:
    """Queue failed deliveries of `destination` again (the given ones, or all), with a
    fresh set of attempts and the same webhook-id; how many."""
    failed = DestinationDelivery.objects.filter(
        organization=organization, destination=destination, status=CallbackStatus.FAILED
    )
    if delivery_ids is not None:
        failed = failed.filter(pk__in=list(delivery_ids))
    return failed.update(
        status=CallbackStatus.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        locked_until=None,
        locked_by="",
    )


# ---------------------------------------------------------------------------------------
# Queuing (the ingest plan).


@dataclass(frozen=True)
class DestinationRoute:
    destination_id: int
    events: frozenset[str]  # empty: every event

    def takes(self, event_name: str) -> bool:
        return not self.events or event_name in self.events


def destination_routes(
    organization_id: int, *, version: bytes | None = None
) -> tuple[DestinationRoute, ...]:
    """The organization's enabled destinations, kept with its schema (a change to a
    destination replaces the schema's version, ingestion/apps.py)."""

    def load() -> tuple[DestinationRoute, ...]:
        rows = Destination.objects.filter(organization_id=organization_id, enabled=True)
        return tuple(
            DestinationRoute(pk, frozenset(events))
            for pk, events in rows.order_by("pk").values_list("pk", "events")
        )

    return schema_cached(organization_id, "destinations", load, version=version)


def deliveries_plan(
    routes: Sequence[DestinationRoute], events: Sequence[EventRow]
) -> list[dict[str, object]]:
    """The delivery rows of a request's events: per destination, its events in request
    order, 100 to a row."""
    rows: list[dict[str, object]] = []
    for route in routes:
        ids = [e.event_id for e in events if route.takes(e.event_name)]
        for start in range(0, len(ids), BATCH_EVENTS):
            rows.append(
                {
                    "destination_id": route.destination_id,
                    "webhook_id": f"msg_{uuid.uuid4().hex}",
                    "event_ids": ids[start : start + BATCH_EVENTS],
                }
            )
    return rows


# ---------------------------------------------------------------------------------------
# Delivering.


def delivery_body(row: DestinationDelivery) -> bytes:
    """`{"type": "user-events", "events": [...]}`: the row's stored events, in its order,
    each as the Read API lists it."""
    stored = {
        e.event_id: e
        for e in UserEvent.objects.filter(
            organization_id=row.organization_id, event_id__in=row.event_ids
        ).select_related("config")
    }
    events = [user_event_as_json(stored[i]) for i in row.event_ids if i in stored]
    return orjson.dumps({"type": "user-events", "events": events})


def _attempt(
    row: DestinationDelivery, destination: Destination, *, now: datetime, timeout: int
) -> Attempt:
    try:
        target = callback_target_resolve(destination.url)
    except CallbackUrlRefused as refused:
        return Attempt(None, f"refused: {refused}")
    body = delivery_body(row)
    headers = webhook_headers(
        secret=destination.secret, webhook_id=row.webhook_id, body=body, now=now
    )
    return http_post(target, body, headers, timeout)


def destinations_deliver_due(*, batch_size: int = 10, now: datetime | None = None) -> DeliveryRun:
    """Claim up to `batch_size` due deliveries of enabled destinations and send each once
    (`outbox_deliver_due`)."""

    def sender(
        rows: list[DestinationDelivery],
    ) -> Callable[[DestinationDelivery, datetime], Attempt]:
        destinations = Destination.objects.filter(
            organization_id__in={r.organization_id for r in rows}
        ).in_bulk({r.destination_id for r in rows})
        timeout = settings.CDP_CALLBACK_TIMEOUT_SECONDS
        return lambda row, at: _attempt(
            row, destinations[row.destination_id], now=at, timeout=timeout
        )

    return outbox_deliver_due(
        DestinationDelivery,
        sender,
        now=now,
        batch_size=batch_size,
        within=Q(destination__enabled=True),
    )
