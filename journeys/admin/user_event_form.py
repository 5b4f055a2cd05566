"""The User Event form: its fields and the row editors' data (the model's fields, the
operators of each type in words, the update-value targets), and the services' errors
worded for the row they concern (`row_error_words`). Its values become a
`UserEventSettings` for journeys.services."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from cdp.console import (
    service_errors_apply,
)
from cdp.models import DataModel
from cdp.schema import CATEGORIES, CHANNELS
from journeys.filters import (
    CHANGE_OPERATORS,
    CHANGED_ONLY,
    LIST_VALUE_OPERATORS,
    OPERATOR_WORDS,
    OPERATORS,
    OPERATORS_BY_TYPE,
    PREVIOUS_PREFIX,
    VALUELESS_OPERATORS,
)
from journeys.models import (
    EVENT_TIME_INGESTED,
    JourneyEventConfig,
    Trigger,
)
from journeys.services import (
    config_settings_validate,
    model_schema,
)
from journeys.update_values import PROPERTIES_PREFIX, TARGETS
from journeys.user_event_settings import WIRE_NAMES, UserEventSettings
from journeys.widgets import RowEditorWidget

EVENT_TIME_INGESTED_LABEL = "When the record is written (ingested)"


def _operator(code: str) -> str:
    return OPERATOR_WORDS.get(code, code)


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


def row_editor_schema(
    data_models: list[DataModel], *, trigger: str | None = None
) -> dict[str, Any]:
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
        "operatorLabels": OPERATOR_WORDS,
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
