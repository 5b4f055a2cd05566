"""Two workers claiming at the same time never deliver one callback twice (PostgreSQL:
`SELECT … FOR UPDATE SKIP LOCKED` and leases). SQLite has a single writer and no row
locks, so there is no race to test there."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from ingestion.callbacks import DeliveryRun, callbacks_deliver_due
from ingestion.models import CallbackDelivery, CallbackStatus
from tests.conftest import tenant_create
from tests.ops.conftest import callback_enable

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite has no row locks (SKIP LOCKED), so workers cannot race",
    ),
]

ROWS = 20


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_deliver_one_row_twice(callback_server):
    tenant = tenant_create("Acme Retail", "ops@acme.test")
    callback_enable(tenant, callback_server.url)
    callback_server.delay = 0.02  # each send takes a while, so the claims overlap
    now = timezone.now()
    CallbackDelivery.objects.bulk_create(
        CallbackDelivery(
            organization=tenant.organization,
            request_id=uuid.uuid4().hex,
            body=f'{{"data":{{"R-{index}":{{"status":200,"cdpId":"x"}}}}}}',
            entries=1,
            next_attempt_at=now,
            created_at=now,
        )
        for index in range(ROWS)
    )
    barrier = threading.Barrier(2)
    runs: list[list[DeliveryRun]] = [[], []]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            while True:
                run = callbacks_deliver_due(now=now + timedelta(seconds=1), batch_size=3)
                runs[index].append(run)
                if not run.claimed:
                    return
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    request_ids = set(CallbackDelivery.objects.values_list("request_id", flat=True))
    assert set(callback_server.per_request_id) == request_ids
    assert set(callback_server.per_request_id.values()) == {1}  # each exactly once
    assert CallbackDelivery.objects.filter(status=CallbackStatus.DELIVERED).count() == ROWS
    # Both workers did part of the work: the claims really overlapped.
    delivered = [sum(r.delivered for r in worker_runs) for worker_runs in runs]
    assert sum(delivered) == ROWS
    assert all(count > 0 for count in delivered), delivered
