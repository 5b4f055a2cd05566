"""What ingestion adds to the Console's home page, the dashboard of one organization
(cdp.console.ConsoleSite.register_dashboard_panel):

- `ingestion`: entries ingested and rejected per hour over the last 24 hours, a chart
  drawn on the server (an inline SVG from the hourly numbers; one query, an index-only
  range scan of `ingestionrequest_org_time` per hour, which carries the counts);
- `rejections`: the top rejection messages of the last 24 hours, read from the per-entry
  results of the latest REJECTION_REQUESTS requests that rejected entries (one LIMITed
  query on the same index);
- `deliveries`: failed callback deliveries and failed deliveries per destination, each
  count capped at COUNT_CAP (LIMITed index scans on `callbackdelivery_org_status` and
  `destdelivery_org_dest_status`).

Each number links to the list it counts, filtered the same way. No query counts a whole
table: each is filtered by the organization and a time range on an indexed column, or
LIMITed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from django.db import connection
from django.db.models import Count, F, IntegerField, OuterRef, Subquery, Sum, TextField
from django.db.models.functions import Cast, TruncHour
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from cdp.console import COUNT_CAP, DASHBOARD_HOURS, console_site, dashboard_window
from cdp.models import Organization
from ingestion.models import (
    CallbackDelivery,
    CallbackStatus,
    Destination,
    DestinationDelivery,
    IngestionRequest,
)

# How many of the latest requests with rejected entries the top messages are read from:
# each holds its entries' results (JSON), so reading them is bounded by count, not time.
REJECTION_REQUESTS = 500
TOP_MESSAGES = 10
DESTINATIONS_SHOWN = 20
# An entry rejected by validation, in a request's stored results (ingestion/plan.py).
REJECTED_STATUS = 101

# The chart's geometry, in the SVG's own units (it scales to the panel's width).
CHART_HEIGHT = 120
BAR_WIDTH = 18
BAR_STEP = 24
CHART_LEFT = 44  # room for the scale's labels
CHART_TOP = 8
LABEL_EVERY = 3  # hours between the labels under the bars


def _changelist(model_name: str, **params: Any) -> str:
    url = reverse(f"{console_site.name}:ingestion_{model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def ingestion_log_url(
    *, organization: Organization, start: datetime, end: datetime, rejected: bool = False
) -> str:
    """The Ingestion log of `organization`'s requests in [start, end) (with rejected
    entries only, if `rejected`)."""
    params: dict[str, Any] = {
        "organization__id__exact": organization.pk,
        "created_at__gte": start.isoformat(),
        "created_at__lt": end.isoformat(),
    }
    if rejected:
        params["failed__gt"] = 0
    return _changelist("ingestionrequest", **params)


# --- entries per hour ---------------------------------------------------------------------


@dataclass(frozen=True)
class HourBar:
    """One hour of the chart: its numbers, its two stacked bars and their links."""

    start: datetime
    requests: int
    ingested: int
    rejected: int
    x: float
    ingested_y: float
    ingested_height: float
    rejected_y: float
    rejected_height: float
    log_url: str
    rejected_url: str
    label: str  # the hour under the bar ("" between labels)


Hourly = dict[datetime, tuple[int, int, int]]


def _hours(start: datetime, end: datetime) -> list[datetime]:
    """The starts of the hours of [start, end), `start` on the hour."""
    return [start + timedelta(hours=n) for n in range((end - start) // timedelta(hours=1))]


# Each hour of the window is its own index-only range scan and aggregate: PostgreSQL
# groups a million rows by their hour by sorting them (it cannot tell that the index
# already has them in order), which took 7 times as long (docs/performance.md).
HOURS_COUNTED_SQL = """
    SELECT hours.start, counted.requests, counted.ingested, counted.rejected
    FROM unnest(%s::timestamptz[]) AS hours (start)
    CROSS JOIN LATERAL (
        SELECT count(*) AS requests,
               coalesce(sum("created" + "updated" + "unchanged"), 0) AS ingested,
               coalesce(sum("failed"), 0) AS rejected
        FROM "ingestion_ingestionrequest"
        WHERE "ingestion_ingestionrequest"."organization_id" = %s
          AND "ingestion_ingestionrequest"."created_at" >= hours.start
          AND "ingestion_ingestionrequest"."created_at" < hours.start + interval '1 hour'
    ) AS counted
    WHERE counted.requests > 0
