"""The Console's Callback deliveries: the callback outbox, read-only but for "Retry now"
on failed rows (`callback_delivery_retry`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from cdp.console import (
    MANAGE_ROLES,
    READ_ONLY,
    ConsoleModelAdmin,
    console_site,
    member_roles,
    object_view_url,
    role_allows,
)
from cdp.console_columns import short_id
from ingestion.callbacks import callback_delivery_retry
from ingestion.models import (
    CallbackDelivery,
    CallbackStatus,
    IngestionRequest,
)

if TYPE_CHECKING:
    # The stubs' names of a fieldset's options and of list_display (no public alias).
    from django.contrib.admin.options import _ListDisplayT

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
        "request_shown",
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

    @admin.display(description="requestId", ordering="request_id")
    def request_shown(self, obj: CallbackDelivery) -> str:
        return short_id(obj.request_id, f"request-id-{obj.pk}", copy=False)

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
