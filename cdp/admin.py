"""Console pages for organizations, members, custom models, their fields and API keys
. Every write goes through `cdp.services`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from cdp import selectors, services
from cdp.callback_settings import (
    CALLBACK_URL_MAX_LENGTH,
    callback_secret_rotate,
    callback_settings_set,
)
from cdp.console import (
    COUNT_CAP,
    EDIT_ROLES,
    MANAGE_ROLES,
    ConsoleInline,
    ConsoleModelAdmin,
    adopt,
    console_site,
    copyable,
    fresh,
    member_roles,
    role_allows,
    service_errors,
    service_errors_apply,
)
from cdp.models import (
    ApiKey,
    DataModel,
    EntityRecord,
    FieldDefinition,
    Membership,
    Organization,
    Role,
)
from cdp.samples import payload_sample
from cdp.schema import CUSTOM_FIELD_NAME_HELP, KNOWN_TAGS, custom_field_pattern
from ingestion.console import console_ingest
from ingestion.models import CallbackDelivery, CallbackStatus
from journeys.models import JourneyEventConfig


def _many_organizations(request: HttpRequest) -> bool:
    return request.user.is_superuser or len(member_roles(request)) > 1


# --- Organization and members ------------------------------------------------------------


class MembershipForm(forms.ModelForm):
    username = forms.EmailField(
        label="User (email)",
        max_length=150,
        help_text="A user who does not exist yet is created; an operator sets the password.",
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
    fields = ("username", "role", "created_at")
    readonly_fields = ("created_at",)
    write_roles = MANAGE_ROLES
    allow_delete = True
    verbose_name = "member"
    verbose_name_plural = "Members and roles"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user").order_by("user__username")


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
    def your_role(self, obj: Organization) -> str:
        return Role(obj.your_role).label if obj.your_role else "—"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        role = Membership.objects.filter(organization=OuterRef("pk"), user=request.user)
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
                        request.console_callback_secret = secret
        adopt(obj, saved)

    def response_change(self, request: HttpRequest, obj: Organization) -> HttpResponse:
        """After a save that generated the callback signing secret, show it, once, in this
        response (instead of the redirect): it is put in no URL, session or message."""
        secret = getattr(request, "console_callback_secret", None)
        if secret is None:
            return super().response_change(request, obj)
        del request.console_callback_secret
        self.message_user(request, f"The organization “{obj}” was changed successfully.")
        return self._callback_secret_response(request, obj, secret, rotated=False)

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
        view = self.admin_site.admin_view(self.callback_secret_rotate_view)
        return [
            path(
                "<path:object_id>/callback-secret/rotate/",
                view,
                name=f"{self.opts.app_label}_{self.opts.model_name}_callback_secret_rotate",
            ),
            *super().get_urls(),
        ]

    def callback_secret_rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what rotating does, and a button. POST: `callback_secret_rotate`, and the new
        secret shown once. Owners and admins only; another tenant's id is 404."""
        organization = self.get_object(request, unquote(object_id))
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
                elif row.has_changed():
                    services.member_role_set(
                        organization=organization,
                        membership=fresh(membership),
                        role=row.cleaned_data["role"],
                    )
                    formset.changed_objects.append((membership, row.changed_data))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        organization = self.get_object(request, unquote(object_id))
        keys = (
            ApiKey.objects.filter(organization=organization)
            .select_related("membership__user")
            .order_by("revoked_at", "name")
        )
        failed = CallbackDelivery.objects.filter(
            organization=organization, status=CallbackStatus.FAILED
        )
        context = {
            "api_keys": keys,
            "can_manage_keys": role_allows(request, organization.pk, MANAGE_ROLES),
            "can_rotate_callback_secret": self.has_change_permission(request, organization),
            "callback_failed_count": failed.count(),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)


# --- Custom Model, its fields, the Data Ingestion API tab ---------------------------------


