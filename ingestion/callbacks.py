"""Ingestion callbacks: the outbox row an ingest request writes, and its delivery.

Writing: the request's plan holds the callback row (ingestion/plan.py), written in the
ingest transaction with the records it reports (nothing when the organization's callback
is off).

Delivering (`manage.py run_worker`, whose `deliver_callbacks` task drains the outbox):
`callbacks_deliver_due` claims due rows with `SELECT … FOR UPDATE SKIP LOCKED`
(PostgreSQL; SQLite has one writer and no row locks, so a plain select is enough there)
and, still inside that short transaction, leases them by setting `locked_until`. It
sends outside the transaction, so no row lock or database connection is held across a
slow partner. A row is never sent by two workers at once: others skip it until the lease
ends, the lease outlasts the whole batch (every send is bounded by the timeout, and a
worker stops sending when its lease runs short), and the result is written only while
the row is still leased by the same claim. A worker that dies mid-batch leaves its rows
to be claimed again when the lease ends: delivery is at least once, and partners
deduplicate by `X-Request-Id` (docs/callbacks.md).

Every function that depends on time takes `now`, so tests drive the clock.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import random
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min, Q, QuerySet
from django.utils import timezone

from cdp.callback_settings import CallbackTarget, CallbackUrlRefused, callback_target_resolve
from cdp.models import Organization
from ingestion.models import CallbackDelivery, CallbackStatus

USER_AGENT = "cdp-callbacks/1.0"
# Time a worker keeps in hand, beyond the sends themselves, before its lease ends.
LEASE_MARGIN_SECONDS = 30
LAST_ERROR_MAX = 500
RESPONSE_SNIPPET_BYTES = 200
CALLBACKS_OFF = "callbacks are turned off for this organization; not sent"


# ---------------------------------------------------------------------------------------
# The signature (the wire format partners verify, docs/callbacks.md). The payload is
# decided with the request's plan (ingestion/plan.py) and written in its transaction.


def callback_checksum(*, secret: str, timestamp: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 with the secret over `<timestamp>.<raw body>`."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def callback_headers(
    *, secret: str, api_key_prefix: str, request_id: str, body: bytes, now: datetime
) -> dict[str, str]:
    timestamp = str(int(now.timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Request-Id": request_id,
        "X-Callback-Timestamp": timestamp,
        "Checksum": callback_checksum(secret=secret, timestamp=timestamp, body=body),
    }
    # Operator imports (`import_records`) send no key, so their callbacks carry no ApiKey.
    if api_key_prefix:
        headers["ApiKey"] = api_key_prefix
    return headers


def callback_delivery_retry(
    *, organization: Organization, delivery_id: int, now: datetime | None = None
) -> CallbackDelivery:
    """Send a failed (or pending) delivery again as soon as a worker runs, with a fresh
    set of attempts; the Console's "Retry" action. Raises CallbackDelivery.DoesNotExist
    for another organization's or an unknown row, ValueError for a delivered one."""
    now = now or timezone.now()
    delivery = CallbackDelivery.objects.get(organization=organization, pk=delivery_id)
    if delivery.status == CallbackStatus.DELIVERED:
        raise ValueError("This callback was delivered already.")
    delivery.status = CallbackStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    # A lease left by a worker that died mid-send would hold the retry back until it ends.
    delivery.locked_until, delivery.locked_by = None, ""
    CallbackDelivery.objects.filter(organization=organization, pk=delivery.pk).update(
        status=delivery.status,
        attempts=0,
        next_attempt_at=now,
        locked_until=None,
        locked_by="",
    )
    return delivery


# ---------------------------------------------------------------------------------------
# Claiming and delivering.


@dataclass
class DeliveryRun:
    """What one `callbacks_deliver_due` call did."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    error: str
    final: bool = False  # failed for good, whatever attempts remain

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def callback_backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: BASE, doubling, at most MAX; then
    lengthened by a random share of itself up to JITTER (never shortened)."""
    base = settings.CDP_CALLBACK_BACKOFF_BASE_SECONDS
    cap = settings.CDP_CALLBACK_BACKOFF_MAX_SECONDS
    wait = min(base * 2 ** max(attempts - 1, 0), cap)
    return timedelta(seconds=wait * (1 + random.uniform(0, settings.CDP_CALLBACK_BACKOFF_JITTER)))


