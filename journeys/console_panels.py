"""What journeys adds to the core's Console page of a model (cdp.console.ConsoleSite's
registry): the tab of its User Events, and on the page that refuses deleting it, how to
stop the events it generates. journeys/apps.py imports this module when Django loads the
app, as admin.autodiscover() imports journeys/admin/."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.safestring import mark_safe

from cdp.console import EDIT_ROLES, ConsoleModelAdmin, console_site, role_allows
from cdp.models import DataModel
from journeys.models import JourneyEventConfig


def _user_events(data_model: DataModel) -> QuerySet[JourneyEventConfig]:
    return JourneyEventConfig.objects.filter(
        organization_id=data_model.organization_id, data_model=data_model
    )


def user_events_tab(
    request: HttpRequest, model_admin: ConsoleModelAdmin, data_model: DataModel
) -> dict[str, Any]:
    """The model's User Events, newest first, and "+ Add" with the model preset."""
    add_url = reverse(f"{model_admin.admin_site.name}:journeys_journeyeventconfig_add")
    return {
        "user_events": _user_events(data_model).order_by("-created_at"),
        "can_add_user_event": role_allows(request, data_model.organization_id, EDIT_ROLES),
        "user_event_add_url": f"{add_url}?data_model={data_model.pk}",
    }


def delete_refused(
    request: HttpRequest, model_admin: ConsoleModelAdmin, data_model: DataModel
) -> dict[str, Any]:
    """How many User Events the model has, and their list."""
    changelist = reverse(f"{model_admin.admin_site.name}:journeys_journeyeventconfig_changelist")
    return {
        "user_events": _user_events(data_model).count(),
        "user_events_url": f"{changelist}?data_model__id__exact={data_model.pk}",
    }


console_site.register_panel(
    DataModel,
    "tabs",
    key="user-events",
    # The Console's separator, as in its breadcrumbs and menu.
    title=mark_safe("Data Manipulation &rsaquo; User Event"),
    template="admin/journeys/datamodel/user_events_tab.html",
    context=user_events_tab,
    order=10,
)
console_site.register_panel(
    DataModel,
    "delete_refused",
    key="user-events",
    template="admin/journeys/datamodel/delete_refused.html",
    context=delete_refused,
)