"""


def ingestion_hourly(*, organization: Organization, start: datetime, end: datetime) -> Hourly:
    """(requests, entries ingested, entries rejected) per hour of [start, end) that has
    any, keyed by the hour's start (UTC); `start` is on the hour. One query: on PostgreSQL
    a range of `ingestionrequest_org_time` per hour (HOURS_COUNTED_SQL); elsewhere the
    window's rows grouped by their hour."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(HOURS_COUNTED_SQL, [_hours(start, end), organization.pk])
            return {
                hour.astimezone(UTC): (requests, ingested, rejected)
                for hour, requests, ingested, rejected in cursor.fetchall()
            }
    rows = (
        IngestionRequest.objects.filter(
            organization=organization, created_at__gte=start, created_at__lt=end
        )
        .annotate(hour=TruncHour("created_at"))
        .values("hour")
        .annotate(
            requests=Count("pk"),
            ingested=Sum(F("created") + F("updated") + F("unchanged")),
            rejected=Sum("failed"),
        )
        .order_by("hour")
    )
    return {
        row["hour"].astimezone(UTC): (row["requests"], row["ingested"] or 0, row["rejected"] or 0)
        for row in rows
    }


def chart_scale(top: int) -> int:
    """The chart's top value: `top` rounded up to 1, 2 or 5 times a power of ten (at least
    1), so the scale reads as a round number."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if top <= step * factor:
                return step * factor
        step *= 10


def hour_bars(
    *,
    organization: Organization,
    start: datetime,
    hourly: Hourly,
) -> tuple[list[HourBar], int]:
    """The 24 bars of the chart (an hour without requests has bars of height 0), and the
    scale's top value. Rejected entries stack on the ingested ones."""
    hours = _hours(start, start + timedelta(hours=DASHBOARD_HOURS))
    counts = [hourly.get(hour, (0, 0, 0)) for hour in hours]
    scale = chart_scale(max((ingested + rejected for _, ingested, rejected in counts), default=0))
    bottom = CHART_TOP + CHART_HEIGHT
    bars = []
    for n, (hour, (requests, ingested, rejected)) in enumerate(zip(hours, counts, strict=True)):
        ingested_height = round(ingested * CHART_HEIGHT / scale, 1)
        total_height = round((ingested + rejected) * CHART_HEIGHT / scale, 1)
        rejected_height = round(total_height - ingested_height, 1)
        local = timezone.localtime(hour)
        bars.append(
            HourBar(
                start=local,
                requests=requests,
                ingested=ingested,
                rejected=rejected,
                x=CHART_LEFT + n * BAR_STEP + (BAR_STEP - BAR_WIDTH) / 2,
                ingested_y=round(bottom - ingested_height, 1),
                ingested_height=ingested_height,
                rejected_y=round(bottom - total_height, 1),
                rejected_height=rejected_height,
                log_url=ingestion_log_url(
                    organization=organization, start=hour, end=hour + timedelta(hours=1)
                ),
                rejected_url=ingestion_log_url(
                    organization=organization,
                    start=hour,
                    end=hour + timedelta(hours=1),
                    rejected=True,
                ),
                label=local.strftime("%H:%M") if n % LABEL_EVERY == 0 else "",
            )
        )
    return bars, scale


def ingestion_panel(request: HttpRequest, organization: Organization) -> dict[str, Any]:
    start, end = dashboard_window()
    bars, scale = hour_bars(
        organization=organization,
        start=start,
        hourly=ingestion_hourly(organization=organization, start=start, end=end),
    )
    bottom = CHART_TOP + CHART_HEIGHT
    return {
        "bars": bars,
        "scale": scale,
        "requests": sum(bar.requests for bar in bars),
        "ingested": sum(bar.ingested for bar in bars),
        "rejected": sum(bar.rejected for bar in bars),
        "log_url": ingestion_log_url(organization=organization, start=start, end=end),
        "rejected_url": ingestion_log_url(
            organization=organization, start=start, end=end, rejected=True
        ),
        "window_start": timezone.localtime(start),
        "chart": {
            "width": CHART_LEFT + DASHBOARD_HOURS * BAR_STEP,
            "height": bottom + 20,
            "left": CHART_LEFT,
            "top": CHART_TOP,
            "middle": CHART_TOP + CHART_HEIGHT / 2,
            "bottom": bottom,
            "right": CHART_LEFT + DASHBOARD_HOURS * BAR_STEP,
            "bar_width": BAR_WIDTH,
        },
    }


# --- the top rejection messages -----------------------------------------------------------


@dataclass(frozen=True)
class RejectionMessage:
    message: str
    entries: int
    requests: int
    latest_url: str  # the page of the latest request that rejected an entry with it


