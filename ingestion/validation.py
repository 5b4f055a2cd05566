"""Per-entry validation and coercion against the model's schema (DESIGN §6).

Each entry is checked on its own: a rejected entry never stops the others. The output
of a valid entry is a flat patch, field name → coerced value, where `None` means
"clear this field"; custom fields arrive grouped or flat and leave flat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdp.coercion import CoercionError, coerce, to_integer, to_text
from cdp.schema import (
    CUSTOM_FIELD_GROUPS,
    CUSTOM_MODEL_OBJECT_TYPE,
    Field,
    FieldType,
    custom_field_pattern,
)
from cdp.selectors import LoadedModel

MAX_KEY_LENGTH = 255
TIMEZONE_FIELD = "timezoneGmt"
MOM_CODE_FIELD = "momCode"


@dataclass(frozen=True)
class ValidEntry:
    index: int
    key: str
    model: LoadedModel
    patch: dict[str, Any]


@dataclass(frozen=True)
class RejectedEntry:
    index: int
    key: str | None
    message: str


class EntryRejected(Exception):
    pass


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _timezone_hours(entry: Mapping[str, Any]) -> int:
    raw = entry.get(TIMEZONE_FIELD)
    if raw is None:
        return 0
    try:
        hours = to_integer(raw)
    except CoercionError:
        raise EntryRejected(f"Invalid value of {TIMEZONE_FIELD}: must be an integer") from None
    if not -12 <= hours <= 14:
        raise EntryRejected(f"Invalid value of {TIMEZONE_FIELD}: must be between -12 and 14")
    return hours


def _flat_items(entry: Mapping[str, Any], model: LoadedModel) -> list[tuple[str, Field, Any]]:
    """(wire name, field, raw value) for every known field; rejects unknown non-null ones."""
    schema = model.schema
    items: list[tuple[str, Field, Any]] = []
    for name, value in entry.items():
        if name in CUSTOM_FIELD_GROUPS:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise EntryRejected(f"Invalid value of {name}: must be an object")
            group_type = CUSTOM_FIELD_GROUPS[name]
            for inner, inner_value in value.items():
                wire_name = f"{name}.{inner}"
                field = schema.fields.get(inner)
                if field is None or not field.custom:
                    if inner_value is None:
                        continue
                    raise EntryRejected(f"Unknown field: {wire_name}")
                if field.type != group_type:
                    pattern = custom_field_pattern(inner)
                    group = pattern.group if pattern else "?"
                    raise EntryRejected(f"Invalid field: {inner} belongs in {group}, not {name}")
                items.append((wire_name, field, inner_value))
            continue
        field = schema.fields.get(name)
        if field is None:
            if value is None:
                continue
            raise EntryRejected(f"Unknown field: {name}")
        if field.name == MOM_CODE_FIELD:
            continue
        items.append((name, field, value))
    return items


def _object_list(model: LoadedModel, field: Field, value: Any, tz_hours: int) -> list[dict]:
    item_fields = {f.name: f for f in model.schema.spec.item_fields.get(field.name, ())}
    if not isinstance(value, list) or not all(isinstance(i, Mapping) for i in value):
        raise EntryRejected(f"Invalid value of {field.name}: must be a list of objects")
    items = []
    for position, raw_item in enumerate(value):
        item: dict[str, Any] = {}
        for name, raw in raw_item.items():
            sub = item_fields.get(name)
            if sub is None:
                if raw is None:
                    continue
                raise EntryRejected(f"Unknown field: {field.name}[{position}].{name}")
            if raw is None:
                continue  # a null sub-field is an absent one: items are replaced whole
            try:
                item[name] = coerce(sub, raw, tz_hours=tz_hours)
            except CoercionError as error:
                raise EntryRejected(
                    f"Invalid value of {field.name}[{position}].{name}: {error}"
                ) from None
        for sub in item_fields.values():
            if sub.required and _is_empty(item.get(sub.name)):
                raise EntryRejected(f"Missing {field.name}[{position}].{sub.name}")
        items.append(item)
    return items


def _patch(entry: Mapping[str, Any], model: LoadedModel) -> dict[str, Any]:
    tz_hours = _timezone_hours(entry)
    patch: dict[str, Any] = {}
    for wire_name, field, raw in _flat_items(entry, model):
        if raw is None:
            patch[field.name] = None
        elif field.type == FieldType.OBJECT_LIST:
            patch[field.name] = _object_list(model, field, raw, tz_hours)
        else:
            try:
                patch[field.name] = coerce(field, raw, tz_hours=tz_hours)
            except CoercionError as error:
                raise EntryRejected(f"Invalid value of {wire_name}: {error}") from None
            if field.max_length is not None and len(patch[field.name]) > field.max_length:
                raise EntryRejected(
                    f"Invalid value of {wire_name}: longer than {field.max_length} characters"
                )
    return patch


def _check_required(patch: Mapping[str, Any], model: LoadedModel) -> None:
    schema = model.schema
    for field in schema.fields.values():
        if field.required and field.name != MOM_CODE_FIELD and _is_empty(patch.get(field.name)):
            raise EntryRejected(f"Missing {field.name}")
    for names in schema.spec.required_one_of:
        if all(_is_empty(patch.get(name)) for name in names):
            raise EntryRejected(f"Missing {' or '.join(names)}")


def _raw_key(entry: Any, key_field: str) -> str | None:
    if not isinstance(entry, Mapping):
        return None
    value = entry.get(key_field)
    try:
        return to_text(value).strip() if value is not None else None
    except CoercionError:
        return None


def entry_validate(
    entry: Any,
    *,
    index: int,
    object_type: str,
    system_model: LoadedModel | None,
    custom_models: Mapping[str, LoadedModel],
) -> ValidEntry | RejectedEntry:
    """Validate one entry; never raises for bad input, returns a RejectedEntry instead.

    For `custom-model` the entry's momCode picks the model among `custom_models` (the
    organization's, already loaded); otherwise `system_model` is the model.
    """
    key_field = system_model.schema.key_field if system_model else "refId"
    key = _raw_key(entry, key_field)
    try:
        if not isinstance(entry, Mapping):
            raise EntryRejected("Entry must be a JSON object")
        if object_type == CUSTOM_MODEL_OBJECT_TYPE:
            mom_code = entry.get(MOM_CODE_FIELD)
            if not isinstance(mom_code, str) or not mom_code.strip():
                raise EntryRejected(f"Missing {MOM_CODE_FIELD}")
            model = custom_models.get(mom_code.strip())
            if model is None:
                raise EntryRejected(f"Unknown {MOM_CODE_FIELD}: {mom_code}")
        else:
            assert system_model is not None
            model = system_model
        patch = _patch(entry, model)
        _check_required(patch, model)
        key = patch[model.schema.key_field].strip()
        if not key:
            raise EntryRejected(f"Missing {model.schema.key_field}")
        if len(key) > MAX_KEY_LENGTH:
            raise EntryRejected(
                f"Invalid value of {model.schema.key_field}: longer than {MAX_KEY_LENGTH}"
            )
        patch[model.schema.key_field] = key
    except EntryRejected as rejection:
        return RejectedEntry(index=index, key=key or None, message=str(rejection))
    return ValidEntry(index=index, key=key, model=model, patch=patch)
