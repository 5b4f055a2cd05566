"""Reads for tenants and data models. Every lookup is made inside the organization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.db.models import Expression, Prefetch, Q, QuerySet, Value
from django.db.models.functions import Lower
from django.db.models.lookups import Exact

from cdp.models import (
    RECORD_IDENTIFIER_KEYS,
    RECORD_IDENTIFIERS,
    ApiKey,
    DataModel,
    FieldDefinition,
    ModelKind,
    Organization,
    identifier_indexed,
)
from cdp.schema import ModelSchema
from cdp.schema_cache import schema_cached

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModel:
    """A data model with its schema, as one worker keeps it while the organization's
    schema version is current (cdp/schema_cache.py)."""

    data_model: DataModel
    schema: ModelSchema
    # Read on the hot path for every entry: plain attributes, not the model's properties.
    pk: int = field(init=False)
    source: str = field(init=False)  # what events and logs call it: momCode or object type
    _compiled: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pk", self.data_model.pk)
        object.__setattr__(self, "source", self.data_model.source_name)

    def compiled(self, name: str, build: Callable[[LoadedModel], T]) -> T:
        """`build(self)`, computed once per loaded model and kept with it: what callers
        derive from the schema (a validator) lives exactly as long as the schema does."""
        try:
            return self._compiled[name]
        except KeyError:
            return self._compiled.setdefault(name, build(self))


def _loaded(queryset: QuerySet[DataModel]) -> list[LoadedModel]:
    models = queryset.prefetch_related(
        Prefetch("field_definitions", queryset=FieldDefinition.objects.order_by("name"))
    )
    return [LoadedModel(m, m.schema(list(m.field_definitions.all()))) for m in models]


@dataclass(frozen=True)
class OrganizationModels:
    system: dict[str, LoadedModel]  # by object type
    custom: dict[str, LoadedModel]  # by momCode

    def by_pk(self) -> dict[int, LoadedModel]:
        return {m.pk: m for m in (*self.system.values(), *self.custom.values())}


def organization_models(
    *, organization: Organization, version: bytes | None = None
) -> OrganizationModels:
    """Every model of the organization with its schema: two queries, or none while this
    worker's copy is current (cdp/schema_cache.py). `version` is the schema version when
    the caller has read it already."""

    def load() -> OrganizationModels:
        loaded = _loaded(DataModel.objects.filter(organization=organization))
        return OrganizationModels(
            system={
                m.data_model.object_type: m for m in loaded if m.data_model.kind == ModelKind.SYSTEM
            },
            # A custom model always has its momCode (`custom_model_create` draws it).
            custom={cast(str, m.data_model.mom_code): m for m in loaded if m.data_model.is_custom},
        )

    return schema_cached(organization.pk, "models", load, version=version)


def api_keys_usable(*, organization: Organization, user: User | AnonymousUser) -> QuerySet[ApiKey]:
    """The unrevoked API keys `user` holds in an active `organization`: the keys the
    Console may send a test payload with, as that member. `user` is a Console page's
    `request.user`, signed in."""
    assert user.is_authenticated  # every Console page is behind its sign-in
    return ApiKey.objects.filter(
        organization=organization,
        organization__is_active=True,
        membership__user=user,
        revoked_at__isnull=True,
    ).order_by("name", "pk")


def identifier_condition(expression: Any, kind: str, value: str, *, within: Q) -> Q:
    """Rows whose identifier `expression` (customerId, email or phone) is `value`, written
    as its partial index reads it (`identifier_indexed`): the index's condition
    (`within`), its prefix, then the whole value; an email compares case-insensitively.
    Filter with it inside the organization, the index's first column."""
    wanted: Expression = Lower(Value(value)) if kind == "email" else Value(value)
    # Plain SQL equality: a JSON key's own `exact` would compare JSON values.
    return Q(
        within,
        Exact(identifier_indexed(expression), identifier_indexed(wanted)),
        Exact(expression, wanted),
    )


def record_identifier_condition(*, kind: str, value: str) -> Q:
    """The records whose identifier `kind` (customerId, email or phone, as
    `RECORD_IDENTIFIERS` reads them) is `value`, by the index `record_org_<kind>`. Filter
    with it inside the organization (`organization=…`): without it no index serves."""
    within = Q(data__has_any_keys=RECORD_IDENTIFIER_KEYS[kind])
    return identifier_condition(RECORD_IDENTIFIERS[kind], kind, value, within=within)