def rejection_messages(
    *, organization: Organization, start: datetime, end: datetime
) -> tuple[list[RejectionMessage], int]:
    """The TOP_MESSAGES most frequent messages of the entries rejected in [start, end),
    counted over the latest REJECTION_REQUESTS requests that rejected any (one query:
    newest first on `ingestionrequest_org_time`, LIMITed), and how many requests were
    read."""
    logged = (
        IngestionRequest.objects.filter(
            organization=organization, created_at__gte=start, created_at__lt=end, failed__gt=0
        )
        .order_by("-created_at")
        # As text, decoded by orjson: several times faster than the JSONField's json.loads
        # on 500 requests' results (the stored entries' too, which are most of them).
        .annotate(results_text=Cast("results", TextField()))
        .values_list("pk", "results_text")[:REJECTION_REQUESTS]
    )
    entries: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    latest: dict[str, int] = {}
    read = 0
    for pk, text in logged:
        read += 1
        seen = set()
        results = orjson.loads(text) if text else []
        for result in results if isinstance(results, list) else ():
            if not isinstance(result, dict) or result.get("status") != REJECTED_STATUS:
                continue
            message = str(result.get("errorMessage") or "(no message)")
            entries[message] += 1
            seen.add(message)
            latest.setdefault(message, pk)
        requests.update(seen)
    change = f"{console_site.name}:ingestion_ingestionrequest_change"
    top = [
        RejectionMessage(message, count, requests[message], reverse(change, args=[latest[message]]))
        for message, count in entries.most_common(TOP_MESSAGES)
    ]
    return top, read


def rejections_panel(request: HttpRequest, organization: Organization) -> dict[str, Any]:
    start, end = dashboard_window()
    messages, read = rejection_messages(organization=organization, start=start, end=end)
    return {
        "messages": messages,
        "requests_read": read,
        "requests_limit": REJECTION_REQUESTS,
        "capped": read >= REJECTION_REQUESTS,
        "rejected_url": ingestion_log_url(
            organization=organization, start=start, end=end, rejected=True
        ),
    }


# --- failing callbacks and destinations ---------------------------------------------------


class CappedCount(Subquery):
    """How many rows the (LIMITed) subquery returns, as a column of the outer query: the
    ORM counts a sliced queryset only as a query of its own (`qs[:n].count()`)."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) capped)"
    output_field = IntegerField()


def failing_deliveries(*, organization: Organization) -> tuple[int, list[tuple[Destination, int]]]:
    """Failed callback deliveries (at most COUNT_CAP + 1 counted), and the first
    DESTINATIONS_SHOWN destinations by name with failed deliveries, each with how many
    (at most COUNT_CAP + 1 counted). Two queries, each a LIMITed index scan per count."""
    callbacks = (
        CallbackDelivery.objects.filter(organization=organization, status=CallbackStatus.FAILED)
        .order_by()
        .values("pk")[: COUNT_CAP + 1]
        .count()
    )
    failed = (
        DestinationDelivery.objects.filter(
            organization_id=OuterRef("organization_id"),
            destination_id=OuterRef("pk"),
            status=CallbackStatus.FAILED,
        )
        .order_by()
        .values("pk")[: COUNT_CAP + 1]
    )
    destinations = (
        Destination.objects.filter(organization=organization)
        .annotate(failed=CappedCount(failed))
        .filter(failed__gt=0)
        .order_by("name", "pk")[:DESTINATIONS_SHOWN]
    )
    return callbacks, [(destination, destination.failed) for destination in destinations]


def _capped(count: int) -> str:
    return f"{COUNT_CAP:,}+" if count > COUNT_CAP else f"{count:,}"


def deliveries_panel(request: HttpRequest, organization: Organization) -> dict[str, Any]:
    callbacks, destinations = failing_deliveries(organization=organization)
    return {
        "callbacks_failed": callbacks,
        "callbacks_failed_shown": _capped(callbacks),
        "callbacks_url": _changelist(
            "callbackdelivery",
            organization__id__exact=organization.pk,
            status__exact=CallbackStatus.FAILED,
        ),
        "destinations": [
            {
                "destination": destination,
                "failed_shown": _capped(failed),
                "url": _changelist(
                    "destinationdelivery",
                    destination__id__exact=destination.pk,
                    status__exact=CallbackStatus.FAILED,
                ),
            }
            for destination, failed in destinations
        ],
        "destinations_limit": DESTINATIONS_SHOWN,
        "count_cap": COUNT_CAP,
        "destinations_url": _changelist("destination", organization__id__exact=organization.pk),
    }


console_site.register_dashboard_panel(
    "ingestion",
    title="Entries ingested and rejected, per hour",
    template="admin/ingestion/dashboard/ingestion.html",
    context=ingestion_panel,
    order=10,
)
console_site.register_dashboard_panel(
    "rejections",
    title="Top rejection messages",
    template="admin/ingestion/dashboard/rejections.html",
    context=rejections_panel,
    order=20,
)
console_site.register_dashboard_panel(
    "deliveries",
    title="Failing callbacks and destinations",
    template="admin/ingestion/dashboard/deliveries.html",
    context=deliveries_panel,
    order=40,
)