class DataModelForm(forms.ModelForm):
    tags = forms.MultipleChoiceField(
        choices=[(tag, tag) for tag in KNOWN_TAGS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="SUPPORT_IGNORED_UPDATE_CFS: ingest requests may name custom fields in "
        "ignoredUpdateCfs to keep their stored values. KEEP_HISTORY: every write that creates "
        "or changes a record keeps a history entry (its changed fields, old and new values), "
        "read with GET /dhub-i/api/v1.0/record-history.",
    )
    service_error_fields = {"momCode": "name"}

    class Meta:
        model = DataModel
        fields = ["organization", "name", "tags"]


class FieldDefinitionForm(forms.ModelForm):
    service_error_fields = {"field": "name"}

    class Meta:
        model = FieldDefinition
        fields = ["name", "label", "required"]
        help_texts = {"name": f"Use {CUSTOM_FIELD_NAME_HELP}; the name sets the type."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # The name fixes the type and the wire group: clients send it.
            self.fields["name"].disabled = True


class FieldDefinitionInline(ConsoleInline):
    model = FieldDefinition
    form = FieldDefinitionForm
    fields = ("name", "label", "type", "wire_group", "required")
    readonly_fields = ("type", "wire_group")
    can_delete = False
    verbose_name = "custom field"
    verbose_name_plural = "Fields"

    @admin.display(description="wire group")
    def wire_group(self, obj: FieldDefinition) -> str:
        pattern = custom_field_pattern(obj.name) if obj.name else None
        return pattern.group if pattern else "—"


class TestIngestForm(forms.Form):
    api_key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(), label="API key", empty_label=None
    )
    init_data = forms.BooleanField(
        required=False, label="initData=true (a historical load: no User Event fires)"
    )
    payload = forms.CharField(
        label="Payload",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 20, "class": "payload-editor", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, api_keys: QuerySet[ApiKey], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["api_key"].queryset = api_keys


@admin.register(DataModel, site=console_site)
class DataModelAdmin(ConsoleModelAdmin):
    form = DataModelForm
    console_section = "Custom Model"
    console_item = "Custom Model"
    console_order = 10
    inlines = [FieldDefinitionInline]
    land_on_change_page_after_add = True
    list_display = ("name", "kind", "object_type", "mom_code", "key_field", "tags_shown")
    list_filter = ("kind",)
    search_fields = ("name", "mom_code", "object_type")
    ordering = ("kind", "name")
    change_form_template = "admin/cdp/datamodel/change_form.html"

    def get_list_display(self, request: HttpRequest) -> tuple:
        columns = super().get_list_display(request)
        return (*columns, "organization") if _many_organizations(request) else columns

    def get_list_filter(self, request: HttpRequest) -> list:
        filters = super().get_list_filter(request)
        if _many_organizations(request):
            filters.append(("organization", admin.RelatedOnlyFieldListFilter))
        return filters

    @admin.display(description="tags")
    def tags_shown(self, obj: DataModel) -> str:
        return ", ".join(obj.tags) or "—"

    def get_fields(self, request: HttpRequest, obj: DataModel | None = None) -> tuple:
        if obj is None:
            return ("organization", "name", "tags")
        return ("name", "kind", "object_type", "mom_code", "key_field", "tags", "organization")

    def get_readonly_fields(self, request: HttpRequest, obj: DataModel | None = None) -> tuple:
        if obj is None:
            return ()
        fixed = ("name", "kind", "object_type", "mom_code", "key_field", "organization")
        # A system model keeps the tags its spec gives it.
        return fixed if obj.is_custom else (*fixed, "tags")

    def get_inlines(self, request: HttpRequest, obj: DataModel | None) -> list:
        return self.inlines if obj is not None else []

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        organizations = list(self.writable_organizations(request)[:2])
        if "organization" not in initial and len(organizations) == 1:
            initial["organization"] = organizations[0].pk
        return initial

    def save_model(self, request: HttpRequest, obj: DataModel, form: Any, change: bool) -> None:
        data = form.cleaned_data
        with service_errors():
            if not change:
                saved = services.custom_model_create(
                    organization=data["organization"], name=data["name"], tags=data["tags"]
                )
            elif "tags" in data:
                saved = services.custom_model_tags_set(
                    organization=obj.organization, data_model=fresh(obj), tags=data["tags"]
                )
            else:
                return
        adopt(obj, saved)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        data_model = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for row in formset.forms:
            if not row.has_changed():
                continue
            data = row.cleaned_data
            with service_errors(row.prefix):
                if row.instance.pk is None:
                    created = services.field_definition_create(
                        organization=data_model.organization,
                        data_model=data_model,
                        name=data["name"],
                        label=data["label"],
                        required=data["required"],
                    )
                    formset.new_objects.append(created)
                else:
                    services.field_definition_update(
                        organization=data_model.organization,
                        field_definition=fresh(row.instance),
                        label=data["label"],
                        required=data["required"],
                    )
                    formset.changed_objects.append((row.instance, row.changed_data))

    # The Data Ingestion API tab and its test form.

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.test_ingest_view)
        return [
            path(
                "<path:object_id>/test-ingest/",
                view,
                name=f"{self.opts.app_label}_{self.opts.model_name}_test_ingest",
            ),
            *super().get_urls(),
        ]

    def _sample(self, data_model: DataModel) -> str:
        schema = data_model.schema(
            list(
                FieldDefinition.objects.filter(
                    organization_id=data_model.organization_id, data_model=data_model
                )
            )
        )
        return json.dumps(payload_sample(data_model=data_model, schema=schema), indent=2)

    def _ingestion_context(
        self, request: HttpRequest, data_model: DataModel, form: TestIngestForm | None = None
    ) -> dict[str, Any]:
        keys = selectors.api_keys_usable(organization=data_model.organization, user=request.user)
        sample = self._sample(data_model)
        return {
            "sample_payload": sample,
            "test_form": form or TestIngestForm(api_keys=keys, initial={"payload": sample}),
            "has_api_keys": keys.exists(),
            "can_test_ingest": self.has_change_permission(request, data_model),
            "can_manage_keys": role_allows(request, data_model.organization_id, MANAGE_ROLES),
            "api_key_add_url": reverse(f"{self.admin_site.name}:cdp_apikey_add")
            + f"?organization={data_model.organization_id}",
            "test_ingest_url": reverse(
                f"{self.admin_site.name}:cdp_datamodel_test_ingest", args=[data_model.pk]
            ),
        }

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        data_model = self.get_object(request, unquote(object_id))
        user_events = JourneyEventConfig.objects.filter(
            organization_id=data_model.organization_id, data_model=data_model
        ).order_by("-created_at")
        context = {
            **self._ingestion_context(request, data_model),
            "user_events": user_events,
            "can_add_user_event": role_allows(request, data_model.organization_id, EDIT_ROLES),
            "user_event_add_url": reverse(f"{self.admin_site.name}:journeys_journeyeventconfig_add")
            + f"?data_model={data_model.pk}",
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A model is never deleted in the Console (docs/decisions.md): one with records
        would take them with it (the records' foreign key cascades), and clients and User
        Events name every model. The delete page, GET or POST, says why and deletes nothing
        (403, as the permission says). Another tenant's id is 404, as on every page."""
        data_model = self.get_object(request, unquote(object_id))
        organization_id = data_model.organization_id
        # Capped, as the large lists count: one bounded scan of the model's key index.
        records = EntityRecord.objects.filter(
            organization_id=organization_id, data_model=data_model
        )[: COUNT_CAP + 1].count()
        user_events = JourneyEventConfig.objects.filter(
            organization_id=organization_id, data_model=data_model
        ).count()
        admin_name = self.admin_site.name
        user_events_url = (
            reverse(f"{admin_name}:journeys_journeyeventconfig_changelist")
            + f"?data_model__id__exact={data_model.pk}"
        )
        shown = f"{COUNT_CAP:,}+" if records > COUNT_CAP else f"{records:,}"
        paragraphs = []
        if records:
            paragraphs.append(
                format_html(
                    "A model with records cannot be deleted: “{}” holds {} record{}, and "
                    "deleting the model would delete its records, their history and its User "
                    "Events.",
                    data_model,
                    shown,
                    "" if records == 1 else "s",
                )
            )
        if not data_model.is_custom:
            paragraphs.append(
                format_html(
                    "“{}” is a system model: every organization has it, as the Data Ingestion "
                    "API's objectType <code>{}</code>.",
                    data_model,
                    data_model.object_type,
                )
            )
        else:
            paragraphs.append(
                format_html(
                    "Custom models are not deleted: clients send its entries with momCode "
                    "<code>{}</code>, and its User Events and their events name it.",
                    data_model.mom_code,
                )
            )
        if user_events:
            paragraphs.append(
                format_html(
                    'To stop the events it generates, disable <a href="{}">its {} User '
                    "Event{}</a> instead (their events are kept).",
                    user_events_url,
                    user_events,
                    "" if user_events == 1 else "s",
                )
            )
        paragraphs.append(
            "To stop writes to it, stop the clients that send its entries (or revoke their "
            "API keys); a model that receives nothing costs nothing and can stay."
        )
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "object": data_model,
            "title": f"Cannot delete {self.console_item_name()} “{data_model}”",
            "content": format_html(
                '<div class="delete-refused">{}</div>',
                format_html_join("", "<p>{}</p>", ((p,) for p in paragraphs)),
            ),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/base_site.html", context, status=403)

    def test_ingest_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Send a payload through the real pipeline as the signed-in member, with one of
        their own unrevoked API keys, and show the API's answer. With the "Dry run" button
        (`dry_run` in the POST) the pipeline plans the payload and stores nothing: the page
        also shows, entry by entry, what would change and the event it would generate."""
        data_model = self.get_object(request, unquote(object_id))
        if not self.has_change_permission(request, data_model):
            raise PermissionDenied
        keys = selectors.api_keys_usable(organization=data_model.organization, user=request.user)
        form = TestIngestForm(
            request.POST if request.method == "POST" else None,
            api_keys=keys,
            initial={"payload": self._sample(data_model)},
        )
        dry_run = request.method == "POST" and "dry_run" in request.POST
        result = None
        if form.is_valid():
            result = console_ingest(
                api_key=form.cleaned_data["api_key"],
                body=form.cleaned_data["payload"],
                init_data=form.cleaned_data["init_data"],
                request_id=request.request_id,
                dry_run=dry_run,
            )

        rows = _dry_run_rows(result.body) if dry_run and result is not None else []
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            **self._ingestion_context(request, data_model, form),
            "title": "Data Ingestion API",
            "subtitle": str(data_model),
            "opts": self.opts,
            "original": data_model,
            "result": result,
            "result_body": json.dumps(result.body, indent=2) if result else "",
            "dry_run": dry_run and result is not None,
            "dry_run_entries": rows,
        }
        return TemplateResponse(request, "admin/cdp/datamodel/test_ingest.html", context)


def _shown(value: Any) -> str | None:
    """A value of a dry run's changes as text (None: null, shown as a dash)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _number(value: Any) -> str | None:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return None if value is None else str(value)


def _event_shown(event: dict[str, Any]) -> dict[str, Any]:
    at = datetime.fromtimestamp(event["eventAt"] / 1000, tz=UTC)
    return {
        **event,
        "value": _number(event.get("value")),
        "at_iso": at.isoformat(timespec="milliseconds"),
        "at_shown": f"{at:%Y-%m-%d %H:%M:%S}.{at.microsecond // 1000:03d} UTC",
    }


def _dry_run_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A dry run's results as the Console's table shows them: each entry's action, its
    changes as text and the event it would generate."""
    rows = []
    for item in body.get("results") or []:
        rejected = item.get("status") != 200
        rows.append(
            {
                "index": item.get("index"),
                "ref_id": item.get("refId"),
                "rejected": rejected,
                "action": item.get("errorMessage", "")
                if rejected
                else f"would be {item.get('action')}",
                "cdp_id": item.get("cdpId"),
                "changes": [
                    {"field": name, "from": _shown(change["from"]), "to": _shown(change["to"])}
                    for name, change in (item.get("changes") or {}).items()
                ],
                "event": _event_shown(item["event"]) if item.get("event") else None,
            }
        )
    return rows


# --- API keys -----------------------------------------------------------------------------


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
        self.fields["organization"].queryset = organizations
        self.fields["membership"].queryset = memberships
        self.fields["membership"].label_from_instance = lambda m: (
            f"{m.user.username} ({m.get_role_display()}) in {m.organization.name}"
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
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
        own = memberships.filter(user=request.user)
        if "organization" in initial:
            own = own.filter(organization_id=initial["organization"])
        if own.exists():
            initial["membership"] = own.first().pk
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
                    created_by=request.user,
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
