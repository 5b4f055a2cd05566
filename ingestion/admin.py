"""Console pages of the ingestion log: read-only, one row per request,
each request's per-entry results as a table; of the callback deliveries, read-only but
for "Retry now" (`callback_delivery_retry`) on failed ones; of the destinations
(created with their secret shown once, edited, turned on and off) with their deliveries
and "Replay"; and of the erasure requests (a form, the list, "Lift the suppression").
At the end, what ingestion adds to the core's pages: a model's Data Ingestion API tab and
its test page (ingestion/console.py), and an organization's callback deliveries."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_value, flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from cdp.console import (
    MANAGE_ROLES,
    READ_ONLY,
    ConsoleModelAdmin,
    LargeListAdmin,
    ValueFilter,
    adopt,
    console_site,
    member_roles,
    object_view_url,
    role_allows,
    visible_organization_ids,
)
from cdp.errors import ApiError
from cdp.models import DataModel, ErasureRequest, Organization, Role
from cdp.schema import SYSTEM_MODELS
from ingestion import tasks
from ingestion.backfill import BackfillRefused, user_event_backfill
from ingestion.callbacks import callback_delivery_retry
from ingestion.console import data_ingestion_tab, test_ingest_view
from ingestion.destinations import (
    DestinationInvalid,
    deliveries_replay,
    destination_create,
    destination_settings_check,
    destination_update,
)
from ingestion.erasure import (
    IDENTIFIER_ARGUMENTS,
    erasure_order_parse,
    erasure_run,
    suppression_lift,
)
from ingestion.models import (
    CallbackDelivery,
    CallbackStatus,
    Destination,
    DestinationDelivery,
    IngestionRequest,
)
from journeys.events import event_as_json
from journeys.models import JourneyEventConfig

if TYPE_CHECKING:
    # The stubs' names of a fieldset's options and of list_display (no public alias).
    from django.contrib.admin.options import _FieldOpts, _FieldsetSpec, _ListDisplayT

OWNER_ROLES = frozenset({Role.OWNER})
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


# --- Callback deliveries ------------------------------------------------------------------

LAST_ERROR_SHOWN = 80


@admin.register(CallbackDelivery, site=console_site)
class CallbackDeliveryAdmin(ConsoleModelAdmin):
    """The callback outbox, read-only: failed rows stand out (a red badge and row, a count
    with a link above the list), and owners and admins send them again ("Retry now")."""

    console_section = "Callback deliveries"
    console_item = "Callback delivery"
    console_order = 20
    write_roles = READ_ONLY
    superuser_writes = False
    list_display = (
        "request_id",
        "status_shown",
        "attempts",
        "next_attempt_shown",
        "last_status_code",
        "last_error_shown",
        "delivered_at",
        "created_at",
    )
    list_filter = ("status", "organization", "created_at")
    search_fields = ("request_id",)
    search_help_text = "Search by requestId."
    actions = ["retry_now"]
    change_list_template = "admin/ingestion/callbackdelivery/change_list.html"
    change_form_template = "admin/ingestion/callbackdelivery/change_form.html"
    fieldsets = [
        (
            None,
            {
                "fields": (
                    "request_id",
                    "ingest_request",
                    "organization",
                    "api_key_shown",
                    "entries",
                    "created_at",
                )
            },
        ),
        (
            "Delivery",
            {
                "fields": (
                    "status_shown",
                    "attempts",
                    "next_attempt_shown",
                    "last_attempt_at",
                    "last_status_code",
                    "last_error_full",
                    "delivered_at",
                )
            },
        ),
        ("Body sent", {"fields": ("body_shown",)}),
    ]
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    def get_queryset(self, request: HttpRequest) -> QuerySet[CallbackDelivery]:
        return super().get_queryset(request).select_related("organization")

    def get_list_display(self, request: HttpRequest) -> _ListDisplayT[CallbackDelivery]:
        columns = super().get_list_display(request)
        many = request.user.is_superuser or len(member_roles(request)) > 1
        return (*columns, "organization") if many else columns

    # Columns and fields.

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: CallbackDelivery) -> str:
        return format_html(
            '<span class="callback-status callback-status-{}">{}</span>',
            obj.status,
            obj.get_status_display(),
        )

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt_shown(self, obj: CallbackDelivery) -> Any:
        # Only a pending delivery has a next attempt; a retried failed one becomes pending.
        return obj.next_attempt_at if obj.status == CallbackStatus.PENDING else "—"

    @admin.display(description="last error")
    def last_error_shown(self, obj: CallbackDelivery) -> str:
        return Truncator(obj.last_error).chars(LAST_ERROR_SHOWN) if obj.last_error else "—"

    @admin.display(description="last error")
    def last_error_full(self, obj: CallbackDelivery) -> str:
        if not obj.last_error:
            return "—"
        return format_html('<pre class="callback-last-error">{}</pre>', obj.last_error)

    @admin.display(description="body")
    def body_shown(self, obj: CallbackDelivery) -> str:
        try:
            body = json.dumps(json.loads(obj.body), indent=2, ensure_ascii=False)
        except ValueError:
            body = obj.body
        return format_html(
            '<div class="console-code-block"><pre id="callback-body" class="copy-source">{}</pre>'
            '<button type="button" class="button copy-button" data-copy-target="callback-body">'
            "Copy</button></div>",
            body,
        )

    @admin.display(description="API key")
    def api_key_shown(self, obj: CallbackDelivery) -> str:
        # The public prefix sent in the ApiKey header; none for an operator's import.
        return f"{obj.api_key_prefix}…" if obj.api_key_prefix else "— (an import)"

    @admin.display(description="ingest request")
    def ingest_request(self, obj: CallbackDelivery) -> str:
        logged = (
            IngestionRequest.objects.filter(
                organization_id=obj.organization_id, request_id=obj.request_id
            )
            .values_list("pk", flat=True)
            .first()
        )
        if logged is None:
            return "—"
        link = reverse(f"{self.admin_site.name}:ingestion_ingestionrequest_change", args=[logged])
        return format_html('<a href="{}">In the ingestion log</a>', link)

    # Retrying.

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or any(
            role in MANAGE_ROLES for role in member_roles(request).values()
        )

    @admin.action(description="Retry now (failed deliveries)", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[CallbackDelivery]) -> None:
        retried = not_failed = refused = 0
        off: set[str] = set()
        for delivery in queryset.select_related("organization"):
            if delivery.status != CallbackStatus.FAILED:
                not_failed += 1
            elif not role_allows(request, delivery.organization_id, MANAGE_ROLES):
                refused += 1
            elif self._retry(request, delivery):
                retried += 1
                if not delivery.organization.callback_enabled:
                    off.add(delivery.organization.name)
            else:
                not_failed += 1
        self.message_user(
            request, f"{retried} failed delivery(ies) will be sent again by the callback worker."
        )
        if not_failed:
            self.message_user(
                request,
                f"{not_failed} selected delivery(ies) not retried: only failed ones are.",
                messages.WARNING,
            )
        if refused:
            self.message_user(
                request,
                f"{refused} delivery(ies) not retried: only an owner or admin of their "
                "organization may retry them.",
                messages.WARNING,
            )
        self._warn_callbacks_off(request, off)

    def _retry(self, request: HttpRequest, delivery: CallbackDelivery) -> bool:
        try:
            callback_delivery_retry(organization=delivery.organization, delivery_id=delivery.pk)
        except (CallbackDelivery.DoesNotExist, ValueError):
            return False  # gone, or delivered meanwhile
        self.log_change(request, delivery, "Retry requested.")
        return True

    def _warn_callbacks_off(self, request: HttpRequest, organizations: set[str]) -> None:
        if organizations:
            self.message_user(
                request,
                f"Callbacks are turned off for {', '.join(sorted(organizations))}: the worker "
                "will mark those deliveries failed again until they are turned on.",
                messages.WARNING,
            )

    def get_urls(self) -> list:
        return [object_view_url(self, "retry/", self.retry_view, "retry"), *super().get_urls()]

    def _may_retry(self, request: HttpRequest, delivery: CallbackDelivery) -> bool:
        return role_allows(request, delivery.organization_id, MANAGE_ROLES)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """ "Retry now" on a failed delivery's page (POST only)."""
        delivery = cast(CallbackDelivery, self.get_object(request, unquote(object_id)))
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self._may_retry(request, delivery):
            raise PermissionDenied
        change_url = reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[delivery.pk],
        )
        if delivery.status != CallbackStatus.FAILED or not self._retry(request, delivery):
            self.message_user(request, "Only a failed delivery is retried.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        self.message_user(request, "The delivery will be sent again by the callback worker.")
        if not delivery.organization.callback_enabled:
            self._warn_callbacks_off(request, {delivery.organization.name})
        return HttpResponseRedirect(change_url)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        failed = self.get_queryset(request).filter(status=CallbackStatus.FAILED)
        context = {
            "failed_count": failed.count(),
            "showing_failed": request.GET.get("status__exact") == CallbackStatus.FAILED,
            "failed_url": f"?status__exact={CallbackStatus.FAILED}",
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        delivery = cast(CallbackDelivery, self.get_object(request, unquote(object_id)))
        context = {
            "can_retry": delivery.status == CallbackStatus.FAILED
            and self._may_retry(request, delivery),
            "retry_url": reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_retry",
                args=[delivery.pk],
            ),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)


# ---------------------------------------------------------------------------------------
# Destinations (ingestion/destinations.py).


class DestinationForm(forms.ModelForm):
    url = forms.URLField(label="URL", max_length=2000, assume_scheme="https")
    events_text = forms.CharField(
        label="Event names",
        required=False,
        help_text="Comma-separated eventName values to push; empty pushes every event.",
    )

    class Meta:
        model = Destination
        fields = ("organization", "name", "url", "enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["events_text"].initial = ", ".join(self.instance.events)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # ModelForm.clean returns cleaned_data
        names = [e for e in (cleaned.get("events_text") or "").split(",") if e.strip()]
        try:
            name, url, events = destination_settings_check(
                name=cleaned.get("name") or self.instance.name or "",
                url=cleaned.get("url") or "",
                events=names,
            )
        except DestinationInvalid as refused:
            field, _, message = str(refused).partition(": ")
            self.add_error(field if field in self.fields else None, message)
            return cleaned
        cleaned.update(name=name, url=url, events=events)
        return cleaned


# The new destination's secret, from save_model to response_add of the same request: an
# attribute HttpRequest's type does not declare, so it is set and read by name.
_CREATED_SECRET = "_destination_secret"


@admin.register(Destination, site=console_site)
class DestinationAdmin(ConsoleModelAdmin):
    """An organization's destinations: created with their secret shown once, edited,
    turned on and off; "Replay failed deliveries" queues a destination's failed ones."""

    console_section = "Destinations"
    console_item = "Destination"
    console_order = 25
    write_roles = MANAGE_ROLES
    form = DestinationForm
    list_display = ("name", "url", "enabled", "events_shown", "failed_shown", "created_at")
    list_filter = ("enabled", "organization")
    search_fields = ("name", "url")
    actions = ["replay_failed"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        if obj is None:
            return ("organization", "name", "url", "enabled", "events_text")
        return ("organization", "name", "url", "enabled", "events_text", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        return ("organization", "name", "created_at") if obj is not None else ()

    @admin.display(description="events")
    def events_shown(self, obj: Destination) -> str:
        return ", ".join(obj.events) if obj.events else "every event"

    @admin.display(description="failed deliveries")
    def failed_shown(self, obj: Destination) -> Any:
        failed = DestinationDelivery.objects.filter(
            organization_id=obj.organization_id, destination=obj, status=CallbackStatus.FAILED
        ).count()
        if not failed:
            return 0
        url = reverse(f"{self.admin_site.name}:ingestion_destinationdelivery_changelist")
        return format_html(
            '<a href="{}?destination__id__exact={}&status__exact=failed">{}</a>',
            url,
            obj.pk,
            failed,
        )

    def save_model(self, request: HttpRequest, obj: Destination, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            destination_update(
                destination=obj, url=data["url"], events=data["events"], enabled=data["enabled"]
            )
            return
        created, secret = destination_create(
            organization=data["organization"],
            name=data["name"],
            url=data["url"],
            events=data["events"],
            enabled=data["enabled"],
        )
        obj.pk, obj.secret = created.pk, secret
        setattr(request, _CREATED_SECRET, secret)  # shown by response_add, this once

    def response_add(
        self, request: HttpRequest, obj: models.Model, post_url_continue: str | None = None
    ) -> HttpResponse:
        destination = cast(Destination, obj)
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "title": "Destination created",
            "destination": Destination.objects.select_related("organization").get(
                organization_id=destination.organization_id, pk=destination.pk
            ),
            "secret": getattr(request, _CREATED_SECRET),
        }
        response = TemplateResponse(request, "admin/ingestion/destination/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request, None)

    @admin.action(description="Replay failed deliveries", permissions=["replay"])
    def replay_failed(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        replayed = 0
        for destination in queryset.select_related("organization"):
            if role_allows(request, destination.organization_id, MANAGE_ROLES):
                replayed += deliveries_replay(
                    organization=destination.organization,
                    destination=destination,
                    delivery_ids=None,
                )
        self.message_user(request, f"{replayed} failed delivery(ies) queued again.")


@admin.register(DestinationDelivery, site=console_site)
class DestinationDeliveryAdmin(ConsoleModelAdmin):
    """Every POST to a destination, read-only: status, attempts, the last error;
    "Replay" queues the selected failed ones again (the same webhook-id)."""

    console_section = "Destination deliveries"
    console_item = "Destination delivery"
    console_order = 26
    write_roles = READ_ONLY
    superuser_writes = False
    list_display = (
        "webhook_id",
        "destination",
        "status_shown",
        "events_count",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
    )
    list_filter = ("status", "destination", "created_at")
    search_fields = ("webhook_id", "request_id")
    actions = ["replay_selected"]
    fields = (
        "webhook_id",
        "destination",
        "request_id",
        "event_ids",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DestinationDelivery]:
        return super().get_queryset(request).select_related("destination", "organization")

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: DestinationDelivery) -> str:
        return format_html(
            '<span class="callback-status callback-status-{}">{}</span>',
            obj.status,
            obj.get_status_display(),
        )

    @admin.display(description="events")
    def events_count(self, obj: DestinationDelivery) -> int:
        return len(obj.event_ids)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or any(
            role in MANAGE_ROLES for role in member_roles(request).values()
        )

    @admin.action(description="Replay (failed deliveries)", permissions=["replay"])
    def replay_selected(
        self, request: HttpRequest, queryset: QuerySet[DestinationDelivery]
    ) -> None:
        replayed = 0
        for delivery in queryset.filter(status=CallbackStatus.FAILED).select_related(
            "destination", "organization"
        ):
            if role_allows(request, delivery.organization_id, MANAGE_ROLES):
                replayed += deliveries_replay(
                    organization=delivery.organization,
                    destination=delivery.destination,
                    delivery_ids=[delivery.pk],
                )
        self.message_user(request, f"{replayed} failed delivery(ies) queued again.")


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


class ErasureForm(forms.ModelForm):
    """An erasure request: the organization, the identifiers (kept in no row), suppress."""

    customer_id = forms.CharField(label="customerId", required=False, strip=False)
    email = forms.CharField(label="email", required=False, strip=False)
    phone = forms.CharField(label="phone", required=False, strip=False)

    class Meta:
        model = ErasureRequest
        fields = ("organization", "suppress")
        help_texts = {
            "suppress": "Keep a SHA-256 digest of each identifier (never the value) and "
            "refuse later entries that carry one, until an owner lifts it."
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # ModelForm.clean returns cleaned_data
        given = {name: data.get(field) or None for name, field in IDENTIFIER_ARGUMENTS.items()}
        try:
            data["order"] = erasure_order_parse({**given, "suppress": bool(data.get("suppress"))})
        except ApiError as error:
            fields = getattr(error, "fields", [])
            raise forms.ValidationError(
                "Give at least one of customerId, email and phone; a value must not be blank."
                if set(fields) >= {"customerId", "email", "phone"}
                else f"{error.message}: a value must not be blank."
            ) from None
        return data


@admin.register(ErasureRequest, site=console_site)
class ErasureRequestAdmin(ConsoleModelAdmin):
    """An organization's erasure requests: "+ Add" erases a person (owners and admins);
    the list and each page show when, who, what kinds of identifier and the counts, never
    an identifier; an owner lifts a suppression ("Lift the suppression")."""

    console_section = "Erasure requests"
    console_item = "Erasure request"
    console_order = 35
    write_roles = MANAGE_ROLES
    superuser_writes = True
    land_on_change_page_after_add = True
    form = ErasureForm
    list_display = (
        "created_at",
        "erasure_id",
        "requested_by",
        "identifiers_shown",
        "records",
        "events",
        "suppression_shown",
        "logs_scrubbed_at",
    )
    list_filter = ("suppress", "organization", "created_at")
    search_fields = ("erasure_id",)
    actions = ["lift_suppression"]
    readonly_fields = (
        "erasure_id",
        "organization",
        "created_at",
        "requested_by",
        "identifiers_shown",
        "records",
        "history",
        "events",
        "callbacks",
        "deliveries",
        "suppression_shown",
        "logs_scrubbed_at",
    )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        if obj is None:
            return ("organization", "customer_id", "email", "phone", "suppress")
        return self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        return self.readonly_fields if obj is not None else ()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="identifiers")
    def identifiers_shown(self, obj: ErasureRequest) -> str:
        return ", ".join(obj.identifiers)

    @admin.display(description="suppression")
    def suppression_shown(self, obj: ErasureRequest) -> str:
        if not obj.suppress:
            return "—"
        if obj.suppression_lifted_at is None:
            return "Suppressing"
        lifted = display_for_value(obj.suppression_lifted_at, "")
        return f"Lifted {lifted} by {obj.suppression_lifted_by}"

    def save_model(
        self, request: HttpRequest, obj: ErasureRequest, form: Any, change: bool
    ) -> None:
        erasure = erasure_run(
            organization=form.cleaned_data["organization"],
            order=form.cleaned_data["order"],
            requested_by=request.user.get_username(),
        )
        adopt(obj, erasure)

    def response_add(
        self, request: HttpRequest, obj: models.Model, post_url_continue: str | None = None
    ) -> HttpResponse:
        erasure = cast(ErasureRequest, obj)
        self.message_user(
            request,
            f"Erased {erasure.records} records, {erasure.history} history entries and "
            f"{erasure.events} events (erasure {erasure.erasure_id}).",
        )
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:cdp_erasurerequest_change", args=[erasure.pk])
        )

    def has_lift_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or Role.OWNER in member_roles(request).values()

    @admin.action(description="Lift the suppression", permissions=["lift"])
    def lift_suppression(self, request: HttpRequest, queryset: QuerySet[ErasureRequest]) -> None:
        lifted = 0
        for erasure in queryset:
            if role_allows(request, erasure.organization_id, OWNER_ROLES):
                lifted += suppression_lift(erasure=erasure, lifted_by=request.user.get_username())
        self.message_user(request, f"Lifted {lifted} suppression(s).")


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
