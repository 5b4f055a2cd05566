"""Data models, field definitions and records: services, selectors and DB constraints."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from cdp import identifiers, selectors, services
from cdp.models import DataModel, EntityRecord, FieldDefinition, ModelKind
from cdp.schema import FieldType, custom_field_pattern

# --- custom models ---------------------------------------------------------------------


def test_custom_model_create_generates_a_mom_code(tenant_a, tenant_b):
    model = services.custom_model_create(organization=tenant_a.organization, name="Loyalty")

    row = DataModel.objects.get(pk=model.pk)
    assert identifiers.MOM_CODE_RE.match(row.mom_code), row.mom_code
    assert len(row.mom_code) == 17
    assert row.organization == tenant_a.organization
    assert (row.kind, row.object_type, row.key_field, row.tags) == (
        ModelKind.CUSTOM,
        "custom-model",
        "refId",
        [],
    )
    assert not DataModel.objects.filter(organization=tenant_b.organization, name="Loyalty").exists()


def test_generated_mom_codes_are_unique_in_an_organization(tenant_a):
    for i in range(20):
        services.custom_model_create(organization=tenant_a.organization, name=f"Model {i}")

    codes = list(
        DataModel.objects.filter(
            organization=tenant_a.organization, kind=ModelKind.CUSTOM
        ).values_list("mom_code", flat=True)
    )
    assert len(codes) == 21  # with the fixture's Membership model
    assert len(set(codes)) == 21
    assert all(identifiers.MOM_CODE_RE.match(code) for code in codes)


def test_custom_model_create_keeps_a_given_mom_code_and_tags(tenant_a):
    model = services.custom_model_create(
        organization=tenant_a.organization,
        name="Loyalty",
        mom_code="M-Q3JP7-O-OHITB-M",
        tags=["SUPPORT_IGNORED_UPDATE_CFS"],
    )

    row = DataModel.objects.get(pk=model.pk)
    assert row.mom_code == "M-Q3JP7-O-OHITB-M"
    assert row.tags == ["SUPPORT_IGNORED_UPDATE_CFS"]


@pytest.mark.parametrize(
    "mom_code",
    [
        "",
        "m-q3jp7-o-ohitb-m",
        "M-Q3JP-O-OHITB-M",
        "M-Q3JP77-O-OHITB-M",
        "M-Q3JP7-X-OHITB-M",
        "M-Q3JP7-O-OHIT_-M",
        " M-Q3JP7-O-OHITB-M",
        "M-Q3JP7-O-OHITB-M\n",
    ],
    ids=[
        "empty",
        "lower-case",
        "short-part",
        "long-part",
        "no-O",
        "underscore",
        "leading-space",
        "trailing-newline",
    ],
)
def test_custom_model_create_rejects_a_malformed_mom_code(tenant_a, mom_code):
    with pytest.raises(ValidationError) as raised:
        services.custom_model_create(
            organization=tenant_a.organization, name="Loyalty", mom_code=mom_code
        )

    assert "momCode" in raised.value.message_dict
    assert not DataModel.objects.filter(name="Loyalty").exists()


def test_custom_model_create_rejects_a_mom_code_taken_in_the_organization(tenant_a, tenant_b):
    with pytest.raises(ValidationError) as raised:
        services.custom_model_create(
            organization=tenant_a.organization, name="Loyalty", mom_code=tenant_a.mom_code
        )

    assert raised.value.message_dict["momCode"] == [f"momCode {tenant_a.mom_code} is taken."]
    assert not DataModel.objects.filter(name="Loyalty").exists()


def test_custom_model_create_rejects_unknown_tags(tenant_a):
    with pytest.raises(ValidationError) as raised:
        services.custom_model_create(
            organization=tenant_a.organization,
            name="Loyalty",
            tags=["SUPPORT_IGNORED_UPDATE_CFS", "MAKE_COFFEE"],
        )

    assert "MAKE_COFFEE" in raised.value.message_dict["tags"][0]
    assert not DataModel.objects.filter(name="Loyalty").exists()


def test_custom_model_create_rejects_a_taken_name(tenant_a):
    for name in ("Membership", "Order"):  # a custom and a system model of tenant A
        with pytest.raises(ValidationError) as raised:
            services.custom_model_create(organization=tenant_a.organization, name=name)
        assert "name" in raised.value.message_dict

    assert DataModel.objects.filter(organization=tenant_a.organization).count() == 5


def test_same_model_name_and_mom_code_can_exist_in_two_organizations(tenant_a, tenant_b):
    in_a = services.custom_model_create(
        organization=tenant_a.organization, name="Loyalty", mom_code="M-AAAAA-O-BBBBB-M"
    )
    in_b = services.custom_model_create(
        organization=tenant_b.organization, name="Loyalty", mom_code="M-AAAAA-O-BBBBB-M"
    )

    assert in_a.pk != in_b.pk
    assert DataModel.objects.filter(mom_code="M-AAAAA-O-BBBBB-M").count() == 2
    code = "M-AAAAA-O-BBBBB-M"
    found_a = selectors.organization_models(organization=tenant_a.organization).custom
    found_b = selectors.organization_models(organization=tenant_b.organization).custom
    assert found_a[code].data_model == in_a
    assert found_b[code].data_model == in_b
    # The fixture's models share their name too, each in its own organization.
    assert tenant_a.model.name == tenant_b.model.name == "Membership"


# --- field definitions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field_type", "group"),
    [
        ("customField01", FieldType.TEXT, "customFieldTexts"),
        ("customField99", FieldType.TEXT, "customFieldTexts"),
        ("customFieldLong02", FieldType.INTEGER, "customFieldLongs"),
        ("customFieldDouble03", FieldType.NUMBER, "customFieldDoubles"),
        ("customFieldBool04", FieldType.BOOLEAN, "customFieldBooleans"),
        ("customFieldTimestamp05", FieldType.TIMESTAMP, "customFieldTimestamps"),
        ("customFieldList10", FieldType.LIST, "customFieldListTexts"),
    ],
)
def test_field_definition_type_follows_from_its_name(tenant_a, name, field_type, group):
    model = services.custom_model_create(organization=tenant_a.organization, name="Loyalty")

    definition = services.field_definition_create(
        organization=tenant_a.organization, data_model=model, name=name, label="L", required=True
    )

    row = FieldDefinition.objects.get(pk=definition.pk)
    assert row.type == field_type.value
    assert (row.organization, row.data_model, row.label, row.required) == (
        tenant_a.organization,
        model,
        "L",
        True,
    )
    assert row.as_field().type is field_type
    assert row.as_field().custom is True
    assert custom_field_pattern(name).group == group


def test_field_definitions_can_be_declared_on_a_system_model(tenant_a):
    user_event = (
        selectors.organization_models(organization=tenant_a.organization)
        .system["user-event"]
        .data_model
    )

    definition = services.field_definition_create(
        organization=tenant_a.organization, data_model=user_event, name="customFieldLong07"
    )

    assert definition.type == "integer"
    # The next lookup sees the new field: the declaration invalidated the cached models.
    schema = (
        selectors.organization_models(organization=tenant_a.organization)
        .system["user-event"]
        .schema
    )
    assert [f.name for f in schema.custom_fields] == ["customFieldLong07"]
    declared = schema.field("customFieldLong07")
    assert declared is not None and declared.custom


@pytest.mark.parametrize(
    "name",
    [
        "customField1",
        "customField00",
        "customField100",
        "foo",
        "customFieldLong",
        "customFieldLong1",
        "customFieldText01",
        "CustomField01",
        "customfield01",
        "customField01 ",
        "customField01\n",
        "",
    ],
)
def test_field_definition_create_rejects_a_bad_name(tenant_a, name):
    before = FieldDefinition.objects.count()

    with pytest.raises(ValidationError) as raised:
        services.field_definition_create(
            organization=tenant_a.organization, data_model=tenant_a.model, name=name
        )

    assert raised.value.code == "invalid_custom_field_name"
    assert FieldDefinition.objects.count() == before


def test_field_definition_create_rejects_a_taken_name_on_the_model_only(tenant_a):
    before = FieldDefinition.objects.count()
    with pytest.raises(ValidationError) as raised:
        services.field_definition_create(
            organization=tenant_a.organization, data_model=tenant_a.model, name="customField01"
        )
    assert "name" in raised.value.message_dict
    assert FieldDefinition.objects.count() == before

    other = services.custom_model_create(organization=tenant_a.organization, name="Loyalty")
    services.field_definition_create(
        organization=tenant_a.organization, data_model=other, name="customField01"
    )
    assert (
        FieldDefinition.objects.filter(
            organization=tenant_a.organization, name="customField01"
        ).count()
        == 2
    )


def test_field_definition_create_refuses_a_model_of_another_organization(tenant_a, tenant_b):
    before = FieldDefinition.objects.filter(data_model=tenant_b.model).count()

    with pytest.raises(ValidationError) as raised:
        services.field_definition_create(
            organization=tenant_a.organization, data_model=tenant_b.model, name="customField09"
        )

    assert "data_model" in raised.value.message_dict
    assert FieldDefinition.objects.filter(data_model=tenant_b.model).count() == before
    assert not FieldDefinition.objects.filter(name="customField09").exists()


def test_field_definition_update_refuses_a_field_of_another_organization(tenant_a, tenant_b):
    field_b = FieldDefinition.objects.get(data_model=tenant_b.model, name="customField01")

    with pytest.raises(ValidationError):
        services.field_definition_update(
            organization=tenant_a.organization,
            field_definition=field_b,
            label="Hijacked",
            required=True,
        )

    field_b.refresh_from_db()
    assert (field_b.label, field_b.required) == ("Tier", False)


def test_field_definition_update_changes_label_and_required(tenant_a):
    field_a = FieldDefinition.objects.get(data_model=tenant_a.model, name="customField01")

    services.field_definition_update(
        organization=tenant_a.organization, field_definition=field_a, label="Level", required=True
    )

    field_a.refresh_from_db()
    assert (field_a.label, field_a.required, field_a.type) == ("Level", True, "text")


# --- selectors -------------------------------------------------------------------------


def test_organization_models_lists_only_the_organizations_models(tenant_a, tenant_b):
    models = selectors.organization_models(organization=tenant_a.organization)

    loaded = [*models.system.values(), *models.custom.values()]
    assert {m.data_model.organization_id for m in loaded} == {tenant_a.organization.pk}
    assert set(models.system) == {"user-event", "order", "customer-identity", "lead-information"}
    assert set(models.custom) == {tenant_a.mom_code}
    membership = models.custom[tenant_a.mom_code]
    assert [f.name for f in membership.schema.custom_fields] == sorted(
        f.name for f in membership.schema.custom_fields
    )
    assert len(membership.schema.custom_fields) == 7


def test_organization_models_do_not_include_another_organizations_model(tenant_a, tenant_b):
    found = selectors.organization_models(organization=tenant_a.organization).custom

    assert list(found) == [tenant_a.mom_code]
    assert found[tenant_a.mom_code].data_model == tenant_a.model


def test_organization_models_hold_the_organizations_system_models(tenant_a, tenant_b):
    order_a = selectors.organization_models(organization=tenant_a.organization).system["order"]
    order_b = selectors.organization_models(organization=tenant_b.organization).system["order"]

    assert order_a.data_model.organization_id == tenant_a.organization.pk
    assert order_b.data_model.organization_id == tenant_b.organization.pk
    assert order_a.pk != order_b.pk
    assert order_a.schema.key_field == "orderId"
    system = selectors.organization_models(organization=tenant_a.organization).system
    assert "custom-model" not in system and "invoice" not in system


# --- database constraints --------------------------------------------------------------


def record(tenant, key: str, model=None) -> EntityRecord:
    now = timezone.now()
    return EntityRecord.objects.create(
        organization=tenant.organization,
        data_model=model or tenant.model,
        key=key,
        data={"customField01": "gold"},
        created_at=now,
        updated_at=now,
    )


def test_record_key_is_unique_within_organization_and_model(tenant_a, tenant_b):
    record(tenant_a, "R-1")

    with pytest.raises(IntegrityError), transaction.atomic():
        record(tenant_a, "R-1")

    assert EntityRecord.objects.filter(organization=tenant_a.organization, key="R-1").count() == 1


def test_same_record_key_in_two_organizations_or_two_models_is_fine(tenant_a, tenant_b):
    first = record(tenant_a, "R-1")
    second = record(tenant_b, "R-1")
    other_model = services.custom_model_create(organization=tenant_a.organization, name="Loyalty")
    third = record(tenant_a, "R-1", model=other_model)

    assert EntityRecord.objects.filter(key="R-1").count() == 3
    assert len({first.cdp_id, second.cdp_id, third.cdp_id}) == 3
    assert all(identifiers.CDP_ID_RE.match(r.cdp_id) for r in (first, second, third))


def test_model_name_and_mom_code_are_unique_per_organization_in_the_database(tenant_a, tenant_b):
    with pytest.raises(IntegrityError), transaction.atomic():
        DataModel.objects.create(
            organization=tenant_a.organization,
            kind=ModelKind.CUSTOM,
            object_type="custom-model",
            name="Another",
            mom_code=tenant_a.mom_code,
            key_field="refId",
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        DataModel.objects.create(
            organization=tenant_a.organization,
            kind=ModelKind.CUSTOM,
            object_type="custom-model",
            name="Membership",
            mom_code="M-ZZZZZ-O-ZZZZZ-M",
            key_field="refId",
        )

    DataModel.objects.create(
        organization=tenant_b.organization,
        kind=ModelKind.CUSTOM,
        object_type="custom-model",
        name="Another",
        mom_code=tenant_a.mom_code,
        key_field="refId",
    )
    assert DataModel.objects.filter(mom_code=tenant_a.mom_code).count() == 2


def test_field_name_is_unique_per_model_in_the_database(tenant_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        FieldDefinition.objects.create(
            organization=tenant_a.organization,
            data_model=tenant_a.model,
            name="customField01",
            type="text",
        )


def test_random_strings_use_the_whole_alphabet_uniformly():
    from collections import Counter

    from cdp.identifiers import ALNUM, random_string

    drawn = Counter("".join(random_string(ALNUM, 20) for _ in range(3100)))
    assert set(drawn) == set(ALNUM)
    # 62,000 draws: each character expected 1,000 times; bias from a plain modulo (256 % 62)
    # would push the first eight characters to about 1,290.
    assert max(drawn.values()) < 1170
    assert min(drawn.values()) > 830
