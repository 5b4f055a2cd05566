"""Console pages for User Events and the events they produce.

A User Event is created through `journey_event_config_create` and changed through
`journey_event_config_update`; those services validate every setting, and their errors,
each named by its path (`filter.conditions[1].value`), are shown on the form's fields and,
by the row editors (`journeys.widgets.RowEditorWidget`), on the row they concern.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from cdp.console import (
    EDIT_ROLES,
    MANAGE_ROLES,
    READ_ONLY,
    ConsoleModelAdmin,
    LargeListAdmin,
    ValueFilter,
    adopt,
    console_site,
    copyable,
    fresh,
    role_allows,
    service_errors,
    service_errors_apply,
    visible_organization_ids,
)
from cdp.console_columns import ID_SHOWN, CsvExportAdmin
from cdp.models import DataModel, FieldDefinition
from cdp.samples import payload_sample
from cdp.schema import CATEGORIES, CHANNELS
from journeys.filters import (
    CHANGE_OPERATORS,
    CHANGED_ONLY,
    LIST_VALUE_OPERATORS,
    OPERATORS,
    OPERATORS_BY_TYPE,
    PREVIOUS_PREFIX,
    VALUELESS_OPERATORS,
)
from journeys.models import (
    EVENT_TIME_INGESTED,
    JourneyEventConfig,
    Trigger,
    UserEvent,
    backfill_progress_key,
)
from journeys.preview import PREVIEW_DEFAULT, PREVIEW_MAX, user_event_preview
from journeys.services import (
    config_settings_validate,
    journey_event_config_create,
    journey_event_config_set_enabled,
    journey_event_config_update,
    model_schema,
)
from journeys.update_values import PROPERTIES_PREFIX, TARGETS
from journeys.user_event_settings import WIRE_NAMES, UserEventSettings
from journeys.widgets import RowEditorWidget

EVENT_TIME_INGESTED_LABEL = "When the record is written (ingested)"
# The operators' words wherever the Console shows an operator (the row editor's select, its
# errors); the filters, the wire and provisioning keep the codes.
OPERATOR_LABELS = {
    "eq": "equals",
    "neq": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "is one of",
    "not_in": "is not one of",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "changed": "changed",
    "not_changed": "did not change",
}


def _operator(code: str) -> str:
    return OPERATOR_LABELS.get(code, code)


def _a(type_: str) -> str:
    return f"{'an' if type_[0] in 'aeiou' else 'a'} {type_}"


def _operators(codes: str) -> str:
    return ", ".join(_operator(code) for code in codes.split(", "))


# The services' messages about a row, as the row editor words them: (the end of the path,
# the message after it, the words). The services keep their messages, which provisioning
# and the API show and their tests assert; these are only the Console's reading of them.
_ROW_ERROR_WORDS: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        ".field",
        re.compile(r"required, the name of a field of the model"),
        lambda m: "Choose a field",
    ),
    (
        ".field",
        re.compile(r"expected the name of a field of the model"),
        lambda m: "Choose a source field",
    ),
    (
        ".field",
        re.compile(r"unknown field '(?P<name>.*)'"),
        lambda m: f"{m['name']} is not a field of this model",
    ),
    (
        ".field",
        re.compile(rf"\S+: previous\.<field> {re.escape(CHANGED_ONLY)}"),
        lambda m: f"A value before this write {CHANGED_ONLY}",
    ),
    (
        ".field",
        re.compile(
            r"(?P<name>\S+) is a field of type (?P<type>\w+); (?P<target>\S+) takes (?P<kind>.+)"
        ),
        lambda m: f"{m['target']} takes {m['kind']}; {m['name']} is {_a(m['type'])} field",
    ),
    (".operator", re.compile(r"required \(use .*\)"), lambda m: "Choose an operator"),
    (
        ".operator",
        re.compile(r"unknown operator (?P<code>.+) \(use .*\)"),
        lambda m: f"{m['code']} is not an operator",
    ),
    (
        ".operator",
        re.compile(rf"'(?P<code>\w+)' {re.escape(CHANGED_ONLY)}"),
        lambda m: f"“{_operator(m['code'])}” {CHANGED_ONLY}",
    ),
    (
        ".operator",
        re.compile(r"'(?P<code>\w+)' applies to a field, not to its previous value \(use \S+\)"),
        lambda m: (
            f"“{_operator(m['code'])}” applies to the field itself, not to its value "
            "before this write"
        ),
    ),
    (
        ".operator",
        re.compile(
            r"'(?P<code>\w+)' does not apply to (?P<type>\w+) field (?P<field>\S+) "
            r"\(use (?P<allowed>.*)\)"
        ),
        lambda m: (
            f"“{_operator(m['code'])}” does not apply to {m['field']}, {_a(m['type'])} "
            f"field (use {_operators(m['allowed'])})"
        ),
    ),
    (
        ".value",
        re.compile(r"required for operator '(?P<code>\w+)'"),
        lambda m: f"Value is needed for {_operator(m['code'])}",
    ),
    (
        ".value",
        re.compile(r"expected a non-empty list for operator '(?P<code>\w+)', got .*"),
        lambda m: f"Values, separated by commas, are needed for {_operator(m['code'])}",
    ),
    (
        ".value",
        re.compile(r"expected a list of text for operator '(?P<code>\w+)' on a list field, got .*"),
        lambda m: (
            f"The list's values, separated by commas, are needed for "
            f"{_operator(m['code'])} (to test one element, use contains)"
        ),
    ),
    (".target", re.compile(r"required \(use .*\)"), lambda m: "Choose a target"),
    (
        ".target",
        re.compile(r"unknown target (?P<target>.+) \(use .*\)"),
        lambda m: f"{m['target']} is not a target",
    ),
    (
        ".target",
        re.compile(r"'(?P<target>[^']+)' is already set by updateValues\[(?P<index>\d+)\]"),
        lambda m: f"{m['target']} is already set by update value {int(m['index']) + 1}",
    ),
]


def row_error_words(path: str, message: str) -> str:
    """A service's message about a User Event setting (`path`, e.g.
    `filter.conditions[0].value`, and the message after it) in the Console's words: "Value
    is needed for ≥". A message not worded here is shown as the service says it."""
    for tail, pattern, words in _ROW_ERROR_WORDS:
        if path.endswith(tail):
            match = pattern.fullmatch(message)
            if match:
                return words(match)
    return message


