"""Console page of the ingestion log (DESIGN §8 step 5): read-only, one row per request,
each request's per-entry results as a table."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from cdp.console import READ_ONLY, ConsoleModelAdmin, console_site
from ingestion.models import IngestionRequest


@admin.register(IngestionRequest, site=console_site)
class IngestionRequestAdmin(ConsoleModelAdmin):
    console_section = "Ingestion log"
    console_item = "Ingest request"
    console_order = 10
    write_roles = READ_ONLY
    superuser_writes = False
    list_display = (
        "request_id",
        "created_at",
        "object_type",
        "source",
        "status",
        "error_code",
        "total",
        "created",
        "updated",
        "unchanged",
        "failed",
        "events_generated",
        "duration_ms",
    )
    list_filter = ("status", "object_type", "init_data", "created_at")
    search_fields = ("request_id",)
    search_help_text = "Search by requestId."
    date_hierarchy = "created_at"
    change_form_template = "admin/ingestion/ingestionrequest/change_form.html"
    fieldsets = [
        (
            None,
            {
                "fields": (
                    "request_id",
                    "created_at",
                    "organization",
                    "api_key",
                    "object_type",
                    "source",
                    "init_data",
                    "config",
                    "status",
                    "error_code",
                    "message",
                    "duration_ms",
                )
            },
        ),
        (
            "Counts",
            {
                "fields": (
                    "total",
                    "created",
                    "updated",
                    "unchanged",
                    "failed",
                    "events_generated",
                    "events_suppressed",
                    "events_dropped",
                    "warnings",
                )
            },
        ),
    ]
    readonly_fields = tuple(name for _title, options in fieldsets for name in options["fields"])

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestionRequest]:
        return super().get_queryset(request).select_related("api_key", "config", "organization")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        logged = self.get_object(request, unquote(object_id))
        context = {"entry_results": logged.results, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)
