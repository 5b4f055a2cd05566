"""The core's background tasks (run by `manage.py run_worker`, scheduled in cdp/apps.py)."""

from __future__ import annotations

from django_tasks import task

from cdp.services import auth_tokens_purge_expired


@task()
def purge_tokens() -> int:
    """Delete the expired tokens of every organization; how many."""
    return auth_tokens_purge_expired()


@task()
def prune_task_results() -> int:
    """Delete the task engine's own rows of finished tasks: succeeded ones after an hour
    (an outbox drain runs every few seconds), failed ones after a week, for a look."""
    from datetime import timedelta

    from django.db.models import Q
    from django.utils import timezone
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()
    old = DBTaskResult.objects.finished().filter(
        Q(status=TaskResultStatus.SUCCESSFUL, finished_at__lte=now - timedelta(hours=1))
        | Q(status=TaskResultStatus.FAILED, finished_at__lte=now - timedelta(days=7))
    )
    return old.delete()[0]
