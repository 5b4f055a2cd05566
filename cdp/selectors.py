"""Reads for tenants and data models. Every lookup is made inside the organization."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from cdp.models import DataModel, FieldDefinition, ModelKind, Organization
from cdp.schema import CUSTOM_MODEL_OBJECT_TYPE


def data_models_with_fields(*, organization: Organization) -> QuerySet[DataModel]:
    return DataModel.objects.filter(organization=organization).prefetch_related(
        Prefetch("field_definitions", queryset=FieldDefinition.objects.order_by("name"))
    )


def data_model_get(*, organization: Organization, object_type: str) -> DataModel | None:
    """The system model of `object_type` in this organization (None for custom-model)."""
    if object_type == CUSTOM_MODEL_OBJECT_TYPE:
        return None
    return DataModel.objects.filter(
        organization=organization, kind=ModelKind.SYSTEM, object_type=object_type
    ).first()


def custom_model_get(*, organization: Organization, mom_code: str) -> DataModel | None:
    return DataModel.objects.filter(
        organization=organization, kind=ModelKind.CUSTOM, mom_code=mom_code
    ).first()


def object_type_exists(*, organization: Organization, object_type: str) -> bool:
    if object_type == CUSTOM_MODEL_OBJECT_TYPE:
        return True
    return DataModel.objects.filter(
        organization=organization, kind=ModelKind.SYSTEM, object_type=object_type
    ).exists()
