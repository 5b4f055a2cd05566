"""Per-entry validation and coercion against the model's schema (DESIGN §6).

Each entry is checked on its own: a rejected entry never stops the others. The output
of a valid entry is a flat patch, field name → coerced value, where `None` means
"clear this field"; custom fields arrive grouped or flat and leave flat.

The checks of one model are compiled once per schema version (`entry_validator`, kept
with the loaded model): every field's coercer, its group and its limits are looked up
then, not per entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdp.coercion import COERCERS, CoercionError, to_integer, to_text
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


@dataclass(frozen=True, slots=True)
class ValidEntry:
    index: int
    key: str
    model: LoadedModel
    patch: dict[str, Any]


@dataclass(frozen=True, slots=True)
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


# A compiled field: (wire name, stored name, coercer). The coercer takes the raw value
# and the entry's timezone hours and raises EntryRejected with the message to answer.
Coercer = Callable[[Any, int], Any]
_Slot = tuple[str, str, Coercer]


def _coercer(wire_name: str, field: Field, model: LoadedModel) -> Coercer:
    if field.type == FieldType.OBJECT_LIST:
        return _object_list_coercer(field, model)
    coerce = COERCERS[field.type]
    choices, max_length = field.choices, field.max_length
    is_text = field.type == FieldType.TEXT

    def coerce_field(raw: Any, tz_hours: int) -> Any:
        # Most text arrives as text: no coercion call for it.
        if is_text and type(raw) is str:
            value = raw
        else:
            try:
                value = coerce(raw, tz_hours=tz_hours)
            except CoercionError as error:
                raise EntryRejected(f"Invalid value of {wire_name}: {error}") from None
        if choices is not None and value != "" and value not in choices:
            raise EntryRejected(
                f"Invalid value of {wire_name}: must be one of {', '.join(choices)}"
            )
        if max_length is not None and len(value) > max_length:
            raise EntryRejected(
                f"Invalid value of {wire_name}: longer than {max_length} characters"
            )
        return value

    return coerce_field


def _object_list_coercer(field: Field, model: LoadedModel) -> Coercer:
    item_fields = {f.name: f for f in model.schema.spec.item_fields.get(field.name, ())}
    required = [f.name for f in item_fields.values() if f.required]

    def coerce_items(value: Any, tz_hours: int) -> list[dict[str, Any]]:
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
                    coerced = COERCERS[sub.type](raw, tz_hours=tz_hours)
                    if sub.choices is not None and coerced != "" and coerced not in sub.choices:
                        raise CoercionError(f"must be one of {', '.join(sub.choices)}")
                except CoercionError as error:
                    raise EntryRejected(
                        f"Invalid value of {field.name}[{position}].{name}: {error}"
                    ) from None
                item[name] = coerced
            for name in required:
                if _is_empty(item.get(name)):
                    raise EntryRejected(f"Missing {field.name}[{position}].{name}")
            items.append(item)
        return items

    return coerce_items


@dataclass(frozen=True)
class EntryValidator:
    """One model's checks, compiled: `validate(entry, index)` for a JSON object."""

    model: LoadedModel
    key_field: str
    top: dict[str, _Slot | None]  # None: a field the entry may carry but that is not stored
    groups: dict[str, tuple[FieldType, dict[str, _Slot]]]
    required: tuple[str, ...]
    required_one_of: tuple[tuple[str, ...], ...]

    def _slots(self, entry: Mapping[str, Any]) -> list[tuple[_Slot, Any]]:
        """Every known field with its raw value; rejects the entry, before coercing
        anything, for an unknown non-null field or a custom field in the wrong group."""
        slots: list[tuple[_Slot, Any]] = []
        top, groups = self.top, self.groups
        for name, value in entry.items():
            if name in top:
                slot = top[name]
                if slot is not None:
                    slots.append((slot, value))
                continue
            group = groups.get(name)
            if group is None:
                if value is None:
                    continue
                raise EntryRejected(f"Unknown field: {name}")
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise EntryRejected(f"Invalid value of {name}: must be an object")
            group_type, inner_slots = group
            for inner, inner_value in value.items():
                slot = inner_slots.get(inner)
                if slot is None:
                    self._misplaced(name, inner, inner_value, group_type)
                    continue
                slots.append((slot, inner_value))
        return slots

    def _misplaced(self, group: str, inner: str, value: Any, group_type: FieldType) -> None:
        field = self.model.schema.fields.get(inner)
        if field is None or not field.custom:
            if value is None:
                return
            raise EntryRejected(f"Unknown field: {group}.{inner}")
        pattern = custom_field_pattern(inner)
        belongs = pattern.group if pattern else "?"
        raise EntryRejected(f"Invalid field: {inner} belongs in {belongs}, not {group}")

    def validate(self, entry: Mapping[str, Any], index: int) -> ValidEntry | RejectedEntry:
        key = _raw_key(entry, self.key_field)
        try:
            tz_hours = _timezone_hours(entry)
            patch: dict[str, Any] = {}
            for (_wire, name, coerce), raw in self._slots(entry):
                patch[name] = None if raw is None else coerce(raw, tz_hours)
            for name in self.required:
                if _is_empty(patch.get(name)):
                    raise EntryRejected(f"Missing {name}")
            for names in self.required_one_of:
                if all(_is_empty(patch.get(name)) for name in names):
                    raise EntryRejected(f"Missing {' or '.join(names)}")
            key = patch[self.key_field].strip()
            if not key:
                raise EntryRejected(f"Missing {self.key_field}")
            if len(key) > MAX_KEY_LENGTH:
                raise EntryRejected(
                    f"Invalid value of {self.key_field}: longer than {MAX_KEY_LENGTH}"
                )
            patch[self.key_field] = key
        except EntryRejected as rejection:
            return RejectedEntry(index=index, key=key or None, message=str(rejection))
        return ValidEntry(index=index, key=key, model=self.model, patch=patch)


