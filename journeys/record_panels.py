"""What journeys adds to a record's Console page (cdp.console.ConsoleSite's registry, slot
"record" of `cdp.EntityRecord`): the events it produced, newest first, linking to the
Event log. journeys/apps.py imports this module when Django loads the app."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import urlencode

from cdp.console import ConsoleModelAdmin, console_site
from cdp.models import EntityRecord
from journeys.models import UserEvent

# The events a record's page shows; the Event log lists them all.
EVENTS_SHOWN = 50


def events_panel(
    request: HttpRequest, model_admin: ConsoleModelAdmin, record: EntityRecord
) -> dict[str, Any]:
    """The events whose source is the record's model and whose sourceId is its key: one
    range of the index on (organization, sourceId, event time, id)."""
    source = record.data_model.source_name
    events = list(
        UserEvent.objects.filter(
            organization_id=record.organization_id, source_id=record.key, source=source
        ).order_by("-event_at", "-id")[: EVENTS_SHOWN + 1]
    )
    changelist = reverse(f"{model_admin.admin_site.name}:journeys_userevent_changelist")
    return {
        "events": events[:EVENTS_SHOWN],
        "more": len(events) > EVENTS_SHOWN,
        "shown": EVENTS_SHOWN,
        # The Event log's search (sourceId, exactly) and source filter.
        "event_log_url": f"{changelist}?{urlencode({'q': record.key, 'source': source})}",
    }


console_site.register_panel(
    EntityRecord,
    "record",
    key="events",
    title="Events",
    template="admin/journeys/entityrecord/events_panel.html",
    context=events_panel,
    order=20,
)
