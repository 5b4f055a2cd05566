"""The Console's Ingestion log: read-only, one row per request, its per-entry results as a
table, filtered by status and object type."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin
from django.contrib.admin.utils import display_for_value, flatten_fieldsets, unquote
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
)

from cdp.console import (
    READ_ONLY,
    ConsoleModelAdmin,
    LargeListAdmin,
    ValueFilter,
    console_site,
)
from cdp.schema import SYSTEM_MODELS
from ingestion.models import (
    IngestionRequest,
)

if TYPE_CHECKING:
    # The stubs' names of a fieldset's options and of list_display (no public alias).
    from django.contrib.admin.options import _FieldOpts, _FieldsetSpec

# The statuses an ingest request can answer (the wire contract's).
REQUEST_STATUSES = ("200", "400", "401", "413", "422", "429", "500")


class StatusFilter(ValueFilter):
    title = "status"
    parameter_name = field_name = "status"

    def choice_values(self, request: HttpRequest) -> list[str]:
        return list(REQUEST_STATUSES)

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status, status) for status in REQUEST_STATUSES]


class ObjectTypeFilter(ValueFilter):
    title = "object type"
    parameter_name = field_name = "object_type"

    def choice_values(self, request: HttpRequest) -> list[str]:
        return list(SYSTEM_MODELS)


@admin.register(IngestionRequest, site=console_site)
class IngestionRequestAdmin(LargeListAdmin, ConsoleModelAdmin):
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
    list_filter = (StatusFilter, ObjectTypeFilter, "init_data", "created_at")
    # A key is matched exactly, as sent (a substring would scan every key).
    search_fields = ("request_id", "idempotency_key__exact")
    search_help_text = "Search by requestId, or by an Idempotency-Key (exactly as sent)."
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
    # Shown only for a request sent with an Idempotency-Key.
    idempotency_fieldset: tuple[str, _FieldOpts] = (
        "Idempotency",
        {"fields": ("idempotency_key", "replayed")},
    )
    readonly_fields = tuple(flatten_fieldsets([*fieldsets, idempotency_fieldset]))

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestionRequest]:
        return super().get_queryset(request).select_related("api_key", "config", "organization")

    def get_fieldsets(
        self, request: HttpRequest, obj: IngestionRequest | None = None
    ) -> _FieldsetSpec:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and obj.idempotency_key:
            return [fieldsets[0], self.idempotency_fieldset, *fieldsets[1:]]
        return fieldsets

    @admin.display(description="replayed")
    def replayed(self, obj: IngestionRequest) -> str:
        """How many retries with the request's key were answered its stored answer."""
        times = f"{obj.replays} time{'' if obj.replays == 1 else 's'}"
        if obj.replays and obj.last_replayed_at is not None:
            return f"{times} (last at {display_for_value(obj.last_replayed_at, '—')})"
        return times

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        logged = cast(IngestionRequest, self.get_object(request, unquote(object_id)))
        context = {"entry_results": logged.results, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)
