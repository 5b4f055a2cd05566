"""The Console's Erasure requests (ingestion/erasure.py): the form, the list (never an
identifier) and "Lift the suppression" for owners."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import display_for_value
from django.db import models
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.urls import reverse

from cdp.console import (
    MANAGE_ROLES,
    ConsoleModelAdmin,
    adopt,
    console_site,
    member_roles,
    role_allows,
)
from cdp.console_columns import short_id
from cdp.errors import ApiError
from cdp.models import ErasureRequest, Role
from ingestion.erasure import (
    IDENTIFIER_ARGUMENTS,
    erasure_order_parse,
    erasure_run,
    suppression_lift,
)

if TYPE_CHECKING:
    # The stubs' names of a fieldset's options and of list_display (no public alias).
    pass

OWNER_ROLES = frozenset({Role.OWNER})


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
        "erasure_shown",
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

    @admin.display(description="erasure ID", ordering="erasure_id")
    def erasure_shown(self, obj: ErasureRequest) -> str:
        return short_id(obj.erasure_id, f"erasure-id-{obj.pk}")

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
