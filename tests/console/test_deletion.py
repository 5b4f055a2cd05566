"""The Console deletes no User Event and no model (docs/decisions.md): their delete pages,
GET or POST, answer 403 with a page that says why and what to do instead, and every row
stays, in the member's organization and the other one. Another tenant's id is 404.

The events of a User Event deleted outside the Console (the ORM) are kept, and the event
list tells them from ingested ones."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from cdp import services
from cdp.models import DataModel, EntityRecord
from ingestion.console import console_ingest
from journeys.models import JourneyEventConfig, UserEvent
from journeys.services import journey_event_config_set_enabled
from tests.console.conftest import url, user_event_create


def _ingest(tenant, body: dict[str, Any]) -> None:
    response = console_ingest(
        api_key=tenant.api_key,
        body=json.dumps(body),
        init_data=False,
        request_id=uuid.uuid4().hex,
    )
    assert response.status == 200, response.body


def _populate(tenant) -> JourneyEventConfig:
    """A User Event with a generated event, a record, and an ingested event with the
    generated one's key."""
    config = user_event_create(tenant)
    _ingest(
        tenant,
        {
            "objectType": "user-event",
            "source": "CRM",
            "entries": [
                {
                    "source": tenant.mom_code,
                    "sourceId": "R-1",
                    "channel": "Online",
                    "eventCtg": "UserIdentity",
                    "eventName": "membership_created",
                    "eventAt": 1_700_000_000_000,
                }
            ],
        },
    )
    _ingest(
        tenant,
        {
            "objectType": "custom-model",
            "source": "CRM",
            "jeConfigId": config.config_id,
            "entries": [{"momCode": tenant.mom_code, "refId": "R-1"}],
        },
    )
    return config


def _rows() -> dict[str, list[dict[str, Any]]]:
    """Every row deleting could touch, in both organizations."""
    return {
        "models": list(DataModel.objects.order_by("pk").values()),
        "configs": list(JourneyEventConfig.objects.order_by("pk").values()),
        "events": list(UserEvent.objects.order_by("pk").values()),
        "records": list(EntityRecord.objects.order_by("pk").values()),
    }


def _text(response) -> str:
    """The page's words, without markup."""
    content = response.content.decode()
    return " ".join(re.sub(r"<[^>]+>", " ", content).split())


@pytest.fixture
def configs(tenant_a, tenant_b) -> dict[str, JourneyEventConfig]:
    return {"a": _populate(tenant_a), "b": _populate(tenant_b)}


@pytest.fixture
def signed_in(console, admin_a, configs):
    console.force_login(admin_a)
    return console


# --- User Events ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_user_event_is_not_deleted_and_the_page_says_to_disable_it(signed_in, configs, method):
    config = configs["a"]
    before = _rows()
    assert len([e for e in before["events"] if e["organization_id"] == config.organization_id]) == 2

    response = getattr(signed_in, method)(
        url("journeys_journeyeventconfig_delete", config.pk), {"post": "yes"}
    )

    assert response.status_code == 403
    text = _text(response)
    assert f"Cannot delete User Event “{config}”" in text
    assert "A User Event cannot be deleted" in text
    assert config.config_id in text and config.event_key in text
    assert "To stop it, disable it instead: uncheck Enable on its page and save" in text
    assert "“Disable selected User Events”" in text
    assert "its events are kept" in text
    assert "An editor, admin or owner" not in text  # an admin may disable it
    page = response.content.decode()
    assert url("journeys_journeyeventconfig_change", config.pk) in page
    assert url("journeys_userevent_changelist") + f"?config={config.pk}" in page
    assert "Yes, I’m sure" not in page
    assert _rows() == before


def test_a_disabled_user_event_page_says_it_is_disabled_already(signed_in, tenant_a, configs):
    config = journey_event_config_set_enabled(
        organization=tenant_a.organization, config=configs["a"], enabled=False
    )
    before = _rows()

    response = signed_in.get(url("journeys_journeyeventconfig_delete", config.pk))

    assert response.status_code == 403
    text = _text(response)
    assert "It is already disabled: it generates no event" in text
    assert "disable it instead" not in text
    assert _rows() == before


def test_a_viewer_is_told_who_can_disable_it(console, viewer_a, configs):
    console.force_login(viewer_a)
    before = _rows()

    response = console.post(url("journeys_journeyeventconfig_delete", configs["a"].pk))

    assert response.status_code == 403
    assert "An editor, admin or owner of its organization can disable it." in _text(response)
    assert _rows() == before


