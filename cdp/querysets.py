"""QuerySets for tables that grow without bound (events, the ingestion log)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max, Min, QuerySet
from django.utils import timezone


class ProbedDatesQuerySet(QuerySet):
    """`datetimes()` for the date hierarchy by index probes: the first and last times, then
    one EXISTS per candidate year, month or day, instead of a DISTINCT over every row."""

    # A list, not a QuerySet, on purpose: the admin's date hierarchy only iterates it.
    def datetimes(  # type: ignore[override]
        self, field_name: str, kind: str, *args: Any, **kwargs: Any
    ) -> list[Any]:
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        zone = timezone.get_current_timezone()
        first, last = (timezone.localtime(bounds[k], zone) for k in ("first", "last"))
        found = []
        for start in _periods(first, last, kind):
            end = _next_period(start, kind)
            if self.filter(**{f"{field_name}__gte": start, f"{field_name}__lt": end}).exists():
                found.append(start)
        return found


def _periods(first: datetime, last: datetime, kind: str) -> list[datetime]:
    start = first.replace(
        month=1 if kind == "year" else first.month,
        day=1 if kind in ("year", "month") else first.day,
        hour=0,
        minute=0,
        second=0,
        microsecond=0,
    )
    periods = []
    while start <= last:
        periods.append(start)
        start = _next_period(start, kind)
    return periods


def _next_period(start: datetime, kind: str) -> datetime:
    if kind == "year":
        return start.replace(year=start.year + 1)
    if kind == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + timedelta(days=1)
