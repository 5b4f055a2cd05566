"""`manage.py run_worker`: the schedules enqueue their task once per interval whatever the
number of workers, `--once` does what is due (the outbox drains every time), tasks run
on the task engine, and a task enqueued in a transaction that rolls back never runs."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from cdp import services
from cdp.models import AuthToken, ScheduledRun
from cdp.schedules import schedules, schedules_enqueue_due
from ingestion import tasks

DAILY = {"purge_tokens", "purge_ingestion_logs", "purge_idempotency_keys", "purge_record_history"}


def run_once() -> str:
    out = StringIO()
    call_command("run_worker", "--once", stdout=out)
    return out.getvalue()


def ran() -> list[str]:
    return sorted(
        path.rsplit(".", 1)[1]
        for path in DBTaskResult.objects.filter(status="SUCCESSFUL").values_list(
            "task_path", flat=True
        )
    )


@pytest.mark.django_db
def test_every_schedule_is_registered_with_its_interval():
    every = {s.name: (s.every, s.drain) for s in schedules()}
    assert every == {
        "deliver_callbacks": (timedelta(seconds=2), True),
        "deliver_destinations": (timedelta(seconds=2), True),
        "prune_task_results": (timedelta(hours=1), False),
        **{name: (timedelta(days=1), False) for name in DAILY},
    }


@pytest.mark.django_db
def test_once_runs_what_is_due_then_only_the_drains():
    assert run_once() == "Ran 7 tasks.\n"
    assert ran() == sorted(
        [*DAILY, "deliver_callbacks", "deliver_destinations", "prune_task_results"]
    )
    due = dict(ScheduledRun.objects.values_list("name", "next_run_at"))
    assert due["purge_tokens"] > timezone.now() + timedelta(hours=23)

    assert run_once() == "Ran 2 tasks.\n"  # the drains; the purges are not due for a day
    assert ran().count("deliver_callbacks") == 2
    assert ran().count("purge_tokens") == 1


@pytest.mark.django_db
def test_a_due_schedule_is_enqueued_by_one_worker_only():
    now = timezone.now()
    first = schedules_enqueue_due(now=now)
    second = schedules_enqueue_due(now=now)  # another worker, the same moment

    assert set(first) == {*DAILY, "deliver_callbacks", "deliver_destinations", "prune_task_results"}
    assert second == []
    assert DBTaskResult.objects.count() == 7
    later = schedules_enqueue_due(now=now + timedelta(seconds=3))
    assert later == ["deliver_callbacks", "deliver_destinations"]


@pytest.mark.django_db
def test_the_purge_task_deletes_expired_tokens_of_every_organization(tenant_a, tenant_b):
    for tenant in (tenant_a, tenant_b):
        services.token_issue(api_key=tenant.api_key)
        expired, _ = services.token_issue(api_key=tenant.api_key)
        AuthToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now())

    run_once()

    for tenant in (tenant_a, tenant_b):
        assert AuthToken.objects.filter(organization=tenant.organization).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_in_a_rolled_back_transaction_never_exists():
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.purge_record_history.enqueue()
        assert DBTaskResult.objects.count() == 1
        raise RuntimeError("the work that caused it failed")

    assert DBTaskResult.objects.count() == 0


@pytest.mark.django_db
def test_interval_must_not_be_negative():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--interval must not be negative"):
        call_command("run_worker", "--interval", "-1")
