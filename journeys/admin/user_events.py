"""The Console's User Event pages: the list, "+ Add" and the change page (the form in
`user_event_form`), enable/disable, the preview on real records and the last backfill's
result. A User Event is created through `journey_event_config_create` and changed
through `journey_event_config_update`; those services validate every setting, and their
errors, each named by its path (`filter.conditions[1].value`), are shown on the form's
fields and, by the row editors, on the row they concern."""

from __future__ import annotations

import json
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from cdp.console import (
    EDIT_ROLES,
    MANAGE_ROLES,
    ConsoleModelAdmin,
    adopt,
    console_site,
    copyable,
    fresh,
    role_allows,
    service_errors,
)
from cdp.console_columns import short_id
from cdp.models import DataModel, FieldDefinition
from cdp.samples import payload_sample
from journeys.admin.user_event_form import UserEventForm, row_editor_schema
from journeys.models import (
    JourneyEventConfig,
    Trigger,
    backfill_progress_key,
)
from journeys.preview import PREVIEW_DEFAULT, PREVIEW_MAX, user_event_preview
from journeys.services import (
    journey_event_config_create,
    journey_event_config_set_enabled,
    journey_event_config_update,
)

BACKFILL_TASK = "ingestion.tasks.backfill_user_event"


def _last_backfill(config: JourneyEventConfig) -> Any:
    from django_tasks_db.models import DBTaskResult

    return (
        DBTaskResult.objects.filter(
            task_path=BACKFILL_TASK,
            args_kwargs__args=[config.organization_id, config.config_id],
        )
        .order_by("-enqueued_at")
        .first()
    )


