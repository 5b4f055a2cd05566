"""What journeys adds to the Console's home page, the dashboard of one organization
(cdp.console.ConsoleSite.register_dashboard_panel): the events each User Event generated
over the last 24 hours, each count linking to the Event log filtered by that User Event
and the same hours. journeys/apps.py imports this module when Django loads the app.

Which time: no index of `journeys_userevent` leads with (organization, created_at), and
one more index would cost every event's insert. The window is therefore on `event_at`, the
events' own time, through `userevent_org_time` (organization, -event_at, -id, including
the User Event): an event whose User Event takes its time from a record's field counts at
that time, not when it was written. The page says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from cdp.console import console_site, dashboard_window
from cdp.models import Organization
from journeys.models import JourneyEventConfig, UserEvent

USER_EVENTS_SHOWN = 20


@dataclass(frozen=True)
class UserEventCount:
    config_pk: int
    event_name: str
    config_id: str
    events: int
    events_url: str  # the Event log: this User Event's events of the window
    config_url: str  # the User Event's page


def events_per_user_event(
    *, organization: Organization, start: datetime, end: datetime
) -> list[UserEventCount]:
    """The USER_EVENTS_SHOWN User Events that generated the most events with an event time
    in [start, end), most first. Two queries: the window's range of `userevent_org_time`
    (which carries the User Event) counted by User Event, then the names of the counted
    ones; joining the names before counting cost twice as much at a million events.
    Ingested events (objectType `user-event`) and those of a deleted User Event have no
    User Event, and are left out."""
    counted = dict(
        UserEvent.objects.filter(
            organization=organization,
            event_at__gte=start,
            event_at__lt=end,
            config__isnull=False,
        )
        .order_by()
        .values("config_id")
        .annotate(events=Count("pk"))
        .values_list("config_id", "events")
    )
    configs = (
        JourneyEventConfig.objects.filter(organization=organization, pk__in=list(counted))
        .only("pk", "event_name", "config_id")
        .order_by()
    )
    top = sorted(configs, key=lambda config: (-counted[config.pk], config.event_name, config.pk))
    changelist = reverse(f"{console_site.name}:journeys_userevent_changelist")
    window = {"event_at__gte": start.isoformat(), "event_at__lt": end.isoformat()}
    change = f"{console_site.name}:journeys_journeyeventconfig_change"
    return [
        UserEventCount(
            config_pk=config.pk,
            event_name=config.event_name,
            config_id=config.config_id,
            events=counted[config.pk],
            events_url=f"{changelist}?{urlencode({'config': config.pk, **window})}",
            config_url=reverse(change, args=[config.pk]),
        )
        for config in top[:USER_EVENTS_SHOWN]
    ]


def user_events_panel(request: HttpRequest, organization: Organization) -> dict[str, Any]:
    start, end = dashboard_window()
    counts = events_per_user_event(organization=organization, start=start, end=end)
    return {
        "user_events": counts,
        "events": sum(count.events for count in counts),
        "shown_limit": USER_EVENTS_SHOWN,
        "window_start": timezone.localtime(start),
        "user_events_url": reverse(f"{console_site.name}:journeys_journeyeventconfig_changelist")
        + f"?{urlencode({'organization__id__exact': organization.pk})}",
    }


console_site.register_dashboard_panel(
    "user-events",
    title="Events generated per User Event",
    template="admin/journeys/dashboard/user_events.html",
    context=user_events_panel,
    order=30,
)
