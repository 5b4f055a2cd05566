"""What ingestion adds to the core's Console pages, through cdp.console's registry: a
model's Data Ingestion API tab and its test page (ingestion/console.py), and an
organization's callback deliveries beside its callback settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import (
    HttpRequest,
)

from cdp.console import (
    ConsoleModelAdmin,
    console_site,
)
from cdp.models import DataModel, Organization
from ingestion.console import data_ingestion_tab, test_ingest_view
from ingestion.models import (
    CallbackDelivery,
    CallbackStatus,
)

if TYPE_CHECKING:
    # The stubs' names of a fieldset's options and of list_display (no public alias).
    pass

# --- What ingestion adds to the core's pages (cdp.console.ConsoleSite's registry) ---------


def callback_tools(
    request: HttpRequest, model_admin: ConsoleModelAdmin, organization: Organization
) -> dict[str, Any]:
    """Beside an organization's callback settings: its failed callback deliveries."""
    failed = CallbackDelivery.objects.filter(
        organization=organization, status=CallbackStatus.FAILED
    )
    return {"callback_failed_count": failed.count()}


console_site.register_panel(
    Organization,
    "callback_tools",
    key="callback-deliveries",
    template="admin/ingestion/organization/callback_tools.html",
    context=callback_tools,
)
console_site.register_panel(
    DataModel,
    "tabs",
    key="ingestion",
    title="Data Ingestion API",
    template="admin/ingestion/datamodel/ingestion_panel.html",
    context=data_ingestion_tab,
    order=20,
)
console_site.register_object_view(DataModel, "test-ingest/", test_ingest_view, "test_ingest")