# --- models -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_model_with_records_is_not_deleted_and_the_page_says_why(
    signed_in, tenant_a, configs, method
):
    before = _rows()

    response = getattr(signed_in, method)(
        url("cdp_datamodel_delete", tenant_a.model.pk), {"post": "yes"}
    )

    assert response.status_code == 403
    text = _text(response)
    assert f"Cannot delete Custom Model “{tenant_a.model}”" in text
    assert (
        f"A model with records cannot be deleted: “{tenant_a.model}” holds 1 record, and "
        "deleting the model would delete its records, their history and its User Events."
    ) in text
    assert f"clients send its entries with momCode {tenant_a.mom_code}" in text
    assert "disable its 1 User Event instead (their events are kept)" in text
    page = response.content.decode()
    assert (
        url("journeys_journeyeventconfig_changelist")
        + f"?data_model__id__exact={tenant_a.model.pk}"
    ) in page
    assert "Yes, I’m sure" not in page
    assert _rows() == before


def test_a_model_without_records_is_not_deleted_either(signed_in, tenant_a, configs):
    empty = services.custom_model_create(organization=tenant_a.organization, name="Unused")
    before = _rows()

    response = signed_in.post(url("cdp_datamodel_delete", empty.pk), {"post": "yes"})

    assert response.status_code == 403
    text = _text(response)
    assert "A model with records" not in text
    assert (
        f"Custom models are not deleted: clients send its entries with momCode {empty.mom_code}"
        in text
    )
    assert "To stop the events it generates" not in text  # it has no User Event
    assert "a model that receives nothing costs nothing and can stay" in text
    assert _rows() == before


def test_a_system_model_is_not_deleted(signed_in, tenant_a, configs):
    system = DataModel.objects.get(organization=tenant_a.organization, object_type="user-event")
    before = _rows()

    response = signed_in.post(url("cdp_datamodel_delete", system.pk), {"post": "yes"})

    assert response.status_code == 403
    assert "is a system model: every organization has it" in _text(response)
    assert _rows() == before


# --- whoever asks -------------------------------------------------------------------------


def test_a_superuser_is_refused_too(console, superuser, tenant_b, configs):
    console.force_login(superuser)
    before = _rows()

    config = console.post(
        url("journeys_journeyeventconfig_delete", configs["b"].pk), {"post": "yes"}
    )
    model = console.post(url("cdp_datamodel_delete", tenant_b.model.pk), {"post": "yes"})

    assert (config.status_code, model.status_code) == (403, 403)
    assert "A User Event cannot be deleted" in _text(config)
    assert "A model with records cannot be deleted" in _text(model)
    assert _rows() == before


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_tenants_delete_pages_are_404(signed_in, tenant_b, configs, method):
    before = _rows()

    config = getattr(signed_in, method)(
        url("journeys_journeyeventconfig_delete", configs["b"].pk), {"post": "yes"}
    )
    model = getattr(signed_in, method)(
        url("cdp_datamodel_delete", tenant_b.model.pk), {"post": "yes"}
    )

    assert (config.status_code, model.status_code) == (404, 404)
    assert configs["b"].config_id not in config.content.decode()
    assert _rows() == before


@pytest.mark.parametrize(
    ("admin_name", "target"),
    [("journeys_journeyeventconfig", "config"), ("cdp_datamodel", "model")],
)
def test_the_lists_offer_no_bulk_delete(signed_in, tenant_a, configs, admin_name, target):
    pk = configs["a"].pk if target == "config" else tenant_a.model.pk
    before = _rows()

    page = signed_in.get(url(f"{admin_name}_changelist"))
    posted = signed_in.post(
        url(f"{admin_name}_changelist"),
        {"action": "delete_selected", "_selected_action": [pk], "post": "yes"},
    )

    assert page.status_code == 200
    assert 'value="delete_selected"' not in page.content.decode()
    assert posted.status_code in (200, 302)
    assert _rows() == before


# --- events of a User Event deleted outside the Console ---------------------------------


def test_the_event_list_tells_kept_events_from_ingested_ones(
    signed_in, tenant_a, tenant_b, configs
):
    JourneyEventConfig.objects.get(pk=configs["a"].pk).delete()  # the ORM (a shell, a script)

    response = signed_in.get(url("journeys_userevent_changelist"))

    assert response.status_code == 200
    events = {e.pk: e for e in response.context["cl"].result_list}
    mine = UserEvent.objects.filter(organization=tenant_a.organization)
    assert set(events) == set(mine.values_list("pk", flat=True))
    shown = sorted(response.context["cl"].model_admin.config_link(e) for e in events.values())
    assert shown == ["— (ingested)", "— (its User Event was deleted)"]
    # B's User Event and its events are untouched.
    assert (
        UserEvent.objects.filter(organization=tenant_b.organization, config=configs["b"]).count()
        == 1
    )
