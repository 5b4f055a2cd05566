"""The Console page of an organization: its name, its members and their roles, its
callback settings and signing secret, and its API keys. Every write goes through the
services (`cdp.services`, `cdp.callback_settings`).

A member added without a password gets a one-time set-password link (cdp/set_password.py),
shown once on the page that follows saving, like the callback signing secret; their row
offers owners and admins a new one until they have set a password.

Apps add to the page through the Console's registry: the "callback_tools" slot holds
their links beside the callback settings (ingestion's callback deliveries)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cdp import services
from cdp.callback_settings import (
    CALLBACK_URL_MAX_LENGTH,
    callback_secret_rotate,
    callback_settings_set,
)
from cdp.console import (
    MANAGE_ROLES,
    ConsoleInline,
    ConsoleModelAdmin,
    adopt,
    console_site,
    copyable,
    fresh,
    member_roles,
    object_view_url,
    role_allows,
    service_errors,
    signed_in_user,
)
from cdp.models import ApiKey, Membership, Organization, Role
from cdp.services.members import (
    set_password_link_memberships,
    set_password_link_refusal,
    set_password_token_issue,
)
from cdp.set_password import link_lifetime, set_password_url

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django_stubs_ext import WithAnnotations


class _YourRole(TypedDict):
    """What `OrganizationAdmin.get_queryset` annotates an organization with."""

    your_role: str | None


class _CallbackSecretRequest(HttpRequest):
    """For annotations only: a request that generated the callback signing secret keeps it
    for `response_change` to show once (HttpRequest does not declare it)."""

    console_callback_secret: str


class _SetPasswordLinksRequest(HttpRequest):
    """For annotations only: a request that added members without a password keeps their
    set-password links, (username, link), for `response_change` to show once."""

    console_set_password_links: list[tuple[str, str]]


class _LinkOffered(TypedDict):
    """What `MembershipInline.get_queryset` annotates a membership with."""

    set_password_link: bool


class MembershipForm(forms.ModelForm):
    username = forms.EmailField(
        label="User (email)",
        max_length=150,
        help_text="A user who does not exist yet is created, and a one-time link with which "
        "they set their password is shown after saving, for you to hand them.",
    )

    class Meta:
        model = Membership
        fields = ["role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = self.instance.user.username
            self.fields["username"].disabled = True
            self.fields["username"].required = False
            self.fields["username"].help_text = ""


class MembershipInline(ConsoleInline):
    model = Membership
    form = MembershipForm
    fields = ("username", "role", "password_state", "created_at")
    readonly_fields = ("password_state", "created_at")
    write_roles = MANAGE_ROLES
    allow_delete = True
    verbose_name = "member"
    verbose_name_plural = "Members and roles"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        # Whether the signed-in member may give each row's user a set-password link: the
        # rule (services.members) as a subquery, so the list costs no query per row.
        offered = set_password_link_memberships(issued_by=signed_in_user(request))
        return (
            super()
            .get_queryset(request)
            .select_related("user")
            .annotate(set_password_link=Exists(offered.filter(pk=OuterRef("pk"))))
            .order_by("user__username")
        )

    @admin.display(description="password")
    def password_state(self, obj: WithAnnotations[Membership, _LinkOffered]) -> str:
        if obj.pk is None:  # the empty row of a new member
            return ""
        if obj.user.has_usable_password():
            return "set"
        if not getattr(obj, "set_password_link", False):
            return "not set yet"
        link = reverse(
            "admin:cdp_organization_member_set_password_link", args=[obj.organization_id, obj.pk]
        )
        return format_html(
            'not set yet <a class="button new-set-password-link" href="{}">'
            "New set-password link…</a>",
            link,
        )


CALLBACK_FIELDS = ("callback_url", "callback_enabled")


class OrganizationForm(forms.ModelForm):
    """The organization's name, and its callback URL and switch.

    The callback fields are form fields only (the model form's fields leave them out, see
    `OrganizationAdmin.get_form`): `callback_settings_set` judges them, with its own
    messages and the SSRF guard, and writes them; the model's URL validator does not.
    """

    service_error_fields = {"url": "callback_url", "enabled": "callback_enabled"}

    callback_url = forms.CharField(
        label="Callback URL",
        required=False,
        max_length=CALLBACK_URL_MAX_LENGTH,
        widget=forms.URLInput(
            attrs={"class": "vURLField", "placeholder": "https://partner.example/cdp-callback"}
        ),
        help_text="Where the per-record results of each ingest request are POSTed "
        "(docs/callbacks.md). It must resolve to public addresses. Empty: no callback.",
    )
    callback_enabled = forms.BooleanField(
        label="Callbacks on",
        required=False,
        help_text="Off: no callback is written, and pending ones are marked failed.",
    )

    class Meta:
        model = Organization
        fields = ["name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in CALLBACK_FIELDS:
            self.initial.setdefault(name, getattr(self.instance, name))


@admin.register(Organization, site=console_site)
class OrganizationAdmin(ConsoleModelAdmin):
    form = OrganizationForm
    console_section = "Organization"
    console_item = "Organization"
    console_order = 30
    write_roles = MANAGE_ROLES
    inlines = [MembershipInline]
    list_display = ("name", "group_key", "your_role", "is_active", "created_at")
    search_fields = ("name", "group_key")
    change_form_template = "admin/cdp/organization/change_form.html"
    console_slots = ("callback_tools",)

    CALLBACK_NOTE = (
        "Owners and admins set the URL and turn callbacks on or off here. The signing "
        "secret is generated with the first URL and shown once, on the page that follows "
        "saving; it is never shown again: if it is lost, rotate it."
    )
    CALLBACK_NOTE_READ_ONLY = (
        "Owners and admins of the organization change these. The signing secret is never "
        "shown after it was generated."
    )

    def get_fieldsets(self, request: HttpRequest, obj: Organization | None = None) -> list:
        if obj is None:
            return [(None, {"fields": ("name",)})]
        may_change = self.has_change_permission(request, obj)
        return [
            (None, {"fields": ("name", "group_key_shown", "is_active", "created_at")}),
            (
                "Callback settings",
                {
                    "fields": (*CALLBACK_FIELDS, "signing_secret"),
                    "description": self.CALLBACK_NOTE
                    if may_change
                    else self.CALLBACK_NOTE_READ_ONLY,
                },
            ),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Organization | None = None) -> tuple:
        if obj is None:
            return ()
        return ("group_key_shown", "is_active", "created_at", "signing_secret")

    def get_form(
        self, request: HttpRequest, obj: Organization | None = None, change: bool = False, **kwargs
    ):
        """The model form's fields leave the callback fields out: they are the form's own
        (OrganizationForm), written by the callback service only."""
        fields = kwargs.pop("fields", None)
        if fields is None:
            fields = flatten_fieldsets(self.get_fieldsets(request, obj))
        kwargs["fields"] = [name for name in fields if name not in CALLBACK_FIELDS]
        return super().get_form(request, obj, change, **kwargs)

    def get_inlines(self, request: HttpRequest, obj: Organization | None) -> list:
        return self.inlines if obj is not None else []

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser  # tenants are created by operators

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A member of one organization goes straight to its page (the menu's
        "Organization" is theirs); members of several, and superusers, get the list."""
        roles = member_roles(request)
        if not request.user.is_superuser and len(roles) == 1 and not request.GET:
            (organization_id,) = roles
            return HttpResponseRedirect(
                reverse(f"{self.admin_site.name}:cdp_organization_change", args=[organization_id])
            )
        return super().changelist_view(request, extra_context)

    @admin.display(description="group key (cdpGKey)")
    def group_key_shown(self, obj: Organization) -> str:
        return copyable(obj.group_key, "group-key")

    @admin.display(description="signing secret")
    def signing_secret(self, obj: Organization) -> str:
        set_at = getattr(obj, "callback_secret_set_at", None)
        if set_at:
            return f"set on {set_at:%Y-%m-%d %H:%M} UTC (not shown)"
        return "none yet: generated with the first callback URL"

    @admin.display(description="your role")
    def your_role(self, obj: WithAnnotations[Organization, _YourRole]) -> str:
        return Role(obj.your_role).label if obj.your_role else "—"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        role = Membership.objects.filter(organization=OuterRef("pk"), user=signed_in_user(request))
        return super().get_queryset(request).annotate(your_role=Subquery(role.values("role")[:1]))

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        data = form.cleaned_data
        with service_errors():
            if not change:
                saved = services.organization_create(name=data["name"])
            else:
                saved = services.organization_rename(organization=fresh(obj), name=data["name"])
                if any(name in form.changed_data for name in CALLBACK_FIELDS):
                    secret = callback_settings_set(
                        organization=saved,
                        url=data["callback_url"],
                        enabled=data["callback_enabled"],
                    )
                    if secret is not None:
                        # Kept on this request only, for `response_change` to show once.
                        cast(_CallbackSecretRequest, request).console_callback_secret = secret
        adopt(obj, saved)

    def response_change(self, request: HttpRequest, obj: Organization) -> HttpResponse:
        """After a save that generated the callback signing secret or added members without
        a password, show the secret and the members' set-password links, once, in this
        response (instead of the redirect): they are put in no URL, session or message."""
        secret: str | None = getattr(request, "console_callback_secret", None)
        links: list[tuple[str, str]] = getattr(request, "console_set_password_links", [])
        if secret is None and not links:
            return super().response_change(request, obj)
        self.message_user(request, f"The organization “{obj}” was changed successfully.")
        if secret is not None:
            del cast(_CallbackSecretRequest, request).console_callback_secret
            if not links:
                return self._callback_secret_response(request, obj, secret, rotated=False)
        del cast(_SetPasswordLinksRequest, request).console_set_password_links
        return self._set_password_links_response(request, obj, links, callback_secret=secret)

    def _set_password_links_response(
        self,
        request: HttpRequest,
        organization: Organization,
        links: list[tuple[str, str]],
        *,
        renewed: bool = False,
        callback_secret: str | None = None,
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "title": "New set-password link" if renewed else "Set-password links",
            "original": organization,
            "links": [
                (username, copyable(link, f"set-password-link-{number}"))
                for number, (username, link) in enumerate(links, start=1)
            ],
            "link_lifetime": link_lifetime(),
            "renewed": renewed,
            "callback_secret": callback_secret,
        }
        response = TemplateResponse(
            request, "admin/cdp/organization/set_password_links.html", context
        )
        response["Cache-Control"] = "no-store"
        return response

    def _callback_secret_response(
        self, request: HttpRequest, organization: Organization, secret: str, *, rotated: bool
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "title": "Callback signing secret rotated" if rotated else "Callback signing secret",
            "original": organization,
            "callback_secret": secret,
            "rotated": rotated,
        }
        response = TemplateResponse(request, "admin/cdp/organization/callback_secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_urls(self) -> list:
        rotate = object_view_url(
            self,
            "callback-secret/rotate/",
            self.callback_secret_rotate_view,
            "callback_secret_rotate",
        )
        # Not `object_view_url`: the route holds the member's id too.
        set_password_link = path(
            "<path:object_id>/members/<int:membership_id>/set-password-link/",
            self.admin_site.admin_view(self.member_set_password_link_view),
            name="cdp_organization_member_set_password_link",
        )
        return [rotate, set_password_link, *super().get_urls()]

    def member_set_password_link_view(
        self, request: HttpRequest, object_id: str, membership_id: int
    ) -> HttpResponse:
        """GET: what a new link does, and a button. POST: `set_password_token_issue`, and
        the link shown once (any earlier one stops working). Owners and admins only; another
        tenant's organization or member is 404."""
        organization = cast(Organization, self.get_object(request, unquote(object_id)))
        if not self.has_change_permission(request, organization):
            raise PermissionDenied
        membership = get_object_or_404(
            Membership.objects.select_related("user"), organization=organization, pk=membership_id
        )
        issued_by = signed_in_user(request)
        change_url = reverse("admin:cdp_organization_change", args=[organization.pk])
        if request.method == "POST":
            try:
                uidb64, token = set_password_token_issue(
                    organization=organization, membership=membership, issued_by=issued_by
                )
            except ValidationError as refused:
                self.message_user(request, " ".join(refused.messages), messages.ERROR)
                return HttpResponseRedirect(change_url)
            username = membership.user.username
            self.log_change(request, organization, f"Made a new set-password link for {username}.")
            link = set_password_url(request, uidb64, token)
            return self._set_password_links_response(
                request, organization, [(username, link)], renewed=True
            )
        refusal = set_password_link_refusal(
            organization=organization, membership=membership, issued_by=issued_by
        )
        if refusal is not None:
            self.message_user(request, refusal, messages.ERROR)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "title": "New set-password link",
            "original": organization,
            "member": membership.user,
            "link_lifetime": link_lifetime(),
        }
        return TemplateResponse(
            request, "admin/cdp/organization/set_password_link_new.html", context
        )

    def callback_secret_rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what rotating does, and a button. POST: `callback_secret_rotate`, and the new
        secret shown once. Owners and admins only; another tenant's id is 404."""
        organization = cast(Organization, self.get_object(request, unquote(object_id)))
        if not self.has_change_permission(request, organization):
            raise PermissionDenied
        if request.method == "POST":
            secret = callback_secret_rotate(organization=fresh(organization))
            self.log_change(request, organization, "Rotated the callback signing secret.")
            return self._callback_secret_response(request, organization, secret, rotated=True)
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "title": "Rotate the callback signing secret",
            "original": organization,
        }
        return TemplateResponse(
            request, "admin/cdp/organization/callback_secret_rotate.html", context
        )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        organization = form.instance
        issued_by = signed_in_user(request)
        links: list[tuple[str, str]] = []
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for row in formset.forms:
            membership = row.instance
            with service_errors(row.prefix):
                if row in formset.deleted_forms:
                    if membership.pk:
                        services.member_remove(
                            organization=organization, membership=fresh(membership)
                        )
                        formset.deleted_objects.append(membership)
                elif membership.pk is None:
                    if row.has_changed():
                        created = services.member_invite(
                            organization=organization,
                            username=row.cleaned_data["username"],
                            role=row.cleaned_data["role"],
                        )
                        formset.new_objects.append(created)
                        link = self._new_member_link(request, organization, created, issued_by)
                        if link is not None:
                            links.append((created.user.username, link))
                elif row.has_changed():
                    services.member_role_set(
                        organization=organization,
                        membership=fresh(membership),
                        role=row.cleaned_data["role"],
                    )
                    formset.changed_objects.append((membership, row.changed_data))
        if links:
            # Kept on this request only, for `response_change` to show once.
            cast(_SetPasswordLinksRequest, request).console_set_password_links = links

    def _new_member_link(
        self,
        request: HttpRequest,
        organization: Organization,
        membership: Membership,
        issued_by: User,
    ) -> str | None:
        """The set-password link of a member just added, when the rule gives them one: a
        new user does; an existing one with a password, or a member of an organization
        `issued_by` does not manage, does not (`set_password_link_refusal`)."""
        if set_password_link_refusal(
            organization=organization, membership=membership, issued_by=issued_by
        ):
            return None
        uidb64, token = set_password_token_issue(
            organization=organization, membership=membership, issued_by=issued_by
        )
        return set_password_url(request, uidb64, token)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        organization = cast(Organization, self.get_object(request, unquote(object_id)))
        keys = (
            ApiKey.objects.filter(organization=organization)
            .select_related("membership__user")
            .order_by("revoked_at", "name")
        )
        context = {
            "api_keys": keys,
            "can_manage_keys": role_allows(request, organization.pk, MANAGE_ROLES),
            "can_rotate_callback_secret": self.has_change_permission(request, organization),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)