class UserEventForm(forms.ModelForm):
    """The User Event form. Its fields are the model's, and its values the services'
    settings (`user_event_settings`)."""

    # The services name a setting's problem by its wire path (`filter.conditions[1].value`);
    # each settings field is named as the model's attribute.
    service_error_fields = {
        "model": "data_model",
        "trigger": "trigger",
        **{wire: attribute for attribute, wire in WIRE_NAMES.items()},
    }
    # The model whose schema sets the Event Time choices (set by the admin per request).
    schema_model: DataModel | None = None

    event_time = forms.CharField(label="Event Time", widget=forms.Select)
    # The wire values, as PangoCDP's Console shows them.
    channel = forms.ChoiceField(label="Channel", choices=[(c, c) for c in CHANNELS], initial="None")
    category = forms.ChoiceField(
        label="Category", choices=[("", "---------"), *((c, c) for c in CATEGORIES)]
    )
    filters = forms.JSONField(
        label="Filter",
        required=False,
        widget=RowEditorWidget("filter", error_words=row_error_words),
    )
    update_values = forms.JSONField(
        label="Update Value",
        required=False,
        widget=RowEditorWidget("update", error_words=row_error_words),
    )

    class Meta:
        model = JourneyEventConfig
        fields = [
            "data_model",
            "trigger",
            "event_name",
            "event_time",
            "channel",
            "category",
            "sub_category",
            "filters",
            "update_values",
            "enabled",
        ]
        labels = {
            "data_model": "Model",
            "trigger": "Trigger when",
            "event_name": "Event Name",
            "channel": "Channel",
            "category": "Category",
            "sub_category": "Sub Category",
            "enabled": "Enable",
        }
        help_texts = {
            "trigger": "Created: the entry created a record. Changed: it changed a stored one.",
            "event_name": "e.g. create_order",
            "sub_category": "eventCtg2 of the events.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "event_time" in self.fields:
            choices = [(EVENT_TIME_INGESTED, EVENT_TIME_INGESTED_LABEL)]
            if self.schema_model is not None:
                schema = model_schema(
                    organization=self.schema_model.organization, data_model=self.schema_model
                )
                choices += [(name, name) for name in schema.timestamp_fields()]
            current = self["event_time"].value()
            if current and current not in dict(choices):
                choices.append((current, current))  # kept, so the service can name it
            self.fields["event_time"].widget.choices = choices
            self.fields["event_time"].initial = EVENT_TIME_INGESTED

    def clean(self) -> dict[str, Any]:
        """Check the settings with the service's own validator even when a field is already
        refused, so that one round shows every problem, each row's included. The service
        checks them again when it writes."""
        cleaned = super().clean()
        assert cleaned is not None  # ModelForm.clean returns cleaned_data
        data_model = cleaned.get("data_model") or (
            self.instance.data_model if self.instance.data_model_id else None
        )
        if data_model is not None:
            schema = model_schema(organization=data_model.organization, data_model=data_model)
            trigger = cleaned.get("trigger") or self.instance.trigger
            problems = config_settings_validate(self.user_event_settings(), schema, trigger=trigger)
            if problems:
                service_errors_apply(self, ValidationError(problems), skip_fields_with_errors=True)
        return cleaned

    def user_event_settings(self) -> UserEventSettings:
        """The form's values as the services' settings. A field the form refused is absent
        from `cleaned_data` and sent empty."""
        data = self.cleaned_data
        filters, update_values = data.get("filters"), data.get("update_values")
        return UserEventSettings(
            event_name=data.get("event_name", ""),
            event_time=data.get("event_time", EVENT_TIME_INGESTED),
            channel=data.get("channel", ""),
            category=data.get("category", ""),
            sub_category=data.get("sub_category", ""),
            filters=filters if filters is not None else {},
            update_values=update_values if update_values is not None else [],
            enabled=data.get("enabled", True),
        )


def _schema_json(data_models: list[DataModel], *, trigger: str | None = None) -> dict[str, Any]:
    """What console/user_event_form.js needs to build its selects: each model's fields,
    the operators of each field type and the update-value targets.

    Change-aware rows: for a trigger in `changeAwareTriggers` the editors also offer each
    field's value before the write (`previousPrefix` + name) and the `changeOperators`
    (on a field itself, never on its previous value); `operatorsByType` lists those
    operators for every type, the editor drops them elsewhere. `trigger` is the fixed
    trigger of a change form (an add form's is its #id_trigger select)."""
    models = {}
    for data_model in data_models:
        schema = data_model.schema(list(data_model.field_definitions.all()))
        models[str(data_model.pk)] = {
            "name": str(data_model),
            "fields": [
                {"name": f.name, "type": f.type.value, "label": f.label, "custom": f.custom}
                for f in schema.fields.values()
            ],
            "timestampFields": schema.timestamp_fields(),
        }
    return {
        "models": models,
        "operatorsByType": {t.value: list(ops) for t, ops in OPERATORS_BY_TYPE.items()},
        "operatorLabels": OPERATOR_LABELS,
        "valuelessOperators": sorted(VALUELESS_OPERATORS),
        "listValueOperators": sorted(LIST_VALUE_OPERATORS),
        "changeOperators": [op for op in OPERATORS if op in CHANGE_OPERATORS],
        "changeAwareTriggers": [Trigger.CHANGED.value],
        "previousPrefix": PREVIOUS_PREFIX,
        "trigger": trigger,
        "targets": {
            target: {"kind": kind.description, "sourceTypes": sorted(kind.source_types)}
            for target, (_attribute, kind) in TARGETS.items()
        },
        "propertiesPrefix": PROPERTIES_PREFIX,
        "eventTimeIngested": EVENT_TIME_INGESTED,
        "eventTimeIngestedLabel": EVENT_TIME_INGESTED_LABEL,
    }


# The background task a backfill runs as (the ingestion app's, queued by its Console page):
# its latest run for a User Event, shown on the User Event's page.
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
        "data_model",
        "trigger",
        "channel",
        "category_shown",
        "enabled",
        "config_id",
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
            "user_event_schema": _schema_json(models),
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
            "user_event_schema": _schema_json([data_model], trigger=config.trigger),
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


# --- the events -------------------------------------------------------------------------


class EventNameFilter(ValueFilter):
    """Event names of the organization's User Events (ingested events carry any name: the
    `eventName` query parameter filters on any)."""

    title = "event name"
    parameter_name = field_name = "event_name"

    def choice_values(self, request: HttpRequest) -> list[str]:
        configs = JourneyEventConfig.objects.all()
        if (ids := visible_organization_ids(request)) is not None:
            configs = configs.filter(organization__in=ids)
        return list(configs.values_list("event_name", flat=True))


class EventSourceFilter(ValueFilter):
    """The organization's models, as events name their source (momCode or object type)."""

    title = "source"
    parameter_name = field_name = "source"

    def choice_values(self, request: HttpRequest) -> list[str]:
        models = DataModel.objects.all()
        if (ids := visible_organization_ids(request)) is not None:
            models = models.filter(organization__in=ids)
        return [m.source_name for m in models.only("kind", "object_type", "mom_code")]


class UserEventConfigFilter(admin.SimpleListFilter):
    """The organization's User Events (a related-only filter would look for them in every
    event)."""

    title = "User Event"
    parameter_name = "config"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        configs = JourneyEventConfig.objects.all()
        if (ids := visible_organization_ids(request)) is not None:
            configs = configs.filter(organization__in=ids)
        return [
            (str(pk), f"{name} ({config_id})")
            for pk, name, config_id in configs.order_by("event_name").values_list(
                "pk", "event_name", "config_id"
            )
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(config_id=value) if value and value.isdigit() else queryset


class ChannelFilter(ValueFilter):
    title = "channel"
    parameter_name = field_name = "channel"

    def choice_values(self, request: HttpRequest) -> list[str]:
        return list(CHANNELS)


@admin.register(UserEvent, site=console_site)
class UserEventAdmin(CsvExportAdmin, LargeListAdmin, ConsoleModelAdmin):
    """Read-only browser of the user events: generated by User Events or ingested; "Export
    CSV" streams the filtered events with their full ids (cdp/console_columns.py)."""

    console_section = "Event log"
    console_item = "Event"
    console_order = 20
    write_roles = READ_ONLY
    superuser_writes = False
    list_display = (
        "event_name",
        "source",
        "source_id",
        "condition",
        "event_at",
        "channel",
        "category",
        "customer_id",
        "value",
        "config_short",
    )
    csv_columns = (
        ("eventId", lambda e: e.event_id),
        ("eventName", lambda e: e.event_name),
        ("source", lambda e: e.source),
        ("sourceId", lambda e: e.source_id),
        ("condition", lambda e: e.condition),
        ("eventAt", lambda e: e.event_at),
        ("channel", lambda e: e.channel),
        ("category", lambda e: e.event_ctg),
        ("subCategory", lambda e: e.event_ctg2),
        ("customerId", lambda e: e.customer_id),
        ("email", lambda e: e.email),
        ("phone", lambda e: e.phone),
        ("value", lambda e: e.value),
        ("jeConfigId", lambda e: e.config.config_id if e.config else ""),
        ("requestId", lambda e: e.request_id),
    )
    list_filter = (
        "event_at",
        "condition",
        ChannelFilter,
        EventNameFilter,
        EventSourceFilter,
        UserEventConfigFilter,
    )
    date_hierarchy = "event_at"
    # Exact: the record's key, looked up in the index (a substring would scan the table).
    search_fields = ("source_id__exact",)
    search_help_text = "Search by sourceId (the record key)."
    readonly_fields = (
        "event_id",
        "config_link",
        "source",
        "source_id",
        "condition",
        "channel",
        "category",
        "sub_category",
        "sub_category_3",
        "event_name",
        "event_at",
        "value",
        "labels",
        "labels_2",
        "labels_3",
        "customer_id",
        "email",
        "phone",
        "note",
        "properties",
        "request_id",
        "created_at",
        "organization",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserEvent]:
        return super().get_queryset(request).select_related("config")

    # The Console's words for the event's wire fields (eventCtg, eventLabel2s, …).

    @admin.display(description="Category", ordering="event_ctg")
    def category(self, obj: UserEvent) -> str:
        return obj.event_ctg

    @admin.display(description="Sub category")
    def sub_category(self, obj: UserEvent) -> str:
        return obj.event_ctg2

    @admin.display(description="Sub category 3")
    def sub_category_3(self, obj: UserEvent) -> str:
        return obj.event_ctg3

    @admin.display(description="Labels")
    def labels(self, obj: UserEvent) -> str:
        return ", ".join(map(str, obj.event_labels))

    @admin.display(description="Labels 2")
    def labels_2(self, obj: UserEvent) -> str:
        return ", ".join(map(str, obj.event_label2s))

    @admin.display(description="Labels 3")
    def labels_3(self, obj: UserEvent) -> str:
        return ", ".join(map(str, obj.event_label3s))

    @admin.display(description="User Event")
    def config_short(self, obj: UserEvent) -> str:
        """The User Event's jeConfigId, short, linked to its page (the whole in its title)."""
        if obj.config is None:
            return "— (ingested)" if obj.ingested else "— (deleted)"
        url = reverse(
            f"{self.admin_site.name}:journeys_journeyeventconfig_change", args=[obj.config_id]
        )
        config_id = obj.config.config_id
        return format_html(
            '<a href="{}" title="{} ({})"><code class="short-id">{}…</code></a>',
            url,
            obj.config.event_name,
            config_id,
            config_id[:ID_SHOWN],
        )

    @admin.display(description="User Event (jeConfigId)")
    def config_link(self, obj: UserEvent) -> str:
        if obj.config is None:
            # A generated event keeps `ingested` False when its User Event is deleted.
            return "— (ingested)" if obj.ingested else "— (its User Event was deleted)"
        url = reverse(
            f"{self.admin_site.name}:journeys_journeyeventconfig_change", args=[obj.config_id]
        )
        return format_html('<a href="{}">{}</a>', url, obj.config.config_id)
