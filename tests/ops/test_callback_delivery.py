"""Callback delivery against a real HTTP server on 127.0.0.1: payload, headers, checksum,
retries with exponential backoff on a controlled clock, and final failure."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
import threading
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from cdp.callback_settings import callback_secret_rotate, callback_settings_set
from cdp.models import EntityRecord
from ingestion import pipeline
from ingestion.callbacks import (
    CALLBACKS_OFF,
    callback_backoff,
    callback_delivery_retry,
    callbacks_claim,
    callbacks_deliver_due,
)
from ingestion.models import CallbackDelivery, CallbackStatus
from tests.ops.conftest import callback_enable, ingest, member


def expected_checksum(secret: str, timestamp: str, body: bytes) -> str:
    """What a partner computes (docs/callbacks.md), written out independently here."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def clock_start():
    # Rows written by an ingest just now are due from the moment they were written.
    return timezone.now().replace(microsecond=0) + timedelta(seconds=1)


def deliveries(tenant):
    return CallbackDelivery.objects.filter(organization=tenant.organization)


def test_callback_posts_payload_headers_and_a_checksum_the_partner_recomputes(
    client, tenant_a, token_a, tenant_b, token_b, callback_server
):
    secret = callback_enable(tenant_a, callback_server.url)
    response = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", customerId="C-1"), {"refId": "R-2"}],
    )
    assert response.status_code == 200, response.content
    ingest(client, tenant_b, token_b, [member(tenant_b, "R-1")])  # B's callback is off
    now = clock_start()

    run = callbacks_deliver_due(now=now)

    assert (run.claimed, run.delivered) == (1, 1)
    [received] = callback_server.received
    record = EntityRecord.objects.get(organization=tenant_a.organization, key="R-1")
    rejected = response.json()["results"][1]
    assert received.json == {
        "data": {
            "R-1": {"status": 200, "cdpId": record.cdp_id},
            "R-2": {"status": 101, "errorMessage": rejected["errorMessage"]},
        }
    }
    assert rejected["errorMessage"]  # the partner learns why
    assert received.path == "/cdp-callback?partner=acme"
    headers = received.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["ApiKey"] == tenant_a.raw_key[:8]
    assert headers["X-Request-Id"] == response.json()["requestId"]
    assert headers["X-Callback-Timestamp"] == str(int(now.timestamp()))
    assert headers["Checksum"] == expected_checksum(
        secret, headers["X-Callback-Timestamp"], received.body
    )
    assert tenant_a.raw_key not in str(headers) + received.body.decode()
    assert secret not in str(headers) + received.body.decode()
    delivery = deliveries(tenant_a).get()
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == (
        CallbackStatus.DELIVERED,
        1,
        now,
    )
    assert (delivery.last_status_code, delivery.last_error) == (200, "")
    assert not deliveries(tenant_b).exists()


def test_failed_attempt_is_retried_after_the_backoff(client, tenant_a, token_a, callback_server):
    secret = callback_enable(tenant_a, callback_server.url)
    callback_server.statuses = [500]
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    t0 = clock_start()

    first = callbacks_deliver_due(now=t0)
    delivery = deliveries(tenant_a).get()

    assert (first.claimed, first.retrying) == (1, 1)
    assert delivery.status == CallbackStatus.PENDING
    assert delivery.attempts == 1
    assert delivery.last_status_code == 500
    assert delivery.last_error == "HTTP 500: partner is down"
    assert delivery.next_attempt_at == t0 + timedelta(seconds=60)

    assert callbacks_deliver_due(now=t0 + timedelta(seconds=59)).claimed == 0
    assert len(callback_server.received) == 1

    second = callbacks_deliver_due(now=t0 + timedelta(seconds=60))

    assert second.delivered == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (CallbackStatus.DELIVERED, 2)
    assert delivery.delivered_at == t0 + timedelta(seconds=60)
    retried = callback_server.received[1]
    assert retried.body == callback_server.received[0].body
    assert retried.headers["X-Callback-Timestamp"] == str(int(t0.timestamp()) + 60)
    assert retried.headers["Checksum"] == expected_checksum(
        secret, retried.headers["X-Callback-Timestamp"], retried.body
    )


