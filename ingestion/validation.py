"""Per-entry validation and coercion against the model's schema.

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

from cdp.coercion import (
    COERCERS,
    EPOCH_SECONDS_BELOW,
    INTEGER_LIMIT,
    MAX_MS,
    MIN_MS,
    CoercionError,
    to_integer,
    to_text,
)
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


# Not frozen: a frozen dataclass costs a microsecond more to build, per entry.
@dataclass(slots=True)
class ValidEntry:
    index: int
    key: str
    model: LoadedModel
    patch: dict[str, Any]


@dataclass(slots=True)
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


# A compiled field's coercer takes the raw value (never None: None means "clear") and the
# entry's timezone hours, and raises EntryRejected with the message to answer.
Coercer = Callable[[Any, int], Any]

# Each field also has a kind: for the JSON type a field of that kind usually arrives in,
# the validator stores the value inline, without a call (the same value the coercer
# gives); anything else, and every field with choices or a length limit, goes through
# the coercer.
_GENERAL, _TEXT, _INTEGER, _NUMBER, _BOOLEAN, _TIMESTAMP, _LIST = range(7)
_KINDS = {
    FieldType.TEXT: _TEXT,
    FieldType.INTEGER: _INTEGER,
    FieldType.NUMBER: _NUMBER,
    FieldType.BOOLEAN: _BOOLEAN,
    FieldType.TIMESTAMP: _TIMESTAMP,
    FieldType.LIST: _LIST,
}
_Slot = tuple[int, Coercer]
_MOM_CODE = object()  # a field the entry carries but that is not stored
_SECONDS_BELOW = EPOCH_SECONDS_BELOW
_INTEGER_MIN = -INTEGER_LIMIT
# The same bounds as doubles (2^63 is one exactly): a float compares faster with a float.
_DOUBLE_MIN, _DOUBLE_LIMIT = float(_INTEGER_MIN), float(INTEGER_LIMIT)


def _coercer(wire_name: str, field: Field, model: LoadedModel) -> _Slot:
    if field.type == FieldType.OBJECT_LIST:
        return _GENERAL, _object_list_coercer(field, model)
    coerce = COERCERS[field.type]
    choices, max_length = field.choices, field.max_length

    def coerce_field(raw: Any, tz_hours: int) -> Any:
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

    plain = choices is None and max_length is None
    return (_KINDS[field.type] if plain else _GENERAL), coerce_field


def _object_list_coercer(field: Field, model: LoadedModel) -> Coercer:
    item_fields = {f.name: f for f in model.schema.spec.item_fields.get(field.name, ())}
    required = [f.name for f in item_fields.values() if f.required]

    def coerce_items(value: Any, tz_hours: int) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
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
    """One model's checks, compiled: `validate(entry, index)` for a JSON object.

    A first pass over the entry's fields finds each one's compiled slot, refusing the
    entry for an unknown field or a custom field in the wrong group (so that such an
    error is answered before a value that does not coerce, wherever it stands); a second
    coerces the values.
    """

    model: LoadedModel
    key_field: str
    top: dict[str, Any]  # field name → slot, or _MOM_CODE
    groups: dict[str, tuple[FieldType, dict[str, _Slot]]]
    required: tuple[str, ...]
    required_one_of: tuple[tuple[str, ...], ...]

    def _misplaced(self, group: str, inner: str, value: Any, group_type: FieldType) -> None:
        field = self.model.schema.fields.get(inner)
        if field is None or not field.custom:
            if value is None:
                return
            raise EntryRejected(f"Unknown field: {group}.{inner}")
        pattern = custom_field_pattern(inner)
        belongs = pattern.group if pattern else "?"
        raise EntryRejected(f"Invalid field: {inner} belongs in {belongs}, not {group}")

    def _patch(self, entry: dict[str, Any]) -> dict[str, Any]:
        tz_hours = _timezone_hours(entry) if entry.get(TIMEZONE_FIELD) is not None else 0
        top, groups = self.top, self.groups
        pending: list[tuple[str, _Slot, Any]] = []
        for name, value in entry.items():
            slot = top.get(name)
            if slot is not None:
                if slot is not _MOM_CODE:
                    pending.append((name, slot, value))
                continue
            group = groups.get(name)
            if group is None:
                if value is None:
                    continue
                raise EntryRejected(f"Unknown field: {name}")
            if value is None:
                continue
            if type(value) is not dict:
                raise EntryRejected(f"Invalid value of {name}: must be an object")
            group_type, inner_slots = group
            for inner, inner_value in value.items():
                slot = inner_slots.get(inner)
                if slot is None:
                    self._misplaced(name, inner, inner_value, group_type)
                else:
                    pending.append((inner, slot, inner_value))

        patch: dict[str, Any] = {}
        for name, (kind, coerce), value in pending:
            if value is None:
                patch[name] = None
                continue
            value_type = type(value)
            if kind == _TEXT:
                if value_type is str:
                    patch[name] = value
                    continue
            elif kind in (_INTEGER, _NUMBER):
                if value_type is int and _INTEGER_MIN <= value < INTEGER_LIMIT:
                    patch[name] = value
                    continue
                # A number field's range is the integers' (cdp/coercion.py); NaN and the
                # infinities fail the comparison too, and the coercer words the refusal.
                if kind == _NUMBER and value_type is float and _DOUBLE_MIN <= value < _DOUBLE_LIMIT:
                    patch[name] = value
                    continue
            elif kind == _TIMESTAMP:
                if value_type is int:
                    ms = value * 1000 if -_SECONDS_BELOW < value < _SECONDS_BELOW else value
                    if MIN_MS <= ms <= MAX_MS:
                        patch[name] = ms
                        continue
            elif kind == _BOOLEAN:
                if value_type is bool:
                    patch[name] = value
                    continue
            elif kind == _LIST and value_type is list and all(type(i) is str for i in value):
                patch[name] = value
                continue
            patch[name] = coerce(value, tz_hours)
        return patch

    def validate(self, entry: dict[str, Any], index: int) -> ValidEntry | RejectedEntry:
        key = None
        try:
            patch = self._patch(entry)
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
            # The key as sent, for the result: only a rejected entry needs it.
            key = key or _raw_key(entry, self.key_field)
            return RejectedEntry(index=index, key=key or None, message=str(rejection))
        return ValidEntry(index=index, key=key, model=self.model, patch=patch)


def _validator_build(model: LoadedModel) -> EntryValidator:
    schema = model.schema
    top: dict[str, Any] = {
        name: _MOM_CODE if name == MOM_CODE_FIELD else _coercer(name, field, model)
        for name, field in schema.fields.items()
    }
    groups: dict[str, tuple[FieldType, dict[str, _Slot]]] = {
        group: (group_type, {}) for group, group_type in CUSTOM_FIELD_GROUPS.items()
    }
    for field in schema.custom_fields:
        for group, (group_type, coercers) in groups.items():
            if field.type == group_type:
                coercers[field.name] = _coercer(f"{group}.{field.name}", field, model)
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
    if type(entry) is not dict:  # parsed JSON: an object is a dict
        return RejectedEntry(index, None, "Entry must be a JSON object")
    if object_type != CUSTOM_MODEL_OBJECT_TYPE:
        assert system_model is not None
        return entry_validator(system_model).validate(entry, index)
    mom_code = entry.get(MOM_CODE_FIELD)
    if not isinstance(mom_code, str) or not mom_code.strip():
        return RejectedEntry(index, _raw_key(entry, "refId"), f"Missing {MOM_CODE_FIELD}")
    model = custom_models.get(mom_code.strip())
    if model is None:
        return RejectedEntry(
            index, _raw_key(entry, "refId"), f"Unknown {MOM_CODE_FIELD}: {mom_code}"
        )
    return entry_validator(model).validate(entry, index)