class StatusFilter(admin.BooleanFieldListFilter):
    """The filter "By status: Enabled / Disabled", not the field's own "By Enable: Yes / No"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "status"

    def choices(self, changelist: Any) -> Any:
        words = {"Yes": "Enabled", "No": "Disabled"}
        for choice in super().choices(changelist):
            yield {**choice, "display": words.get(str(choice["display"]), choice["display"])}


@admin.register(JourneyEventConfig, site=console_site)
class JourneyEventConfigAdmin(ConsoleModelAdmin):
    form = UserEventForm
    console_section = "User Event"
    console_item = "User Event"
    console_order = 10
    land_on_change_page_after_add = True
    list_display = (
        "event_name",
        "model_shown",
        "trigger",
        "channel",
        "category_shown",
        "status",
        "config_id_short",
        "created_at",
    )
    list_filter = ("trigger", ("enabled", StatusFilter), "data_model", "category", "channel")
    search_fields = ("event_name", "config_id", "event_key")
    actions = ["enable_selected", "disable_selected"]
    change_form_template = "admin/journeys/journeyeventconfig/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[JourneyEventConfig]:
        return super().get_queryset(request).select_related("data_model", "organization")

    def get_fieldsets(self, request: HttpRequest, obj: JourneyEventConfig | None = None) -> list:
        head: tuple[str, ...] = ("data_model", "trigger")
        if obj is not None:
            head += ("config_id_shown", "event_key_shown")
        return [
            (
                None,
                {
                    "fields": (
                        *head,
                        "event_name",
                        "event_time",
                        "channel",
                        "category",
                        "sub_category",
                    )
                },
            ),
            (
                "Filter",
                {
                    "fields": ("filters",),
                    "description": "Only records (after the write) that pass the filter "
                    "produce an event.",
                },
            ),
            (
                "Update Value",
                {
                    "fields": ("update_values",),
                    "description": "Values copied into each event, from a field of the "
                    "record or a constant.",
                },
            ),
            (None, {"fields": ("enabled",)}),
        ]

    def get_readonly_fields(
        self, request: HttpRequest, obj: JourneyEventConfig | None = None
    ) -> tuple:
        # The ID names the trigger, and clients hold both identifiers (journeys.services).
        if obj is None:
            return ()
        return ("data_model", "trigger", "config_id_shown", "event_key_shown")

    @admin.display(description="category", ordering="category")
    def category_shown(self, obj: JourneyEventConfig) -> str:
        return obj.category  # the wire value: the model's choice labels read "Useridentity"

    @admin.display(description="Model", ordering="data_model__name")
    def model_shown(self, obj: JourneyEventConfig) -> str:
        return obj.data_model.name

    @admin.display(description="Status", ordering="enabled")
    def status(self, obj: JourneyEventConfig) -> str:
        return "Enabled" if obj.enabled else "Disabled"

    @admin.display(description="ID (jeConfigId)", ordering="config_id")
    def config_id_short(self, obj: JourneyEventConfig) -> str:
        return short_id(obj.config_id, f"config-id-{obj.pk}", from_end=True)

    @admin.display(description="ID (jeConfigId)")
    def config_id_shown(self, obj: JourneyEventConfig) -> str:
        return copyable(obj.config_id, "je-config-id")

    @admin.display(description="Event Key (jeEventKey)")
    def event_key_shown(self, obj: JourneyEventConfig) -> str:
        return copyable(obj.event_key, "je-event-key")

    def _models_in_scope(self, request: HttpRequest) -> QuerySet[DataModel]:
        return (
            DataModel.objects.filter(organization__in=self.writable_organizations(request))
            .select_related("organization")
            .prefetch_related(
                Prefetch("field_definitions", queryset=FieldDefinition.objects.order_by("name"))
            )
        )

    def _posted_model(self, request: HttpRequest) -> DataModel | None:
        """The model chosen on an add form (posted, or preset by ?data_model=<id>)."""
        raw = request.POST.get("data_model") or request.GET.get("data_model") or ""
        if not raw.isdigit():
            return None
        return self._models_in_scope(request).filter(pk=raw).first()

    def get_form(
        self,
        request: HttpRequest,
        obj: JourneyEventConfig | None = None,
        change: bool = False,
        **kwargs: Any,
    ):
        form = super().get_form(request, obj, change, **kwargs)
        form.schema_model = obj.data_model if obj is not None else self._posted_model(request)
        return form

    def _preview(self, request: HttpRequest, obj: JourneyEventConfig | None) -> HttpResponse | None:
        """ "Preview on real records": the posted form's settings on the model's records,
        saved or not; None when the form does not validate (it is shown with its errors,
        and nothing is saved)."""
        allowed = (
            self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        )
        if not allowed:
            raise PermissionDenied
        form = self.get_form(request, obj, change=obj is not None)(request.POST, instance=obj)
        if not form.is_valid():
            return None
        data_model = obj.data_model if obj is not None else form.cleaned_data["data_model"]
        trigger = obj.trigger if obj is not None else form.cleaned_data["trigger"]
        settings = form.user_event_settings()
        raw_limit = request.POST.get("_preview_limit", "")
        preview = user_event_preview(
            organization=data_model.organization,
            data_model=data_model,
            trigger=trigger,
            settings=settings,
            limit=int(raw_limit) if raw_limit.isdigit() else PREVIEW_DEFAULT,
        )
        for record in preview.records:
            record.event_json = json.dumps(record.event, indent=2) if record.event else ""
        saved = obj is not None and not form.has_changed()
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "title": "Preview",
            "preview": preview,
            "data_model": data_model,
            "trigger": trigger,
            "event_name": settings.event_name,
            "saved": saved,
            "limit_max": PREVIEW_MAX,
        }
        return TemplateResponse(request, "admin/journeys/journeyeventconfig/preview.html", context)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST" and "_preview" in request.POST:
            response = self._preview(request, None)
            if response is not None:
                return response
        preset = request.GET.get("data_model")
        preset_model = self._posted_model(request) if preset else None
        if preset and preset_model is None:
            raise Http404("No such model in the organizations you may change.")
        models = list(self._models_in_scope(request))
        context = {
            "user_event_schema": row_editor_schema(models),
            "breadcrumb_model": preset_model,
            **(extra_context or {}),
        }
        return super().add_view(request, form_url, context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        config = cast(JourneyEventConfig, self.get_object(request, unquote(object_id)))
        if request.method == "POST" and "_preview" in request.POST:
            response = self._preview(request, config)
            if response is not None:
                return response
        data_model = (
            DataModel.objects.filter(pk=config.data_model_id)
            .select_related("organization")
            .prefetch_related(
                Prefetch("field_definitions", queryset=FieldDefinition.objects.order_by("name"))
            )
            .get()
        )
        schema = data_model.schema(list(data_model.field_definitions.all()))
        sample = payload_sample(
            data_model=data_model,
            schema=schema,
            config_id=config.config_id,
            event_key=config.event_key,
        )
        context = {
            "user_event_schema": row_editor_schema([data_model], trigger=config.trigger),
            "breadcrumb_model": data_model,
            "sample_payload": json.dumps(sample, indent=2),
            "can_backfill": config.trigger == Trigger.CREATED
            and role_allows(request, config.organization_id, MANAGE_ROLES),
            "last_backfill": _last_backfill(config),
            "backfill_progress": cache.get(backfill_progress_key(config)),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def save_model(
        self, request: HttpRequest, obj: JourneyEventConfig, form: Any, change: bool
    ) -> None:
        settings = form.user_event_settings()
        with service_errors():
            if change:
                saved, _changed = journey_event_config_update(
                    organization=obj.organization, config=fresh(obj), settings=settings
                )
            else:
                data_model = form.cleaned_data["data_model"]
                user = request.user
                assert user.is_authenticated  # the Console's pages are behind its sign-in
                saved = journey_event_config_create(
                    organization=data_model.organization,
                    data_model=data_model,
                    trigger=form.cleaned_data["trigger"],
                    settings=settings,
                    created_by=user,
                )
        adopt(obj, saved)

    def _set_enabled(
        self, request: HttpRequest, queryset: QuerySet[JourneyEventConfig], enabled: bool
    ) -> None:
        count = 0
        for config in queryset.select_related("organization"):
            if role_allows(request, config.organization_id, EDIT_ROLES):
                journey_event_config_set_enabled(
                    organization=config.organization, config=config, enabled=enabled
                )
                count += 1
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {count} User Event(s).")

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A User Event is never deleted (docs/decisions.md): clients hold its identifiers,
        and its events name it. The delete page, GET or POST, says so and how to stop it
        instead, and deletes nothing (403, as the permission says). Another tenant's id is
        404, as on every page."""
        config = cast(JourneyEventConfig, self.get_object(request, unquote(object_id)))
        admin_name = self.admin_site.name
        change_url = reverse(f"{admin_name}:journeys_journeyeventconfig_change", args=[config.pk])
        list_url = reverse(f"{admin_name}:journeys_journeyeventconfig_changelist")
        events_url = reverse(f"{admin_name}:journeys_userevent_changelist") + f"?config={config.pk}"
        paragraphs: list[str] = [
            format_html(
                "A User Event cannot be deleted: clients name it by its jeConfigId "
                "<code>{}</code> or its jeEventKey <code>{}</code>, and the "
                '<a href="{}">events it generated</a> name it too.',
                config.config_id,
                config.event_key,
                events_url,
            )
        ]
        if config.enabled:
            paragraphs.append(
                format_html(
                    "To stop it, disable it instead: uncheck <strong>Enable</strong> on "
                    '<a href="{}">its page</a> and save, or select it in '
                    '<a href="{}">the list of User Events</a> and run “Disable selected User '
                    "Events”. A disabled User Event generates no event, requests that name it "
                    "are refused (JOURNEY_EVENT_DISABLED), and its events are kept.",
                    change_url,
                    list_url,
                )
            )
        else:
            paragraphs.append(
                format_html(
                    "It is already disabled: it generates no event, and requests that name it "
                    'are refused (JOURNEY_EVENT_DISABLED). <a href="{}">Back to its page</a>.',
                    change_url,
                )
            )
        if not self.has_change_permission(request, config):
            paragraphs.append("An editor, admin or owner of its organization can disable it.")
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "object": config,
            "title": f"Cannot delete User Event “{config}”",
            "content": format_html(
                '<div class="delete-refused">{}</div>',
                format_html_join("", "<p>{}</p>", ((p,) for p in paragraphs)),
            ),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/base_site.html", context, status=403)

    @admin.action(description="Enable selected User Events", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected User Events", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_enabled(request, queryset, False)
