"""The Update Values of a User Event: assignments into the generated event.

Config shape: a list of ``{"target": ..., "field": "<record field>"}`` or
``{"target": ..., "value": <constant>}``. Targets and the event attribute each one sets:

==============================  ====================  =============================
target                          attribute             type
==============================  ====================  =============================
value                           value                 number (float)
customerId, email, phone, note  customer_id, ...      text
eventLabels, eventLabel2s,      event_labels, ...     list of text
eventLabel3s
properties.<name>               properties[<name>]    any JSON, kept as is
==============================  ====================  =============================

Coercions (docs/decisions-rule-engine.md): number from an int, a float or a numeric string;
text from a string, a number or a boolean; a list from a list or a single scalar (wrapped).
A source field that is empty (missing, None, "" or []) sets nothing, silently; a value that
does not coerce sets nothing and yields a warning. A `Changed` User Event's source may be
`previous.<field>`: the field's value before the write (`change_aware`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdp.schema import FieldType, ModelSchema
from journeys.coercion import (
    CoercionError,
    to_number,
    to_text,
    to_text_list,
    value_shown,
)
from journeys.filters import CHANGED_ONLY, PREVIOUS_PREFIX

UpdateValuesApplier = Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[str]]]

PROPERTIES_PREFIX = "properties."
PROPERTIES_ATTRIBUTE = "properties"
_PROPERTY_NAME = re.compile(r"[A-Za-z0-9_]+")
_ITEM_KEYS = ("target", "field", "value")


def _to_event_number(value: Any) -> float:
    return float(to_number(value))


def _to_labels(value: Any) -> list[str]:
    if isinstance(value, list):
        return to_text_list(value)
    try:
        return [to_text(value)]
    except CoercionError:
        raise CoercionError("text or a list of text", value) from None


def _as_is(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _Kind:
    description: str
    coerce: Callable[[Any], Any]
    # Field types whose values can coerce; others are refused when validating, since
    # every record would then only produce a warning.
    source_types: frozenset[FieldType]


_SCALAR_TYPES = frozenset(
    {FieldType.TEXT, FieldType.INTEGER, FieldType.NUMBER, FieldType.BOOLEAN, FieldType.TIMESTAMP}
)
_NUMBER = _Kind(
    "a number",
    _to_event_number,
    frozenset({FieldType.INTEGER, FieldType.NUMBER, FieldType.TEXT, FieldType.TIMESTAMP}),
)
_TEXT = _Kind("text", to_text, _SCALAR_TYPES)
_LIST = _Kind("a list of text", _to_labels, _SCALAR_TYPES | {FieldType.LIST})
_JSON = _Kind("any JSON value", _as_is, frozenset(FieldType))

# target → (event attribute, kind)
TARGETS: dict[str, tuple[str, _Kind]] = {
    "value": ("value", _NUMBER),
    "customerId": ("customer_id", _TEXT),
    "email": ("email", _TEXT),
    "phone": ("phone", _TEXT),
    "note": ("note", _TEXT),
    "eventLabels": ("event_labels", _LIST),
    "eventLabel2s": ("event_label2s", _LIST),
    "eventLabel3s": ("event_label3s", _LIST),
}
_TARGETS_HELP = ", ".join([*TARGETS, "properties.<name>"])


@dataclass(frozen=True)
class _Step:
    target: str
    # The event attribute, or the key inside `properties` for a properties.<name> target.
    attribute: str
    is_property: bool
    kind: _Kind
    field: str | None
    constant: Any


def update_values_validate(
    update_values: Any, schema: ModelSchema, *, path: str, change_aware: bool = False
) -> list[str]:
    """Every problem of an update-values list against `schema`, each message starting with
    its JSON path under `path` (e.g. "updateValues[0].target: ..."). Empty when valid.

    None and [] are valid (the event gets only its configured attributes). `change_aware`
    (a `Changed` User Event) allows `previous.<field>` sources.
    """
    _, errors = _parse(update_values, schema, path, change_aware)
    return errors


def update_values_read_previous(update_values: Any) -> bool:
    """Whether a (valid) list takes a value from the record as it was before the write."""
    return any(
        isinstance(item, Mapping) and str(item.get("field", "")).startswith(PREVIOUS_PREFIX)
        for item in update_values or []
    )


def update_values_compile(update_values: Any, schema: ModelSchema) -> UpdateValuesApplier:
    """A function `record -> (attributes, warnings)` for a list `update_values_validate`
    accepts.

    `attributes` holds only the targets that got a value, under the keys value,
    customer_id, email, phone, note, event_labels, event_label2s, event_label3s and
    properties (one dict merged from every properties.<name> target); it is a new dict on
    every call, safe to mutate. `warnings` names each value that did not coerce, and the
    record by its key field. Constants are coerced here, once. Raises ValueError, listing
    the errors, for an invalid list.
    """
    steps, errors = _parse(update_values, schema, "updateValues", change_aware=True)
    if errors:
        raise ValueError("invalid update values: " + "; ".join(errors))
    key_field = schema.key_field

    def apply(record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        attributes: dict[str, Any] = {}
        warnings: list[str] = []
        for step in steps:
            if step.field is None:
                # A fresh copy per event, so that one event's attributes never alias another's.
                result = step.constant
                if step.kind is _LIST:
                    result = list(result)
                elif isinstance(result, list | dict):
                    result = copy.deepcopy(result)
            else:
                raw = record.get(step.field)
                if raw is None or raw == "" or raw == []:
                    continue
                try:
                    result = step.kind.coerce(raw)
                except CoercionError as error:
                    key = record.get(key_field)
                    where = step.field if key is None else f"{step.field} on {key}"
                    warnings.append(
                        f"{step.target} not set: {where} is {value_shown(raw)}, "
                        f"not {error.expected}"
                    )
                    continue
            if step.is_property:
                attributes.setdefault(PROPERTIES_ATTRIBUTE, {})[step.attribute] = result
            else:
                attributes[step.attribute] = result
        return attributes, warnings

    return apply


def _parse(
    update_values: Any, schema: ModelSchema, path: str, change_aware: bool = False
) -> tuple[list[_Step], list[str]]:
    if update_values is None:
        return [], []
    if not isinstance(update_values, list):
        return [], [f"{path}: expected a list of {{target, field or value}} objects"]
    steps: list[_Step] = []
    errors: list[str] = []
    set_by: dict[str, str] = {}
    for index, item in enumerate(update_values):
        item_path = f"{path}[{index}]"
        step = _parse_item(item, schema, item_path, errors, change_aware)
        if step is None:
            continue
        if step.target in set_by:
            # Two assignments to one target would make the result depend on list order.
            errors.append(
                f"{item_path}.target: {step.target!r} is already set by {set_by[step.target]}"
            )
            continue
        set_by[step.target] = item_path
        steps.append(step)
    return steps, errors


def _parse_item(
    item: Any, schema: ModelSchema, path: str, errors: list[str], change_aware: bool
) -> _Step | None:
    if not isinstance(item, Mapping):
        errors.append(f"{path}: expected an object with target and field or value")
        return None
    errors_before = len(errors)
    errors.extend(
        f"{path}: unknown key {key!r} (use target, field, value)"
        for key in item
        if key not in _ITEM_KEYS
    )

    target = item.get("target")
    resolved = _target_resolve(target, f"{path}.target", errors)

    has_field, has_value = "field" in item, "value" in item
    if has_field == has_value:
        which = "not both" if has_field else "one is required"
        errors.append(f"{path}: give either field (a record field) or value (a constant), {which}")
        return None
    if resolved is None:
        return None
    assert isinstance(target, str)  # _target_resolve resolves nothing else
    attribute, is_property, kind = resolved

    if has_field:
        name = item["field"]
        previous = isinstance(name, str) and name.startswith(PREVIOUS_PREFIX)
        if not isinstance(name, str) or not name:
            errors.append(f"{path}.field: expected the name of a field of the model")
        elif (field := schema.field(name.removeprefix(PREVIOUS_PREFIX))) is None:
            errors.append(f"{path}.field: unknown field {name!r}")
        elif previous and not change_aware:
            errors.append(f"{path}.field: {name}: previous.<field> {CHANGED_ONLY}")
        elif field.type not in kind.source_types:
            errors.append(
                f"{path}.field: {name} is a field of type {field.type}; "
                f"{target} takes {kind.description}"
            )
        if len(errors) > errors_before:
            return None
        return _Step(target, attribute, is_property, kind, name, None)

    try:
        constant = kind.coerce(item["value"])
    except CoercionError as error:
        errors.append(f"{path}.value: {error}")
        return None
    if len(errors) > errors_before:
        return None
    return _Step(target, attribute, is_property, kind, None, constant)


def _target_resolve(target: Any, path: str, errors: list[str]) -> tuple[str, bool, _Kind] | None:
    """(attribute, is_property, kind) for a target, or None after appending an error."""
    if target is None:
        errors.append(f"{path}: required (use {_TARGETS_HELP})")
        return None
    if isinstance(target, str):
        if target in TARGETS:
            attribute, kind = TARGETS[target]
            return attribute, False, kind
        if target.startswith(PROPERTIES_PREFIX):
            name = target.removeprefix(PROPERTIES_PREFIX)
            if _PROPERTY_NAME.fullmatch(name):
                return name, True, _JSON
            errors.append(
                f"{path}: property name {name!r} must be letters, digits or _ "
                f"(e.g. properties.tier)"
            )
            return None
    errors.append(f"{path}: unknown target {value_shown(target)} (use {_TARGETS_HELP})")
    return None
