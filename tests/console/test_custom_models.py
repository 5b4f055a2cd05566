"""Console › Custom Model: the organization's models, "+ Add" through custom_model_create
(momCode generated, read-only afterwards), and the model's Fields tab through
field_definition_create / field_definition_update."""

from __future__ import annotations

import re

from cdp import services
from cdp.identifiers import MOM_CODE_RE
from cdp.models import DataModel, FieldDefinition, ModelKind
from ingestion.models import RecordHistory
from tests.console.conftest import console_member, form_data, url
from tests.ingestion.conftest import ingest_for


def test_the_list_shows_system_and_custom_models_with_their_columns(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = console.get(url("cdp_datamodel_changelist"))

    listed = list(response.context["cl"].result_list)
    assert {m.kind for m in listed} == {ModelKind.SYSTEM, ModelKind.CUSTOM}
    assert set(listed) == set(DataModel.objects.filter(organization=tenant_a.organization))
    page = response.content.decode()
    for text in (
        "Custom Model",
        tenant_a.mom_code,
        "refId",
        "orderId",
        "customer-identity",
        "SUPPORT_IGNORED_UPDATE_CFS",
        "System",
        "Custom",
    ):
        assert text in page, text
    assert response.context["title"] == "Custom Model"


def test_adding_a_custom_model_generates_its_mom_code(console, admin_a, tenant_a):
    console.force_login(admin_a)
    add_page = console.get(url("cdp_datamodel_add"))
    # One organization: it is preselected.
    assert add_page.context["adminform"].form.initial["organization"] == tenant_a.organization.pk

    response = console.post(
        url("cdp_datamodel_add"),
        {
            "organization": tenant_a.organization.pk,
            "name": "Loyalty Card",
            "tags": ["SUPPORT_IGNORED_UPDATE_CFS"],
        },
    )

    model = DataModel.objects.get(organization=tenant_a.organization, name="Loyalty Card")
    assert model.kind == ModelKind.CUSTOM
    assert model.object_type == "custom-model"
    assert MOM_CODE_RE.match(model.mom_code)
    assert model.key_field == "refId"
    assert model.tags == ["SUPPORT_IGNORED_UPDATE_CFS"]
    # The new model's page opens, its momCode shown read-only.
    assert response.status_code == 302
    assert response["Location"] == url("cdp_datamodel_change", model.pk)
    page = console.get(response["Location"])
    form = page.context["adminform"].form
    assert "mom_code" not in form.fields and "name" not in form.fields
    assert model.mom_code in page.content.decode()


def test_a_duplicate_model_name_is_refused_on_the_form(console, admin_a, tenant_a):
    console.force_login(admin_a)

    response = console.post(
        url("cdp_datamodel_add"), {"organization": tenant_a.organization.pk, "name": "Membership"}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert (
        DataModel.objects.filter(organization=tenant_a.organization, name="Membership").count() == 1
    )


def test_a_member_of_two_organizations_chooses_where_to_add(console, tenant_a, tenant_b):
    user = console_member(tenant_a, "both@acme.test", "editor")
    services.member_add(organization=tenant_b.organization, user=user, role="viewer")
    console.force_login(user)

    form = console.get(url("cdp_datamodel_add")).context["adminform"].form
    # B only as a viewer: A is the only place this member may add a model.
    assert list(form.fields["organization"].queryset) == [tenant_a.organization]

    response = console.post(
        url("cdp_datamodel_add"), {"organization": tenant_b.organization.pk, "name": "Intruder"}
    )
    assert response.status_code == 200
    assert "organization" in response.context["adminform"].form.errors
    assert not DataModel.objects.filter(name="Intruder").exists()

    listing = console.get(url("cdp_datamodel_changelist"))
    # Two organizations: the list says whose each model is.
    assert "Globex" in listing.content.decode()


def test_the_fields_tab_adds_and_relabels_fields(console, admin_a, tenant_a):
    console.force_login(admin_a)
    change_url = url("cdp_datamodel_change", tenant_a.model.pk)
    page = console.get(change_url)
    formset = page.context["inline_admin_formsets"][0].formset
    existing = formset.forms[0]
    assert existing.fields["name"].disabled  # the name fixes the type and the wire group
    data = form_data(page)
    extra = len(formset.forms) - 1
    data.update(
        {
            f"field_definitions-{extra}-name": "customFieldDouble05",
            f"field_definitions-{extra}-label": "Score",
            "field_definitions-0-label": "Tier (renamed)",
            "field_definitions-0-required": "on",
        }
    )

    response = console.post(change_url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    added = FieldDefinition.objects.get(data_model=tenant_a.model, name="customFieldDouble05")
    assert (added.type, added.label, added.organization_id) == (
        "number",
        "Score",
        tenant_a.organization.pk,
    )
    first = FieldDefinition.objects.get(pk=existing.instance.pk)
    assert (first.label, first.required) == ("Tier (renamed)", True)
    shown = console.get(change_url).content.decode()
    assert "customFieldDoubles" in shown and "Score" in shown


def test_a_field_name_outside_the_patterns_is_refused_on_its_row(console, admin_a, tenant_a):
    console.force_login(admin_a)
    change_url = url("cdp_datamodel_change", tenant_a.model.pk)
    page = console.get(change_url)
    extra = len(page.context["inline_admin_formsets"][0].formset.forms) - 1
    data = form_data(page)
    data[f"field_definitions-{extra}-name"] = "customField1"
    before = FieldDefinition.objects.count()

    response = console.post(change_url, data)

    assert response.status_code == 200
    row = response.context["inline_admin_formsets"][0].formset.forms[extra]
    assert "customFieldNN" in str(row.errors["name"])
    assert FieldDefinition.objects.count() == before


def test_a_duplicate_field_is_refused_by_the_service_on_its_row(console, admin_a, tenant_a):
    console.force_login(admin_a)
    change_url = url("cdp_datamodel_change", tenant_a.model.pk)
    page = console.get(change_url)
    extra = len(page.context["inline_admin_formsets"][0].formset.forms) - 1
    data = form_data(page)
    data[f"field_definitions-{extra}-name"] = "customField01"
    data["field_definitions-1-label"] = "changed in the same post"

    response = console.post(change_url, data)

    assert response.status_code == 200
    row = response.context["inline_admin_formsets"][0].formset.forms[extra]
    assert "already exists" in str(row.errors)
    # The whole post was rolled back: the other row's change did not stick either.
    assert not FieldDefinition.objects.filter(label="changed in the same post").exists()
    assert (
        FieldDefinition.objects.filter(data_model=tenant_a.model, name="customField01").count() == 1
    )


def test_tags_of_a_custom_model_change_through_the_service(console, admin_a, tenant_a):
    console.force_login(admin_a)
    change_url = url("cdp_datamodel_change", tenant_a.model.pk)
    data = form_data(console.get(change_url))
    data.pop("tags")

    assert console.post(change_url, data).status_code == 302
    assert DataModel.objects.get(pk=tenant_a.model.pk).tags == []


def test_keep_history_is_switched_on_the_model_page_and_history_starts(
    console, admin_a, tenant_a, tenant_b
):
    """The tag offered on the model's page, saved, and honoured by the next write."""
    console.force_login(admin_a)
    change_url = url("cdp_datamodel_change", tenant_a.model.pk)
    page = console.get(change_url)
    assert 'value="KEEP_HISTORY"' in page.content.decode()
    data = form_data(page)
    data["tags"] = ["SUPPORT_IGNORED_UPDATE_CFS", "KEEP_HISTORY"]

    assert console.post(change_url, data).status_code == 302

    assert DataModel.objects.get(pk=tenant_a.model.pk).tags == [
        "SUPPORT_IGNORED_UPDATE_CFS",
        "KEEP_HISTORY",
    ]
    assert DataModel.objects.get(pk=tenant_b.model.pk).tags == ["SUPPORT_IGNORED_UPDATE_CFS"]
    api = ingest_for(tenant_a)
    assert api.post([api.entry("R-1", customField01="gold")]).json()["created"] == 1
    entry = RecordHistory.objects.get(organization=tenant_a.organization, key="R-1")
    assert entry.changes["customField01"] == {"from": None, "to": "gold"}


def test_a_system_models_tags_and_names_are_read_only(console, admin_a, tenant_a):
    console.force_login(admin_a)
    order = DataModel.objects.get(organization=tenant_a.organization, object_type="order")

    page = console.get(url("cdp_datamodel_change", order.pk))

    assert set(page.context["adminform"].form.fields) == set()
    html = page.content.decode()
    assert "orderId" in html
    # Tags in words, not as the stored list.
    events = DataModel.objects.get(organization=tenant_a.organization, object_type="user-event")
    html = console.get(url("cdp_datamodel_change", events.pk)).content.decode()
    assert events.tags == ["SUPPORT_IGNORED_UPDATE_CFS"]
    assert "SUPPORT_IGNORED_UPDATE_CFS" in html and "&quot;SUPPORT" not in html


def test_the_model_page_has_three_tabs_and_a_user_event_add_link(console, admin_a, tenant_a):
    console.force_login(admin_a)

    page = console.get(url("cdp_datamodel_change", tenant_a.model.pk)).content.decode()

    for element_id in ("tab-fields", "tab-user-events", "tab-ingestion", "model-tabs"):
        assert f'id="{element_id}"' in page
    assert "Data Manipulation &rsaquo; User Event" in page
    add = url("journeys_journeyeventconfig_add") + f"?data_model={tenant_a.model.pk}"
    assert f'href="{add}"' in page
    assert re.search(r'<script src="/static/console/console\.js"', page)
    assert "cdn" not in page.lower()


def test_two_new_fields_with_the_same_name_are_refused_on_the_first_save(
    console, admin_a, tenant_a
):
    console.force_login(admin_a)
    change_url = url("cdp_datamodel_change", tenant_a.model.pk)
    page = console.get(change_url)
    forms = page.context["inline_admin_formsets"][0].formset.forms
    # The page's one blank row, and a second as "Add another custom field" adds it.
    first, second = len(forms) - 1, len(forms)
    assert forms[first].instance.pk is None
    data = form_data(page)
    data.update(
        {
            "field_definitions-TOTAL_FORMS": str(len(forms) + 1),
            f"field_definitions-{first}-name": "customField03",
            f"field_definitions-{first}-label": "One",
            f"field_definitions-{second}-name": "customField03",
            f"field_definitions-{second}-label": "Two",
            "field_definitions-0-label": "changed in the same post",
        }
    )
    before = list(FieldDefinition.objects.values_list("pk", "name", "label"))

    response = console.post(change_url, data)

    assert response.status_code == 200
    rows = response.context["inline_admin_formsets"][0].formset.forms
    assert rows[first].errors["name"] == ["customField03 appears twice"]
    assert rows[second].errors["name"] == ["customField03 appears twice"]
    assert "customField03 appears twice" in response.content.decode()
    # Nothing saved: neither row, nor the other row's change.
    assert list(FieldDefinition.objects.values_list("pk", "name", "label")) == before
