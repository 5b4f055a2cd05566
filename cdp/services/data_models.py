"""Writes for an organization's data models: the system models every organization has,
its custom models and their tags, and the custom fields declared on any model."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from cdp import identifiers
from cdp.models import (
    DataModel,
    FieldDefinition,
    ModelKind,
    Organization,
    validate_custom_field_name,
)
from cdp.schema import (
    CUSTOM_MODEL_OBJECT_TYPE,
    KNOWN_TAGS,
    SYSTEM_MODELS,
    custom_field_pattern,
)

# Rows of these system object types exist in every organization. `custom-model` is the
# family of the organization's custom models (each a DataModel of kind custom), not a
# model of its own (docs/decisions.md).
SYSTEM_OBJECT_TYPES = tuple(t for t in SYSTEM_MODELS if t != CUSTOM_MODEL_OBJECT_TYPE)


def system_models_ensure(*, organization: Organization) -> list[DataModel]:
    """Create the organization's missing system models (idempotent)."""
    existing = set(
        DataModel.objects.filter(organization=organization, kind=ModelKind.SYSTEM).values_list(
            "object_type", flat=True
        )
    )
    created = [
        DataModel(
            organization=organization,
            kind=ModelKind.SYSTEM,
            object_type=object_type,
            name=SYSTEM_MODELS[object_type].name,
            key_field=SYSTEM_MODELS[object_type].key_field,
            tags=list(SYSTEM_MODELS[object_type].tags),
        )
        for object_type in SYSTEM_OBJECT_TYPES
        if object_type not in existing
    ]
    return DataModel.objects.bulk_create(created)


def custom_model_create(
    *,
    organization: Organization,
    name: str,
    mom_code: str | None = None,
    tags: list[str] | None = None,
) -> DataModel:
    if mom_code is not None and not identifiers.MOM_CODE_RE.match(mom_code):
        raise ValidationError({"momCode": "A momCode reads M-XXXXX-O-XXXXX-M (A-Z, 0-9)."})
    tags = list(tags) if tags is not None else []
    unknown = [t for t in tags if t not in KNOWN_TAGS]
    if unknown:
        raise ValidationError({"tags": f"Unknown tags {unknown}: use {list(KNOWN_TAGS)}."})
    if DataModel.objects.filter(organization=organization, name=name).exists():
        raise ValidationError({"name": f"A model named {name!r} already exists."})
    for _attempt in range(5):
        code = mom_code or identifiers.mom_code_generate()
        try:
            with transaction.atomic():
                return DataModel.objects.create(
                    organization=organization,
                    kind=ModelKind.CUSTOM,
                    object_type=CUSTOM_MODEL_OBJECT_TYPE,
                    name=name,
                    mom_code=code,
                    key_field=SYSTEM_MODELS[CUSTOM_MODEL_OBJECT_TYPE].key_field,
                    tags=tags,
                )
        except IntegrityError:
            if mom_code is not None:
                raise ValidationError({"momCode": f"momCode {mom_code} is taken."}) from None
    raise RuntimeError("could not draw a unique momCode")


def custom_model_tags_set(
    *, organization: Organization, data_model: DataModel, tags: list[str]
) -> DataModel:
    """Replace the tags of one of the organization's custom models (system models keep the
    tags their spec gives them)."""
    if data_model.organization_id != organization.pk or not data_model.is_custom:
        raise ValidationError({"model": "Unknown custom model."})
    unknown = [t for t in tags if t not in KNOWN_TAGS]
    if unknown:
        raise ValidationError({"tags": f"Unknown tags {unknown}: use {list(KNOWN_TAGS)}."})
    if data_model.tags != list(tags):
        data_model.tags = list(tags)
        data_model.save(update_fields=["tags"])
    return data_model


def field_definition_create(
    *,
    organization: Organization,
    data_model: DataModel,
    name: str,
    label: str = "",
    required: bool = False,
) -> FieldDefinition:
    """Declare a custom field; its type follows from its name."""
    if data_model.organization_id != organization.pk:
        raise ValidationError({"data_model": "Unknown model."})
    validate_custom_field_name(name)
    pattern = custom_field_pattern(name)
    assert pattern is not None
    if FieldDefinition.objects.filter(
        organization=organization, data_model=data_model, name=name
    ).exists():
        raise ValidationError({"name": f"Field {name} already exists on {data_model.name}."})
    return FieldDefinition.objects.create(
        organization=organization,
        data_model=data_model,
        name=name,
        label=label,
        type=pattern.type.value,
        required=required,
    )


def field_definition_update(
    *, organization: Organization, field_definition: FieldDefinition, label: str, required: bool
) -> FieldDefinition:
    if field_definition.organization_id != organization.pk:
        raise ValidationError({"field": "Unknown field."})
    field_definition.label = label
    field_definition.required = required
    field_definition.save(update_fields=["label", "required"])
    return field_definition
