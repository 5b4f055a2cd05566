"""`purge_tokens` and `purge_ingestion_logs`: they delete what is old, in every
organization, and nothing else."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from cdp import services
from cdp.models import AuthToken
from ingestion.models import CallbackDelivery, CallbackStatus, IngestionRequest


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue().strip()


def test_purge_tokens_deletes_only_expired_tokens(client, tenant_a, tenant_b):
    live, live_raw = services.token_issue(api_key=tenant_a.api_key)
    expired_a, _ = services.token_issue(api_key=tenant_a.api_key)
    expired_b, _ = services.token_issue(api_key=tenant_b.api_key)
    past = timezone.now() - timedelta(seconds=1)
    AuthToken.objects.filter(pk__in=[expired_a.pk, expired_b.pk]).update(expires_at=past)

    assert run("purge_tokens") == "Deleted 2 expired tokens."
    assert list(AuthToken.objects.values_list("pk", flat=True)) == [live.pk]
    assert (
        services.token_verify(raw_token=live_raw, raw_api_key=tenant_a.raw_key) == tenant_a.api_key
    )
    assert run("purge_tokens") == "Deleted 0 expired tokens."


def log_row(tenant, *, days_old: int) -> IngestionRequest:
    row = IngestionRequest.objects.create(
        organization=tenant.organization, request_id=uuid.uuid4().hex, status=200
    )
    IngestionRequest.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - timedelta(days=days_old)
    )
    return row


def callback_row(tenant, *, days_old: int, status: str) -> CallbackDelivery:
    moment = timezone.now() - timedelta(days=days_old)
    return CallbackDelivery.objects.create(
        organization=tenant.organization,
        request_id=uuid.uuid4().hex,
        body="{}",
        status=status,
        next_attempt_at=moment,
        created_at=moment,
    )


def test_purge_ingestion_logs_deletes_rows_older_than_the_days_given(tenant_a, tenant_b):
    old_a, old_b = log_row(tenant_a, days_old=31), log_row(tenant_b, days_old=40)
    young = [log_row(tenant_a, days_old=29), log_row(tenant_b, days_old=0)]
    old_delivered = callback_row(tenant_a, days_old=31, status=CallbackStatus.DELIVERED)
    old_failed = callback_row(tenant_b, days_old=31, status=CallbackStatus.FAILED)
    old_pending = callback_row(tenant_a, days_old=31, status=CallbackStatus.PENDING)
    young_delivered = callback_row(tenant_a, days_old=1, status=CallbackStatus.DELIVERED)

    output = run("purge_ingestion_logs", "--older-than", "30")

    assert output == ("Deleted 2 ingestion log rows and 2 finished callbacks older than 30 days.")
    assert set(IngestionRequest.objects.values_list("pk", flat=True)) == {r.pk for r in young}
    assert set(CallbackDelivery.objects.values_list("pk", flat=True)) == {
        old_pending.pk,
        young_delivered.pk,
    }
    assert not IngestionRequest.objects.filter(pk__in=[old_a.pk, old_b.pk]).exists()
    assert not CallbackDelivery.objects.filter(pk__in=[old_delivered.pk, old_failed.pk]).exists()


@pytest.mark.parametrize("days", ["0", "-3"])
def test_purge_ingestion_logs_refuses_less_than_a_day(tenant_a, days):
    log_row(tenant_a, days_old=0)

    with pytest.raises(CommandError, match="at least 1 day"):
        run("purge_ingestion_logs", "--older-than", days)

    assert IngestionRequest.objects.count() == 1


def test_purge_ingestion_logs_needs_older_than(db):
    with pytest.raises(CommandError, match="--older-than"):
        run("purge_ingestion_logs")