def test_default_backoff_doubles_from_a_minute_and_fails_after_ten_attempts(
    client, tenant_a, token_a, callback_server
):
    callback_enable(tenant_a, callback_server.url)
    callback_server.statuses = [503] * 10
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    now = clock_start()
    waits = []

    for _attempt in range(10):
        assert callbacks_deliver_due(now=now).claimed == 1
        delivery = deliveries(tenant_a).get()
        if delivery.status == CallbackStatus.PENDING:
            waits.append((delivery.next_attempt_at - now).total_seconds())
            # One second early, nothing is sent.
            assert (
                callbacks_deliver_due(now=delivery.next_attempt_at - timedelta(seconds=1)).claimed
                == 0
            )
            now = delivery.next_attempt_at

    assert waits == [60 * 2**n for n in range(9)]  # 1 min, 2, 4 … 256 min (under the 6 h cap)
    assert delivery.status == CallbackStatus.FAILED
    assert delivery.attempts == 10
    assert delivery.last_error == "HTTP 503: partner is down"
    assert delivery.delivered_at is None
    assert len(callback_server.received) == 10
    assert callbacks_deliver_due(now=now + timedelta(days=30)).claimed == 0


def test_backoff_is_capped_by_the_setting(client, tenant_a, token_a, callback_server, settings):
    settings.CDP_CALLBACK_BACKOFF_BASE_SECONDS = 100
    settings.CDP_CALLBACK_BACKOFF_MAX_SECONDS = 300
    settings.CDP_CALLBACK_MAX_ATTEMPTS = 5
    callback_enable(tenant_a, callback_server.url)
    callback_server.statuses = [500] * 5
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    now = clock_start()
    waits = []

    for _attempt in range(5):
        callbacks_deliver_due(now=now)
        delivery = deliveries(tenant_a).get()
        if delivery.status == CallbackStatus.PENDING:
            waits.append((delivery.next_attempt_at - now).total_seconds())
            now = delivery.next_attempt_at

    assert waits == [100, 200, 300, 300]
    assert (delivery.status, delivery.attempts) == (CallbackStatus.FAILED, 5)


def test_a_timeout_is_a_failed_attempt(client, tenant_a, token_a, callback_server, settings):
    settings.CDP_CALLBACK_TIMEOUT_SECONDS = 1
    callback_enable(tenant_a, callback_server.url)
    callback_server.delay = 2.5
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])

    run = callbacks_deliver_due(now=clock_start())

    delivery = deliveries(tenant_a).get()
    assert run.retrying == 1
    assert (delivery.status, delivery.attempts) == (CallbackStatus.PENDING, 1)
    assert delivery.last_status_code is None
    assert delivery.last_error == "timed out after 1 s"


def test_a_refused_connection_is_a_failed_attempt(client, tenant_a, token_a):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    callback_enable(tenant_a, f"http://127.0.0.1:{port}/cb")
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])

    callbacks_deliver_due(now=clock_start())

    delivery = deliveries(tenant_a).get()
    assert (delivery.status, delivery.attempts) == (CallbackStatus.PENDING, 1)
    assert delivery.last_error == "connection refused"


def test_private_address_is_refused_again_at_delivery(
    client, tenant_a, token_a, callback_server, settings
):
    callback_enable(tenant_a, callback_server.url)  # allowed when configured (tests allow it)
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False

    run = callbacks_deliver_due(now=clock_start())

    delivery = deliveries(tenant_a).get()
    assert run.retrying == 1
    assert callback_server.received == []
    assert delivery.status == CallbackStatus.PENDING
    assert delivery.last_error.startswith("refused: The callback host 127.0.0.1 resolves to ")
    assert "loopback address" in delivery.last_error


