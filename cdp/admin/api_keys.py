"""The Console pages of API keys: the list, "Create API key" and the page after it that
shows the raw key once, and revoking, of one key from its page or of the list's selection,
which asks on a confirmation page first. Every write goes through `cdp.services`.

Creating is post/redirect/get: the POST creates the key and redirects to
`<id>/created/<token>/`, which shows the raw key on its first GET only (`_raw_key_keep`),
so reloading that page shows the key without it and creates nothing."""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from cdp import services
from cdp.console import (
    MANAGE_ROLES,
    ConsoleModelAdmin,
    console_site,
    member_roles,
    object_view_url,
    role_allows,
    service_errors_apply,
    signed_in_user,
)
from cdp.models import ApiKey, Membership, Organization

# The raw keys created in this session and not shown yet: {token: {"api_key", "raw",
# "at"}}. An entry lives from the create POST to the GET it redirects to, and at most
# SHOWN_ONCE_SECONDS if that GET never comes, so a raw key does not linger in the session
# store (docs/decisions.md, "API keys in the Console").
SHOWN_ONCE_SESSION_KEY = "cdp_api_keys_shown_once"
SHOWN_ONCE_SECONDS = 300


def _raw_key_keep(request: HttpRequest, api_key: ApiKey, raw_key: str) -> str:
    """Keep `raw_key` in the session for the one page that shows it; returns the one-time
    token that page's URL carries. Entries past their time are dropped."""
    now = time.time()
    kept = {
        token: entry
        for token, entry in request.session.get(SHOWN_ONCE_SESSION_KEY, {}).items()
        if now - entry["at"] < SHOWN_ONCE_SECONDS
    }
    token = secrets.token_urlsafe(16)
    kept[token] = {"api_key": api_key.pk, "raw": raw_key, "at": now}
    request.session[SHOWN_ONCE_SESSION_KEY] = kept
    return token


