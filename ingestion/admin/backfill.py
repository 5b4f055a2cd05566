"""The backfill of a User Event from its page (ingestion/backfill.py): a dry run's count and
sample first, then the run queued on the task engine."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import reverse

from cdp.console import (
    MANAGE_ROLES,
    console_site,
    role_allows,
    visible_organization_ids,
)
from ingestion import tasks
from ingestion.backfill import BackfillRefused, user_event_backfill
from journeys.events import event_as_json
from journeys.models import JourneyEventConfig

if TYPE_CHECKING:
    # The stubs' names of a fieldset's options and of list_display (no public alias).
    pass

# ---------------------------------------------------------------------------------------
# Backfill of a User Event (ingestion/backfill.py), from its page.


def user_event_backfill_view(request: HttpRequest, config_pk: int) -> HttpResponse:
    """GET: the count and a sample of what a backfill would generate (a dry run). POST:
    the backfill queued as background work. Owners and admins of the User Event's
    organization; another organization's is 404."""
    configs = JourneyEventConfig.objects.select_related("organization", "data_model")
    visible = visible_organization_ids(request)
    if visible is not None:
        configs = configs.filter(organization__in=visible)
    config = configs.filter(pk=config_pk).first()
    if config is None:
        raise Http404("No such User Event in your organizations.")
    if not role_allows(request, config.organization_id, MANAGE_ROLES):
        raise PermissionDenied
    page = reverse(f"{console_site.name}:journeys_journeyeventconfig_change", args=[config.pk])
    try:
        run = user_event_backfill(
            organization=config.organization, config_id=config.config_id, dry_run=True
        )
    except BackfillRefused as refused:
        messages.warning(request, str(refused))
        return HttpResponseRedirect(page)
    if request.method == "POST":
        tasks.backfill_user_event.enqueue(config.organization_id, config.config_id)
        messages.success(
            request,
            f"Backfill of {run.generated} event(s) queued: the background worker generates "
            "them; this page shows the result.",
        )
        return HttpResponseRedirect(page)
    sample = [
        (
            row.source_id,
            json.dumps(
                event_as_json(
                    row,
                    event_at_ms=row.event_at_ms,
                    je_config_id=config.config_id,
                    je_event_key=config.event_key,
                ),
                indent=2,
            ),
        )
        for row in run.sample
    ]
    context = {
        **console_site.each_context(request),
        "title": "Backfill",
        "config": config,
        "run": run,
        "sample": sample,
    }
    return TemplateResponse(request, "admin/ingestion/backfill_confirm.html", context)


console_site.register_view(
    "user-event/<int:config_pk>/backfill/", user_event_backfill_view, "user_event_backfill"
)