def test_callbacks_turned_off_before_delivery_are_not_sent(
    client, tenant_a, token_a, callback_server
):
    callback_enable(tenant_a, callback_server.url)
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    callback_settings_set(
        organization=tenant_a.organization, url=callback_server.url, enabled=False
    )

    run = callbacks_deliver_due(now=clock_start())

    delivery = deliveries(tenant_a).get()
    assert run.failed == 1
    assert callback_server.received == []
    assert (delivery.status, delivery.last_error) == (CallbackStatus.FAILED, CALLBACKS_OFF)


def test_a_rotated_secret_signs_the_next_delivery(client, tenant_a, token_a, callback_server):
    old = callback_enable(tenant_a, callback_server.url)
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])

    new = callback_secret_rotate(organization=tenant_a.organization)
    callbacks_deliver_due(now=clock_start())

    [received] = callback_server.received
    timestamp = received.headers["X-Callback-Timestamp"]
    assert new != old
    assert received.headers["Checksum"] == expected_checksum(new, timestamp, received.body)
    assert received.headers["Checksum"] != expected_checksum(old, timestamp, received.body)


def test_a_failed_delivery_can_be_retried_within_its_organization(
    client, tenant_a, token_a, tenant_b, callback_server, settings
):
    settings.CDP_CALLBACK_MAX_ATTEMPTS = 1
    callback_enable(tenant_a, callback_server.url)
    callback_server.statuses = [500]
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    now = clock_start()
    callbacks_deliver_due(now=now)
    delivery = deliveries(tenant_a).get()
    assert delivery.status == CallbackStatus.FAILED

    with pytest.raises(CallbackDelivery.DoesNotExist):
        callback_delivery_retry(organization=tenant_b.organization, delivery_id=delivery.pk)
    callback_delivery_retry(organization=tenant_a.organization, delivery_id=delivery.pk, now=now)
    run = callbacks_deliver_due(now=now)

    delivery.refresh_from_db()
    assert run.delivered == 1
    assert (delivery.status, delivery.attempts) == (CallbackStatus.DELIVERED, 1)


def test_worker_command_once_sends_what_is_due(client, tenant_a, token_a, callback_server):
    callback_enable(tenant_a, callback_server.url)
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-2")])
    out = StringIO()

    call_command("run_worker", "--once", stdout=out)

    assert out.getvalue().startswith("Ran ")
    assert len(callback_server.received) == 2
    assert set(deliveries(tenant_a).values_list("status", flat=True)) == {"delivered"}


def test_an_import_callback_carries_no_api_key_header(tenant_a, callback_server):
    callback_enable(tenant_a, callback_server.url)
    pipeline.ingest(
        organization=tenant_a.organization,
        api_key=None,
        request_id=uuid.uuid4().hex,
        data={
            "objectType": "custom-model",
            "source": "import",
            "entries": [member(tenant_a, "R-1")],
        },
        init_data=False,
    )

    callbacks_deliver_due(now=clock_start())

    [received] = callback_server.received
    assert "ApiKey" not in received.headers
    assert received.json["data"]["R-1"]["status"] == 200


def test_a_partner_trickling_its_answer_is_cut_at_the_timeout(client, tenant_a, token_a, settings):
    """The timeout bounds the whole send: a partner answering a byte at a time, each
    byte well within the socket timeout, cannot keep a send alive past it (and past the
    claim's lease, when another worker would send the row again)."""
    settings.CDP_CALLBACK_TIMEOUT_SECONDS = 1
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                if stop.wait(0.3):
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(bytes([byte]))

    partner = threading.Thread(target=trickle, daemon=True)
    partner.start()
    callback_enable(tenant_a, f"http://127.0.0.1:{listener.getsockname()[1]}/cb")
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])

    began = time.monotonic()
    run = callbacks_deliver_due(now=clock_start())
    took = time.monotonic() - began
    stop.set()
    partner.join(timeout=5)
    listener.close()

    delivery = deliveries(tenant_a).get()
    assert run.retrying == 1
    assert took < 3, took  # the whole answer would take about 12 s
    assert (delivery.status, delivery.attempts) == (CallbackStatus.PENDING, 1)
    assert delivery.last_error == "timed out after 1 s"


