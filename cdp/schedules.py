"""Work that recurs, on the task engine: the purges, and the drains of the delivery
outboxes. A schedule is a task and an interval; `run_worker` enqueues a schedule's task
whenever it falls due, and exactly one worker does so however many run on however many
machines: the one whose UPDATE of the schedule's row moves `next_run_at` on.

Apps register their schedules when Django loads them (their AppConfig.ready); the core
knows none of them by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from cdp.models import ScheduledRun


@dataclass(frozen=True)
class Schedule:
    name: str
    task: Any  # a django_tasks Task taking no arguments
    every: timedelta
    # An outbox drain: `run_worker --once` runs it whatever its row says, since what it
    # would do is due whenever a row is (the rows' own times decide).
    drain: bool = False


_schedules: dict[str, Schedule] = {}


def schedule_register(*, name: str, task: Any, every: timedelta, drain: bool = False) -> None:
    _schedules[name] = Schedule(name, task, every, drain)


def schedules() -> list[Schedule]:
    return sorted(_schedules.values(), key=lambda s: s.name)


def schedules_enqueue_due(*, now: datetime | None = None, drains: bool = False) -> list[str]:
    """Enqueue the task of every schedule that is due (and of every drain, with `drains`);
    the names enqueued by this call. The row's update and the task's row commit together,
    so a worker that dies between them enqueues nothing and moves nothing on."""
    now = now or timezone.now()
    enqueued = []
    for item in schedules():
        if drains and item.drain:
            item.task.enqueue()
            enqueued.append(item.name)
            continue
        ScheduledRun.objects.get_or_create(name=item.name, defaults={"next_run_at": now})
        with transaction.atomic():
            won = ScheduledRun.objects.filter(name=item.name, next_run_at__lte=now).update(
                next_run_at=now + item.every, last_run_at=now
            )
            if won:
                item.task.enqueue()
                enqueued.append(item.name)
    return enqueued
