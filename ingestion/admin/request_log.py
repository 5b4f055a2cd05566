"""The Console's Ingestion log: read-only, one row per request, its per-entry results as a
table, filtered by status, object type, source and API key.

Built for a log of millions of rows: the list reads the (organization, -created_at) index,
a filter is an equality on a column, and a filter's choices come from the organization's
most recent rows or its keys (never a DISTINCT over the log)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin
from django.contrib.admin.utils import display_for_value, flatten_fieldsets, unquote
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
)
from django.utils.html import format_html

from cdp.console import (
    READ_ONLY,
    ConsoleModelAdmin,
    LargeListAdmin,
    ValueFilter,
    console_site,
    visible_organization_ids,
)
from cdp.console_columns import short_id
from cdp.models import ApiKey
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


# A source filter offers the sources of the organization's most recent log rows: the last
# RECENT_SOURCE_ROWS of each organization, read from the (organization, -created_at) index.
RECENT_SOURCE_ROWS = 500
# A superuser's choice of sources and keys, across every organization, stays this long.
SUPERUSER_CHOICES = 200


class SourceFilter(ValueFilter):
    """The sources of the organization's recent requests (each organization's last
    RECENT_SOURCE_ROWS rows; a source not seen lately is still found by its URL)."""

    title = "source"
    parameter_name = field_name = "source"

    def choice_values(self, request: HttpRequest) -> list[str]:
        log = IngestionRequest.objects.order_by()
        ids = visible_organization_ids(request)
        if ids is None:
            # Every organization: the newest rows by primary key (its index), bounded.
            recent = log.order_by("-pk").values_list("source", flat=True)[:RECENT_SOURCE_ROWS]
            return [source for source in recent if source][:SUPERUSER_CHOICES]
        sources: list[str] = []
        for organization_id in ids:
            recent = (
                log.filter(organization_id=organization_id)
                .order_by("-created_at")
                .values_list("source", flat=True)[:RECENT_SOURCE_ROWS]
            )
            sources += [source for source in recent if source]
        return sources


class ApiKeyFilter(admin.SimpleListFilter):
    """The requests sent with one of the organization's API keys (prefix and name; revoked
    ones too, since their requests stay in the log)."""

    title = "API key"
    parameter_name = "api_key"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        keys = ApiKey.objects.select_related("organization").order_by("name", "prefix")
        ids = visible_organization_ids(request)
        if ids is not None:
            keys = keys.filter(organization__in=ids)
        many = ids is None or len(ids) > 1
        return [
            (
                str(key.pk),
                f"{key.prefix}… {key.name}" + (f" ({key.organization})" if many else ""),
            )
            for key in keys[:SUPERUSER_CHOICES]
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(api_key_id=int(value)) if value.isdigit() else queryset.none()


class InitialLoadFilter(admin.SimpleListFilter):
    title = "initial load"
    parameter_name = "init_data"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1", "Yes"), ("0", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(init_data=value == "1") if value in ("0", "1") else queryset


@admin.register(IngestionRequest, site=console_site)
class IngestionRequestAdmin(LargeListAdmin, ConsoleModelAdmin):
    console_section = "Ingestion log"
    console_item = "Ingest request"
    console_order = 10
    write_roles = READ_ONLY
    superuser_writes = False
    # What a reader scans, in 1366 px: the duration and the rest are on the request's page.
    list_display = (
        "request_shown",
        "created_at",
        "object_type",
        "source_shown",
        "outcome",
        "total",
        "created",
        "updated",
        "unchanged",
        "failed",
        "events_shown",
    )
    list_filter = (
        StatusFilter,
        ObjectTypeFilter,
        SourceFilter,
        ApiKeyFilter,
        InitialLoadFilter,
        "created_at",
    )
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
                    "initial_load",
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

    # Columns and fields.

    @admin.display(description="requestId", ordering="request_id")
    def request_shown(self, obj: IngestionRequest) -> str:
        return short_id(obj.request_id, f"request-id-{obj.pk}", copy=False)

    @admin.display(description="source", ordering="source")
    def source_shown(self, obj: IngestionRequest) -> str:
        return obj.source or "—"

    @admin.display(description="status", ordering="status")
    def outcome(self, obj: IngestionRequest) -> str:
        """The status and, for a refused request, its errorCode."""
        if not obj.error_code:
            return str(obj.status)
        return format_html(
            '{} <span class="request-error-code">{}</span>', obj.status, obj.error_code
        )

    @admin.display(description="events", ordering="events_generated")
    def events_shown(self, obj: IngestionRequest) -> int:
        return obj.events_generated

    @admin.display(description="initial load")
    def initial_load(self, obj: IngestionRequest) -> str:
        return "Yes" if obj.init_data else "No"

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