def test_backoff_waits_are_lengthened_by_a_random_share_up_to_the_jitter(settings):
    settings.CDP_CALLBACK_BACKOFF_JITTER = 0.1
    waits = {callback_backoff(3).total_seconds() for _ in range(200)}

    assert all(240 <= wait <= 264 for wait in waits), sorted(waits)[:3]
    assert len(waits) > 100  # spread, not one value


def test_retry_clears_a_lease_left_by_a_dead_worker(client, tenant_a, token_a, callback_server):
    callback_enable(tenant_a, callback_server.url)
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    now = clock_start()
    delivery = deliveries(tenant_a).get()
    # A worker leased the row, then died mid-send.
    deliveries(tenant_a).update(
        status=CallbackStatus.FAILED, locked_until=now + timedelta(hours=1), locked_by="dead"
    )

    callback_delivery_retry(organization=tenant_a.organization, delivery_id=delivery.pk, now=now)
    run = callbacks_deliver_due(now=now)

    assert run.delivered == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.locked_by) == (CallbackStatus.DELIVERED, "")
    assert len(callback_server.received) == 1


def test_a_row_leased_meanwhile_is_not_claimed_twice(client, tenant_a, token_a, monkeypatch):
    """Two workers whose selects saw the same due row: only the first lease counts (on
    databases without SKIP LOCKED the select does not keep the second one off)."""
    callback_enable(tenant_a, "http://127.0.0.1:9/cb")
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    now = clock_start()
    first = callbacks_claim(now=now, batch_size=5, lease_seconds=60, claim_id="first")
    # The second worker's select ran before the first lease was written.
    deliveries(tenant_a).update(locked_until=None, locked_by="")
    real_filter = CallbackDelivery.objects.filter
    leased_by_first = []

    def lease_first_then_filter(*args, **kwargs):
        if kwargs.get("pk__in") and not leased_by_first:
            leased_by_first.append(True)
            real_filter(pk__in=kwargs["pk__in"]).update(
                locked_until=now + timedelta(seconds=60), locked_by="first"
            )
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(CallbackDelivery.objects, "filter", lease_first_then_filter)
    second = callbacks_claim(now=now, batch_size=5, lease_seconds=60, claim_id="second")

    assert [row.locked_by for row in first] == ["first"]
    assert second == []
    assert deliveries(tenant_a).get().locked_by == "first"


def test_a_claim_takes_organizations_oldest_first_and_locks_within_each(
    client, tenant_a, token_a, tenant_b, token_b
):
    """Claims go organization by organization (every lock within one: one shard once
    distributed), the organization with the oldest due row first; the batch is filled
    across them and handed back oldest first."""
    for tenant, token in ((tenant_a, token_a), (tenant_b, token_b)):
        callback_enable(tenant, "http://127.0.0.1:9/cb")
        for n in range(3):
            ingest(client, tenant, token, [member(tenant, f"R-{n}")])
    now = clock_start()
    for index, row in enumerate(deliveries(tenant_a).order_by("pk")):
        deliveries(tenant_a).filter(pk=row.pk).update(
            next_attempt_at=now - timedelta(seconds=10 - index)
        )
    for index, row in enumerate(deliveries(tenant_b).order_by("pk")):
        deliveries(tenant_b).filter(pk=row.pk).update(
            next_attempt_at=now - timedelta(seconds=20 - index)
        )

    rows = callbacks_claim(now=now, batch_size=4, lease_seconds=60, claim_id="c")

    b_ids = list(deliveries(tenant_b).order_by("pk").values_list("pk", flat=True))
    a_oldest = deliveries(tenant_a).order_by("pk").first()
    assert [row.pk for row in rows] == [*b_ids, a_oldest.pk]
    assert deliveries(tenant_b).filter(locked_by="c").count() == 3
    assert list(deliveries(tenant_a).filter(locked_by="c").values_list("pk", flat=True)) == [
        a_oldest.pk
    ]
