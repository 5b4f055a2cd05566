"""The `models` section: custom models, matched by name, system models, matched by
`objectType`, and their custom fields, matched by name. A momCode never changes."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cdp import identifiers, services
from cdp.models import DataModel, FieldDefinition, ModelKind, Organization
from cdp.provisioning.errors import invalid, path_join, refusing
from cdp.provisioning.registry import section_register
from cdp.provisioning.results import ModelOutcome, Status
from cdp.provisioning.serializers import (
    REQUIRED,
    Boolean,
    Choice,
    ItemList,
    List,
    Pattern,
    Problems,
    StrictSerializer,
    Text,
)
from cdp.schema import (
    CUSTOM_FIELD_NAME_HELP,
    CUSTOM_MODEL_OBJECT_TYPE,
    KNOWN_TAGS,
    SYSTEM_MODELS,
    custom_field_pattern,
)

OBJECT_TYPES = (CUSTOM_MODEL_OBJECT_TYPE, *services.SYSTEM_OBJECT_TYPES)
SYSTEM_MODEL_NAMES = {SYSTEM_MODELS[t].name: t for t in services.SYSTEM_OBJECT_TYPES}
# The column size of DataModel.name: a User Event's `model` names one too.
MODEL_NAME_MAX = 100


class CustomFieldSerializer(StrictSerializer):
    # DRF's metaclass takes declared fields off the class, so `label`, `required` and
    # (below) `fields` are keys of the file and shadow nothing of the serializer's own.
    # mypy, which does not know that metaclass, sees them override Field's and
    # Serializer's attributes (hence the ignores).
    name = Text(max_length=40)
    label = Text(required=False, allow_blank=True, max_length=100)  # type: ignore[assignment]
    required = Boolean(required=False)  # type: ignore[assignment]

    def validate_name(self, name: str) -> str:
        if custom_field_pattern(name) is None:
            raise serializers.ValidationError(
                f"{name!r} is not a custom field name: use {CUSTOM_FIELD_NAME_HELP}"
            )
        return name


class Tag(Choice):
    default_error_messages = {"null": "must be a string", "invalid": "must be a string"}

    def __init__(self) -> None:
        super().__init__(
            KNOWN_TAGS,
            error_messages={
                "invalid_choice": "unknown tag {input!r}: use " + ", ".join(KNOWN_TAGS)
            },
        )

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class DataModelSerializer(StrictSerializer):
    """A custom model by its name, or a system model by its `objectType` alone."""

    name = Text(required=False, max_length=MODEL_NAME_MAX)
    objectType = Choice(OBJECT_TYPES, required=False)
    momCode = Pattern(
        pattern=identifiers.MOM_CODE_RE,
        shape="a momCode reads M-XXXXX-O-XXXXX-M, X an upper-case letter or digit",
        required=False,
    )
    tags = List(child=Tag(), required=False)
    # A key of the file, not Serializer.fields (see CustomFieldSerializer).
    fields = CustomFieldSerializer(many=True, required=False)  # type: ignore[assignment]

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        object_type = spec.get("objectType", CUSTOM_MODEL_OBJECT_TYPE)
        if object_type != CUSTOM_MODEL_OBJECT_TYPE:
            refused = {
                key: f"the system model {object_type!r} is named by objectType alone and "
                "takes only fields: remove it"
                for key in ("name", "momCode", "tags")
                if key in spec
            }
            if refused:
                raise serializers.ValidationError(refused)
        elif "name" not in spec:
            raise serializers.ValidationError({"name": REQUIRED})
        elif spec["name"] in SYSTEM_MODEL_NAMES:
            system = SYSTEM_MODEL_NAMES[spec["name"]]
            raise serializers.ValidationError(
                {
                    "name": f"{spec['name']!r} is the system model {system!r}: declare its "
                    f'fields with {{"objectType": "{system}"}}'
                }
            )
        return spec


class DataModelsSerializer(ItemList):
    """Model names, momCodes and system object types appear once in the file; tags and
    field names once within their model."""

    child = DataModelSerializer()

    def validate(self, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
        problems = Problems(self)
        name_once, mom_code_once = problems.once("model name"), problems.once("momCode")
        object_type_once = problems.once("objectType")
        for i, spec in enumerate(models):
            object_type = spec.get("objectType", CUSTOM_MODEL_OBJECT_TYPE)
            if object_type == CUSTOM_MODEL_OBJECT_TYPE:
                name_once(spec["name"], (i, "name"))
                if "momCode" in spec:
                    mom_code_once(spec["momCode"], (i, "momCode"))
                tag_once = problems.once("tag")
                for j, tag in enumerate(spec.get("tags", [])):
                    tag_once(tag, (i, "tags", j))
            else:
                object_type_once(object_type, (i, "objectType"))
            field_name_once = problems.once("field name")
            for j, field in enumerate(spec.get("fields", [])):
                field_name_once(field["name"], (i, "fields", j, "name"))
        problems.raise_any()
        return models


def data_models_apply(
    *, organization: Organization, items: list[dict[str, Any]], path: str
) -> list[ModelOutcome]:
    return [
        _data_model_apply(organization=organization, spec=spec, path=path_join(path, index))
        for index, spec in enumerate(items)
    ]


def _data_model_apply(
    *, organization: Organization, spec: dict[str, Any], path: str
) -> ModelOutcome:
    object_type = spec.get("objectType", CUSTOM_MODEL_OBJECT_TYPE)
    if object_type == CUSTOM_MODEL_OBJECT_TYPE:
        data_model, status = _custom_model_apply(organization=organization, spec=spec, path=path)
    else:
        # organization_create / system_models_ensure made every system model already.
        data_model = DataModel.objects.get(
            organization=organization, kind=ModelKind.SYSTEM, object_type=object_type
        )
        status = "unchanged"
    created, updated = _fields_apply(
        organization=organization,
        data_model=data_model,
        items=spec.get("fields", []),
        path=f"{path}.fields",
    )
    if status == "unchanged" and (created or updated):
        status = "updated"
    return ModelOutcome(
        name=data_model.name,
        object_type=data_model.object_type,
        mom_code=data_model.mom_code,
        status=status,
        fields_created=created,
        fields_updated=updated,
    )


def _custom_model_apply(
    *, organization: Organization, spec: dict[str, Any], path: str
) -> tuple[DataModel, Status]:
    name: str = spec["name"]
    mom_code: str | None = spec.get("momCode")
    tags: list[str] | None = spec.get("tags")
    data_model = DataModel.objects.filter(
        organization=organization, kind=ModelKind.CUSTOM, name=name
    ).first()
    if data_model is None:
        data_model = refusing(
            path,
            services.custom_model_create,
            organization=organization,
            name=name,
            mom_code=mom_code,
            tags=tags,
        )
        return data_model, "created"
    if mom_code is not None and mom_code != data_model.mom_code:
        raise invalid(
            f"{path}.momCode",
            f"model {name!r} has momCode {data_model.mom_code}, and a momCode never changes",
        )
    if tags is not None and tags != data_model.tags:
        services.custom_model_tags_set(organization=organization, data_model=data_model, tags=tags)
        return data_model, "updated"
    return data_model, "unchanged"


def _fields_apply(
    *,
    organization: Organization,
    data_model: DataModel,
    items: list[dict[str, Any]],
    path: str,
) -> tuple[list[str], list[str]]:
    """Create missing fields, update label and required where the file gives other values;
    return the names created and updated."""
    stored = {
        fd.name: fd
        for fd in FieldDefinition.objects.filter(organization=organization, data_model=data_model)
    }
    created: list[str] = []
    updated: list[str] = []
    for index, spec in enumerate(items):
        name: str = spec["name"]
        label, required = spec.get("label"), spec.get("required")
        definition = stored.get(name)
        if definition is None:
            refusing(
                path_join(path, index),
                services.field_definition_create,
                organization=organization,
                data_model=data_model,
                name=name,
                label=label or "",
                required=bool(required),
            )
            created.append(name)
            continue
        label = definition.label if label is None else label
        required = definition.required if required is None else required
        if (label, required) != (definition.label, definition.required):
            services.field_definition_update(
                organization=organization,
                field_definition=definition,
                label=label,
                required=required,
            )
            updated.append(name)
    return created, updated


section_register(key="models", position=20, validator=DataModelsSerializer, apply=data_models_apply)
