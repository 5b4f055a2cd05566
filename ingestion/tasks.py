"""The ingestion app's background tasks, run by `manage.py run_worker` on the task engine
(django-tasks with its database backend) and scheduled in ingestion/apps.py.

The deliveries themselves are queued in the outbox by the ingest request's own write
statement, in its transaction (ingestion/writer.py); these tasks drain it: each claims due
rows with a lease (never two sends of one row at once), sends them and records the
outcome with its backoff, until nothing is due or its time is up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_tasks import task

from cdp.models import EntityRecord, Organization
from ingestion.backfill import user_event_backfill
from ingestion.callbacks import DeliveryRun, callback_deliveries_purge, callbacks_deliver_due
from ingestion.destinations import destinations_deliver_due
from ingestion.erasure import erasure_logs_scrub
from ingestion.log import idempotency_keys_purge, ingestion_requests_purge, record_history_purge
from journeys.models import JourneyEventConfig, backfill_progress_key

# A drain stops claiming after this many seconds, so that a busy outbox never keeps a
# worker from its other tasks; the next run (a second or two later) goes on.
DRAIN_SECONDS = 20.0


def _drain(deliver_due: Callable[..., DeliveryRun]) -> int:
    """Send what an outbox has due, a batch at a time, until nothing is or DRAIN_SECONDS
    have passed; how many were delivered."""
    delivered = 0
    ends = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < ends:
        run = deliver_due(batch_size=10)
        delivered += run.delivered
        if not run.claimed:
            break
    return delivered


@task()
def deliver_callbacks() -> int:
    """Send the due ingestion callbacks; how many were delivered."""
    return _drain(callbacks_deliver_due)


@task()
def deliver_destinations() -> int:
    """Send the due deliveries of enabled destinations; how many were delivered."""
    return _drain(destinations_deliver_due)


@task()
def backfill_user_event(organization_id: int, config_id: str) -> dict[str, int | str]:
    """A backfill queued from the Console: its counts are the task's result."""
    organization = Organization.objects.get(pk=organization_id)
    config = JourneyEventConfig.objects.get(organization=organization, config_id=config_id)
    total = EntityRecord.objects.filter(
        organization=organization, data_model_id=config.data_model_id
    ).count()
    done = 0

    def progress(records: int) -> None:
        nonlocal done
        done += records
        cache.set(backfill_progress_key(config), {"records": done, "total": total}, 3600)

    run = user_event_backfill(organization=organization, config_id=config_id, progress=progress)
    return {
        "requestId": run.request_id,
        "records": run.records,
        "matching": run.matching,
        "alreadyFired": run.already_fired,
        "generated": run.generated,
    }


@task()
def purge_ingestion_logs() -> int:
    """Delete the log rows, and the finished callbacks, older than CDP_INGESTION_LOG_DAYS."""
    before = timezone.now() - timedelta(days=settings.CDP_INGESTION_LOG_DAYS)
    return ingestion_requests_purge(before=before) + callback_deliveries_purge(before=before)


@task()
def purge_idempotency_keys() -> int:
    """Delete the Idempotency-Keys past their lifetime."""
    return idempotency_keys_purge(before=timezone.now())


@task()
def purge_record_history() -> int:
    """Delete the record history entries older than CDP_RECORD_HISTORY_DAYS."""
    before = timezone.now() - timedelta(days=settings.CDP_RECORD_HISTORY_DAYS)
    return record_history_purge(before=before)


@task()
def erasure_logs_scrub_task(organization_id: int, erasure_id: str, digests: list[str]) -> int:
    """Queued by an erasure in its transaction: the log scrub (ingestion/erasure.py)."""
    return erasure_logs_scrub(
        organization_id=organization_id, erasure_id=erasure_id, digests=digests
    )
