"""The Console pages of API keys: the list with "Revoke", and "Create API key", which
shows the raw key once. Every write goes through `cdp.services`."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from cdp import services
from cdp.console import (
    MANAGE_ROLES,
    ConsoleModelAdmin,
    console_site,
    role_allows,
    service_errors_apply,
    signed_in_user,
)
from cdp.models import ApiKey, Membership, Organization


class ApiKeyCreateForm(forms.Form):
    service_error_fields = {"key": "name"}

    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    membership = forms.ModelChoiceField(
        queryset=Membership.objects.none(),
        label="Member",
        help_text="The key acts as this member: the Authentication API takes their username.",
    )
    name = forms.CharField(max_length=100, help_text="What the key is for, e.g. crm-sync.")

    def __init__(
        self,
        *args: Any,
        organizations: QuerySet[Organization],
        memberships: QuerySet[Membership],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # The fields declared above.
        organization_field = cast(
            "forms.ModelChoiceField[Organization]", self.fields["organization"]
        )
        membership_field = cast("forms.ModelChoiceField[Membership]", self.fields["membership"])
        organization_field.queryset = organizations
        membership_field.queryset = memberships
        # This field's own label (an instance attribute, as Django allows); mypy refuses any
        # assignment to a method.
        membership_field.label_from_instance = lambda obj: (  # type: ignore[method-assign]
            f"{obj.user.username} ({obj.get_role_display()}) in {obj.organization.name}"
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean returns its cleaned_data
        organization, membership = data.get("organization"), data.get("membership")
        if organization and membership and membership.organization_id != organization.pk:
            self.add_error("membership", "Choose a member of this organization.")
        return data


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey, site=console_site)
class ApiKeyAdmin(ConsoleModelAdmin):
    console_section = "API keys"
    console_item = "API key"
    console_order = 40
    write_roles = MANAGE_ROLES
    list_display = (
        "name",
        "prefix_shown",
        "member",
        "organization",
        "created_at",
        "last_used_at",
        "status",
    )
    list_filter = (KeyStatusFilter, "organization")
    search_fields = ("name", "prefix", "membership__user__username")
    actions = ["revoke_selected"]
    fields = (
        "name",
        "prefix_shown",
        "member",
        "organization",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        return super().get_queryset(request).select_related("membership__user", "organization")

    @admin.display(description="key")
    def prefix_shown(self, obj: ApiKey) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="member", ordering="membership__user__username")
    def member(self, obj: ApiKey) -> str:
        return obj.membership.user.username

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        return "Revoked" if obj.revoked_at else "Active"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a key is created and revoked, never edited

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request, None)

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = skipped = 0
        for api_key in queryset.select_related("organization"):
            if api_key.revoked_at is not None:
                continue
            if not role_allows(request, api_key.organization_id, MANAGE_ROLES):
                skipped += 1
                continue
            services.api_key_revoke(organization=api_key.organization, api_key_id=api_key.pk)
            self.log_change(request, api_key, "Revoked.")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s); their tokens no longer work.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} key(s) not revoked: only an owner or admin of their organization "
                "may revoke them.",
                messages.WARNING,
            )

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Create a key through `services.api_key_create` and show its raw value once, in
        this response only: it is neither stored nor put in a URL, a session or a message."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        organizations = self.writable_organizations(request)
        memberships = Membership.objects.filter(organization__in=organizations).select_related(
            "user", "organization"
        )
        initial: dict[str, Any] = {}
        preset = request.GET.get("organization")
        if preset:
            organization = organizations.filter(pk=preset).first() if preset.isdigit() else None
            if organization is None:
                raise Http404("No such organization among those you manage.")
            initial["organization"] = organization.pk
        elif organizations.count() == 1:
            initial["organization"] = organizations.get().pk
        user = signed_in_user(request)
        own = memberships.filter(user=user)
        if "organization" in initial:
            own = own.filter(organization_id=initial["organization"])
        if own.exists():
            first = own.first()
            assert first is not None  # exists() said so
            initial["membership"] = first.pk
        form = ApiKeyCreateForm(
            request.POST if request.method == "POST" else None,
            organizations=organizations,
            memberships=memberships,
            initial=initial,
        )
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "title": "Create API key",
            "form": form,
            "media": self.media + form.media,
        }
        if form.is_valid():
            try:
                api_key, raw_key = services.api_key_create(
                    membership=form.cleaned_data["membership"],
                    name=form.cleaned_data["name"],
                    created_by=user,
                )
            except ValidationError as error:
                service_errors_apply(form, error)
            else:
                self.log_addition(request, api_key, [{"added": {}}])
                context.update(title="API key created", api_key=api_key, raw_key=raw_key)
                response = TemplateResponse(request, "admin/cdp/apikey/created.html", context)
                response["Cache-Control"] = "no-store"
                return response
        return TemplateResponse(request, "admin/cdp/apikey/create.html", context)
