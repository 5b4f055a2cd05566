"""Sample ingest payloads the Console shows for a model: one entry with the
model's key, its required built-in fields and every custom field in its wire group, ready
to send as it is."""

from __future__ import annotations

from typing import Any

from cdp.models import DataModel
from cdp.schema import Field, FieldType, ModelSchema, custom_field_pattern

SAMPLE_SOURCE = "Console"
# 2025-01-01T00:00:00Z in epoch milliseconds, the wire's timestamp format.
SAMPLE_TIMESTAMP = 1_735_689_600_000

_BY_TYPE: dict[FieldType, Any] = {
    FieldType.TEXT: "example",
    FieldType.INTEGER: 100,
    FieldType.NUMBER: 12.5,
    FieldType.BOOLEAN: True,
    FieldType.TIMESTAMP: SAMPLE_TIMESTAMP,
    FieldType.LIST: ["example"],
}


def _example(field: Field, schema: ModelSchema) -> Any:
    if field.name == schema.key_field:
        return f"{field.name.upper()}-0001"
    if field.choices:
        return field.choices[0]
    lowered = field.name.lower()
    if field.type == FieldType.TEXT and "email" in lowered:
        return "jane@example.com"
    if field.type == FieldType.TEXT and "phone" in lowered:
        return "0900000001"
    if field.type == FieldType.OBJECT_LIST:
        items = schema.spec.item_fields.get(field.name, ())
        return [{f.name: _example(f, schema) for f in items if f.required}]
    return _BY_TYPE[field.type]


def _builtin_names(data_model: DataModel, schema: ModelSchema) -> list[str]:
    """The built-in fields an entry needs: the key, the required ones, and the first of
    each group of which one must have a value."""
    names = [f.name for f in schema.spec.fields if f.required]
    names += [group[0] for group in schema.spec.required_one_of]
    if schema.key_field not in names:
        names.insert(0, schema.key_field)
    return list(dict.fromkeys(names))


def payload_sample(
    *,
    data_model: DataModel,
    schema: ModelSchema,
    config_id: str | None = None,
    event_key: str | None = None,
) -> dict[str, Any]:
    """A request body for `data_model` (whose schema is `schema`), naming the User Event
    `config_id`/`event_key` when given and null placeholders otherwise."""
    entry: dict[str, Any] = {}
    for name in _builtin_names(data_model, schema):
        if name == "momCode":
            entry[name] = data_model.mom_code
        else:
            entry[name] = _example(schema.fields[name], schema)
    for field in schema.custom_fields:
        pattern = custom_field_pattern(field.name)
        if pattern is not None:
            entry.setdefault(pattern.group, {})[field.name] = _example(field, schema)
    return {
        "objectType": data_model.object_type,
        "source": SAMPLE_SOURCE,
        "jeConfigId": config_id,
        "jeEventKey": event_key,
        "entries": [entry],
        "ignoredUpdateCfs": [],
    }