def lease_seconds_for(batch_size: int) -> int:
    """A claim's lease: every send of the batch may take the whole timeout."""
    return batch_size * (settings.CDP_CALLBACK_TIMEOUT_SECONDS + 5) + LEASE_MARGIN_SECONDS


# The outboxes (this module's callbacks, ingestion/destinations.py's deliveries) share
# their machinery: rows with status, attempts, next_attempt_at and a lease
# (locked_until, locked_by), claimed, sent and recorded the same way.
Outbox = Any  # CallbackDelivery or DestinationDelivery, the model class


def _due(model: Outbox, now: datetime, within: Q) -> QuerySet:
    return (
        model.objects.filter(status=CallbackStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .filter(within)
    )


def callbacks_claim(
    *, now: datetime, batch_size: int, lease_seconds: int, claim_id: str
) -> list[CallbackDelivery]:
    """Lease up to `batch_size` due callbacks to the claim `claim_id` (`outbox_claim`)."""
    return outbox_claim(
        CallbackDelivery,
        now=now,
        batch_size=batch_size,
        lease_seconds=lease_seconds,
        claim_id=claim_id,
    )


def outbox_claim(
    model: Outbox,
    *,
    now: datetime,
    batch_size: int,
    lease_seconds: int,
    claim_id: str,
    within: Q | None = None,
) -> list[Any]:
    """Lease up to `batch_size` due rows of `model` (those `within` matches) to the claim
    `claim_id` until now + lease: the organizations whose oldest due row is oldest first,
    one organization per transaction, so that every lock is taken within one
    organization (one shard once the tables are distributed: docs/scale-out.md)."""
    within = within or Q()
    waiting = (
        _due(model, now, within)
        .values("organization_id")
        .annotate(oldest=Min("next_attempt_at"))
        .order_by("oldest", "organization_id")
        .values_list("organization_id", flat=True)
    )
    rows: list[Any] = []
    for organization_id in list(waiting[:batch_size]):
        left = batch_size - len(rows)
        rows += _claim_in(model, within, organization_id, now, left, lease_seconds, claim_id)
        if len(rows) >= batch_size:
            break
    rows.sort(key=lambda row: (row.next_attempt_at, row.pk))
    return rows


def _claim_in(
    model: Outbox,
    within: Q,
    organization_id: int,
    now: datetime,
    limit: int,
    lease_seconds: int,
    claim_id: str,
) -> list[Any]:
    with transaction.atomic():
        due = (
            _due(model, now, within)
            .filter(organization_id=organization_id)
            .order_by("next_attempt_at", "pk")
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        rows = list(due[:limit])
        if not rows:
            return []
        locked_until = now + timedelta(seconds=lease_seconds)
        ids = [row.pk for row in rows]
        # The lease is taken only where none is held, in one statement: exclusive even
        # where the select could not lock the rows (no SKIP LOCKED).
        model.objects.filter(organization_id=organization_id, pk__in=ids).filter(
            Q(locked_until__isnull=True) | Q(locked_until__lte=now)
        ).update(locked_until=locked_until, locked_by=claim_id)
        claimed = set(
            model.objects.filter(
                organization_id=organization_id, pk__in=ids, locked_by=claim_id
            ).values_list("pk", flat=True)
        )
    rows = [row for row in rows if row.pk in claimed]
    for row in rows:
        row.locked_until, row.locked_by = locked_until, claim_id
    return rows


# What an outbox's delivery makes of one claimed batch: a function sending one of its rows
# at a given time (it looks up, once per batch, what the rows' sends need).
Sender = Callable[[list[Any]], Callable[[Any, datetime], "Attempt"]]


def callbacks_deliver_due(*, now: datetime | None = None, batch_size: int = 10) -> DeliveryRun:
    """Claim up to `batch_size` due callbacks and send each once (`outbox_deliver_due`)."""

    def sender(rows: list[CallbackDelivery]) -> Callable[[CallbackDelivery, datetime], Attempt]:
        organizations = Organization.objects.in_bulk({row.organization_id for row in rows})
        timeout = settings.CDP_CALLBACK_TIMEOUT_SECONDS
        return lambda row, at: _attempt(
            row, organizations[row.organization_id], now=at, timeout=timeout
        )

    return outbox_deliver_due(CallbackDelivery, sender, now=now, batch_size=batch_size)


def outbox_deliver_due(
    model: Outbox,
    sender: Sender,
    *,
    now: datetime | None = None,
    batch_size: int = 10,
    within: Q | None = None,
) -> DeliveryRun:
    """Claim up to `batch_size` due rows of `model` (those `within` matches), send each once
    with what `sender` makes of the batch, and record each outcome.

    `now` freezes the clock (tests); by default every step reads the time afresh, so the
    timestamp a receiver checks is the time of its own request.
    """
    clock: Callable[[], datetime] = (lambda: now) if now is not None else timezone.now
    lease_seconds = lease_seconds_for(batch_size)
    claim_id = uuid.uuid4().hex
    rows = outbox_claim(
        model,
        now=clock(),
        batch_size=batch_size,
        lease_seconds=lease_seconds,
        claim_id=claim_id,
        within=within,
    )
    run = DeliveryRun(claimed=len(rows))
    if not rows:
        return run
    send = sender(rows)
    # Start no send that could outlast the lease (a send takes at most about the timeout).
    timeout = settings.CDP_CALLBACK_TIMEOUT_SECONDS
    last_start = time.monotonic() + lease_seconds - LEASE_MARGIN_SECONDS - timeout
    for index, row in enumerate(rows):
        if time.monotonic() > last_start:
            run.released = outbox_release(model, rows[index:], claim_id)
            break
        status = outbox_record(model, row, send(row, clock()), now=clock())
        if status == CallbackStatus.DELIVERED:
            run.delivered += 1
        elif status == CallbackStatus.FAILED:
            run.failed += 1
        elif status == CallbackStatus.PENDING:
            run.retrying += 1
    return run


def outbox_release(model: Outbox, rows: list[Any], claim_id: str) -> int:
    """Give back the leases of `rows` this claim has not used."""
    by_organization: dict[int, list[int]] = {}
    for row in rows:
        by_organization.setdefault(row.organization_id, []).append(row.pk)
    return sum(
        model.objects.filter(
            organization_id=organization_id, pk__in=ids, locked_by=claim_id
        ).update(locked_until=None, locked_by="")
        for organization_id, ids in by_organization.items()
    )


def _attempt(
    row: CallbackDelivery, organization: Organization, *, now: datetime, timeout: int
) -> Attempt:
    if not organization.callback_enabled or not organization.callback_url:
        return Attempt(None, CALLBACKS_OFF, final=True)
    try:
        # Checked again at every attempt: the host's DNS answer may have changed.
        target = callback_target_resolve(organization.callback_url)
    except CallbackUrlRefused as refused:
        return Attempt(None, f"refused: {refused}")
    body = row.body.encode("utf-8")
    headers = callback_headers(
        secret=organization.callback_secret,
        api_key_prefix=row.api_key_prefix,
        request_id=row.request_id,
        body=body,
        now=now,
    )
    return http_post(target, body, headers, timeout)


def outbox_record(model: Outbox, row: Any, attempt: Attempt, *, now: datetime) -> str | None:
    """Write the attempt's outcome, if the row is still leased by this claim; returns the
    row's new status, or None when the lease was lost (another worker owns it now)."""
    attempts = row.attempts + 1
    changes: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_status_code": attempt.status_code,
        "last_error": attempt.error[:LAST_ERROR_MAX],
        "locked_until": None,
        "locked_by": "",
    }
    if attempt.delivered:
        changes.update(status=CallbackStatus.DELIVERED, delivered_at=now, last_error="")
    elif attempt.final or attempts >= settings.CDP_CALLBACK_MAX_ATTEMPTS:
        changes.update(status=CallbackStatus.FAILED)
    else:
        changes.update(next_attempt_at=now + callback_backoff(attempts))
    written = model.objects.filter(
        organization_id=row.organization_id, pk=row.pk, locked_by=row.locked_by
    ).update(**changes)
    return changes.get("status", CallbackStatus.PENDING) if written else None


# ---------------------------------------------------------------------------------------
# HTTP: connect to the addresses the SSRF guard checked, never to a second DNS answer.


def _connect_pinned(
    conn: _PinnedHTTPConnection | _PinnedHTTPSConnection,
) -> socket.socket:
    error: OSError | None = None
    for address in conn._addresses:
        remaining = conn._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            return socket.create_connection((address, conn.port), remaining)
        except OSError as failure:
            error = failure
    raise error or OSError("no address to connect to")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: CallbackTarget, deadline: float) -> None:
        super().__init__(target.host, target.port, timeout=max(deadline - time.monotonic(), 0.1))
        self._addresses = target.addresses
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _connect_pinned(self)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Certificate and host name are verified against the URL's host, as usual."""

    def __init__(self, target: CallbackTarget, deadline: float) -> None:
        super().__init__(target.host, target.port, timeout=max(deadline - time.monotonic(), 0.1))
        self._addresses = target.addresses
        self._deadline = deadline

    def connect(self) -> None:
        sock = _connect_pinned(self)
        # `_context`: the SSL context HTTPSConnection.__init__ built (typeshed leaves the
        # private attribute out).
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self.host
        )