def _validator_build(model: LoadedModel) -> EntryValidator:
    schema = model.schema
    top: dict[str, _Slot | None] = {}
    for name, field in schema.fields.items():
        top[name] = None if name == MOM_CODE_FIELD else (name, name, _coercer(name, field, model))
    groups: dict[str, tuple[FieldType, dict[str, _Slot]]] = {
        group: (group_type, {}) for group, group_type in CUSTOM_FIELD_GROUPS.items()
    }
    for field in schema.custom_fields:
        for group, (group_type, slots) in groups.items():
            if field.type == group_type:
                wire_name = f"{group}.{field.name}"
                slots[field.name] = (wire_name, field.name, _coercer(wire_name, field, model))
    return EntryValidator(
        model=model,
        key_field=schema.key_field,
        top=top,
        groups=groups,
        required=tuple(
            f.name for f in schema.fields.values() if f.required and f.name != MOM_CODE_FIELD
        ),
        required_one_of=schema.spec.required_one_of,
    )


def entry_validator(model: LoadedModel) -> EntryValidator:
    """The model's compiled checks, built once per loaded model."""
    return model.compiled("ingestion.validator", _validator_build)


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
    if object_type != CUSTOM_MODEL_OBJECT_TYPE:
        assert system_model is not None
        if not isinstance(entry, Mapping):
            return RejectedEntry(index, None, "Entry must be a JSON object")
        return entry_validator(system_model).validate(entry, index)
    if not isinstance(entry, Mapping):
        return RejectedEntry(index, None, "Entry must be a JSON object")
    mom_code = entry.get(MOM_CODE_FIELD)
    if not isinstance(mom_code, str) or not mom_code.strip():
        return RejectedEntry(index, _raw_key(entry, "refId"), f"Missing {MOM_CODE_FIELD}")
    model = custom_models.get(mom_code.strip())
    if model is None:
        return RejectedEntry(
            index, _raw_key(entry, "refId"), f"Unknown {MOM_CODE_FIELD}: {mom_code}"
        )
    return entry_validator(model).validate(entry, index)
