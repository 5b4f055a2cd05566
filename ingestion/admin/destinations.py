"""The Console's Destinations (created with their secret shown once, edited, turned on
and off) and their deliveries, with "Replay" of failed ones (ingestion/destinations.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from cdp.console import (
    MANAGE_ROLES,
    READ_ONLY,
    ConsoleModelAdmin,
    console_site,
    member_roles,
    role_allows,
)
from cdp.console_columns import short_id
from ingestion.destinations import (
    DestinationInvalid,
    deliveries_replay,
    destination_create,
    destination_settings_check,
    destination_update,
)
from ingestion.models import (
    CallbackStatus,
    Destination,
    DestinationDelivery,
)

if TYPE_CHECKING:
    # The stubs' names of a fieldset's options and of list_display (no public alias).
    pass

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
    # In 1366 px: the next attempt, the delivery time and the request are on its page.
    list_display = (
        "webhook_shown",
        "destination",
        "status_shown",
        "events_count",
        "attempts",
        "last_status_code",
        "last_error_shown",
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

    @admin.display(description="webhook-id", ordering="webhook_id")
    def webhook_shown(self, obj: DestinationDelivery) -> str:
        return short_id(obj.webhook_id, f"webhook-id-{obj.pk}", copy=False)

    @admin.display(description="last error")
    def last_error_shown(self, obj: DestinationDelivery) -> str:
        return obj.last_error or "—"

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