def _cut_at(deadline: float, conn: http.client.HTTPConnection) -> threading.Timer:
    """A watchdog that shuts the connection's socket at `deadline`: the socket timeout
    bounds each read, not the send, and a partner trickling its answer a byte at a time
    would keep one send alive past the claim's lease (and another worker would send the
    row again)."""

    def cut() -> None:
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(deadline - time.monotonic(), 0), cut)
    timer.daemon = True
    timer.start()
    return timer


def http_post(
    target: CallbackTarget, body: bytes, headers: dict[str, str], timeout: int
) -> Attempt:
    """One POST, done within `timeout` seconds in all (connecting, sending, reading)."""
    deadline = time.monotonic() + timeout
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = connection_class(target, deadline)
    watchdog = _cut_at(deadline, conn)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        snippet = response.read(RESPONSE_SNIPPET_BYTES)
    except TimeoutError:
        return Attempt(None, f"timed out after {timeout} s")
    except ConnectionRefusedError:
        return Attempt(None, "connection refused")
    except ssl.SSLError as error:
        return Attempt(None, f"TLS error: {error.reason or error}")
    except (http.client.HTTPException, OSError) as error:
        if time.monotonic() >= deadline:  # the watchdog cut it
            return Attempt(None, f"timed out after {timeout} s")
        if isinstance(error, http.client.HTTPException):
            return Attempt(None, f"invalid HTTP response ({type(error).__name__})")
        return Attempt(None, f"connection failed: {error.strerror or error}")
    finally:
        watchdog.cancel()
        conn.close()
    if 200 <= response.status < 300:
        return Attempt(response.status, "")
    text = " ".join(snippet.decode("utf-8", "replace").split())
    return Attempt(
        response.status, f"HTTP {response.status}: {text}" if text else f"HTTP {response.status}"
    )


def callback_deliveries_purge(*, before: datetime, batch_size: int = 5000) -> int:
    """Delete delivered and failed callbacks, of every organization, created before
    `before`; returns how many. Pending ones are kept, whatever their age."""
    deleted = 0
    finished = (CallbackStatus.DELIVERED, CallbackStatus.FAILED)
    for organization_id in Organization.objects.order_by("pk").values_list("pk", flat=True):
        old = CallbackDelivery.objects.filter(
            organization_id=organization_id, status__in=finished, created_at__lt=before
        )
        while ids := list(old.values_list("pk", flat=True)[:batch_size]):
            deleted += CallbackDelivery.objects.filter(
                organization_id=organization_id, pk__in=ids
            ).delete()[0]
    return deleted