def _raw_key_take(request: HttpRequest, api_key: ApiKey, token: str) -> str | None:
    """The raw key kept under `token` for `api_key`, removed from the session: given once,
    then None (as for an unknown token, another key's, or one past its time)."""
    kept = dict(request.session.get(SHOWN_ONCE_SESSION_KEY, {}))
    entry = kept.pop(token, None)
    if entry is None:
        return None
    if kept:
        request.session[SHOWN_ONCE_SESSION_KEY] = kept
    else:
        del request.session[SHOWN_ONCE_SESSION_KEY]
    if entry["api_key"] != api_key.pk or time.time() - entry["at"] >= SHOWN_ONCE_SECONDS:
        return None
    raw: str = entry["raw"]
    return raw


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

    def get_list_display(self, request: HttpRequest) -> Any:
        """The organization column only when the list holds several organizations' keys."""
        columns = tuple(super().get_list_display(request))
        if request.user.is_superuser or len(member_roles(request)) > 1:
            return columns
        return tuple(column for column in columns if column != "organization")

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

    def has_revoke_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        """Owners and admins of the key's organization (of any of theirs, without a key:
        whether the list offers the action)."""
        return self._may_write(request, obj)

    @admin.action(description="Revoke selected API keys…", permissions=["revoke"])
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> TemplateResponse | None:
        """First a confirmation page naming the keys (as Django's "Delete selected" does);
        its Confirm posts the selection again with `post`, which revokes them."""
        selected = list(queryset.select_related("organization", "membership__user"))
        live = [api_key for api_key in selected if api_key.revoked_at is None]
        revocable = [k for k in live if role_allows(request, k.organization_id, MANAGE_ROLES)]
        refused = len(live) - len(revocable)
        if not revocable:
            self.message_user(
                request,
                "None of the selected API keys can be revoked: "
                + self._not_revoked(len(selected) - len(live), refused),
                messages.WARNING,
            )
            return None
        if request.POST.get("post") != "yes":
            return self._revoke_confirmation(
                request,
                revocable,
                title="Revoke API keys",
                selected=[api_key.pk for api_key in selected],
                refused=refused,
            )
        for api_key in revocable:
            services.api_key_revoke(organization=api_key.organization, api_key_id=api_key.pk)
            self.log_change(request, api_key, "Revoked.")
        self.message_user(
            request, f"Revoked {len(revocable)} API key(s); their tokens no longer work."
        )
        if refused:
            self.message_user(
                request,
                f"{refused} key(s) not revoked: only an owner or admin of their organization "
                "may revoke them.",
                messages.WARNING,
            )
        return None

    @staticmethod
    def _not_revoked(already: int, refused: int) -> str:
        reasons = []
        if already:
            reasons.append(f"{already} already revoked")
        if refused:
            reasons.append(f"{refused} of an organization where you are not an owner or admin")
        return "; ".join(reasons) + "."

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: which key, what revoking does, Confirm and Cancel. POST: `api_key_revoke`,
        then the list. Owners and admins of the key's organization only; another tenant's
        key is 404."""
        api_key = cast(ApiKey, self.get_object(request, unquote(object_id)))
        if not self.has_revoke_permission(request, api_key):
            raise PermissionDenied
        if request.method == "POST":
            if api_key.revoked_at is None:
                services.api_key_revoke(organization=api_key.organization, api_key_id=api_key.pk)
                self.log_change(request, api_key, "Revoked.")
                self.message_user(
                    request, f"Revoked API key “{api_key}”; its tokens no longer work."
                )
            else:
                self.message_user(request, f"API key “{api_key}” was already revoked.")
            return HttpResponseRedirect(self._url("changelist"))
        return self._revoke_confirmation(request, [api_key], title=f"Revoke API key {api_key}")

    def _revoke_confirmation(
        self,
        request: HttpRequest,
        api_keys: list[ApiKey],
        *,
        title: str,
        selected: list[int] | None = None,
        refused: int = 0,
    ) -> TemplateResponse:
        """The confirmation page: of one key (`selected` None, the form posts to the key's
        revoke page) or of the list's action (the form posts `selected` back to the list)."""
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "title": title,
            "api_keys": api_keys,
            "selected": selected,
            "refused": refused,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": self._url("changelist")
            if selected is not None
            else self._url("change", api_keys[0].pk),
        }
        return TemplateResponse(request, "admin/cdp/apikey/revoke_confirm.html", context)

    def _url(self, view: str, *args: Any) -> str:
        opts = self.opts
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{view}", args=args
        )

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts
        created = path(
            "<path:object_id>/created/<str:token>/",
            self.admin_site.admin_view(self.created_view),
            name=f"{opts.app_label}_{opts.model_name}_created",
        )
        revoke = object_view_url(self, "revoke/", self.revoke_view, "revoke")
        return [created, revoke, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        api_key = cast(ApiKey, self.get_object(request, unquote(object_id)))
        context = {"revoke_url": self._revoke_url(request, api_key), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    def _revoke_url(self, request: HttpRequest, api_key: ApiKey) -> str | None:
        """The key's revoke page, if the key is live and the member may revoke it."""
        if api_key.revoked_at is not None or not self.has_revoke_permission(request, api_key):
            return None
        return self._url("revoke", api_key.pk)

    def created_view(self, request: HttpRequest, object_id: str, token: str) -> HttpResponse:
        """Where creating a key lands: the raw key on the first GET after the create, and
        on any later one (a reload, the URL again) the key without it. Not cached."""
        api_key = cast(ApiKey, self.get_object(request, unquote(object_id)))
        if not self.has_view_permission(request, api_key):
            raise PermissionDenied
        raw_key = _raw_key_take(request, api_key, token)
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "title": "API key created" if raw_key else f"API key {api_key}",
            "api_key": api_key,
            "raw_key": raw_key,
            "revoke_url": self._revoke_url(request, api_key),
        }
        response = TemplateResponse(request, "admin/cdp/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Create a key through `services.api_key_create`, then redirect to the page that
        shows its raw value once (`created_view`): the raw key waits in the session, never
        in a URL or a message, until that page takes it."""
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
                token = _raw_key_keep(request, api_key, raw_key)
                return HttpResponseRedirect(self._url("created", api_key.pk, token))
        return TemplateResponse(request, "admin/cdp/apikey/create.html", context)
