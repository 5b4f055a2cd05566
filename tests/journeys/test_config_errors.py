"""Config errors of an ingest request (DESIGN §6 checks 11–12) and the validation of the
User Event configuration services (DESIGN §7)."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

from cdp import services
from cdp.models import EntityRecord
from ingestion.models import IngestionRequest
from journeys.models import JourneyEventConfig, UserEvent
from journeys.services import (
    journey_event_config_create,
    journey_event_config_set_enabled,
    journey_event_config_update,
)
from journeys.user_event_settings import UserEventSettings, user_event_settings_from_wire
from tests.journeys.conftest import config_create, ingest, member, system_model

# --- the ingest request names a config it cannot use ----------------------------------


def assert_rejected_and_nothing_stored(response, tenant, error_code: str) -> dict:
    body = response.json()
    assert response.status_code == 400, body
    assert body["success"] is False
    assert body["errorCode"] == error_code
    assert response["X-Request-Id"] == body["requestId"]
    assert not EntityRecord.objects.filter(organization=tenant.organization).exists()
    assert not UserEvent.objects.filter(organization=tenant.organization).exists()
    log = IngestionRequest.objects.get(organization=tenant.organization)
    assert log.request_id == body["requestId"]
    assert (log.status, log.error_code) == (400, error_code)
    assert log.message == body["message"]
    return body


def test_unknown_config_id(client, tenant_a, token_a, created_config):
    response = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id="no-such-config"
    )

    body = assert_rejected_and_nothing_stored(response, tenant_a, "INVALID_JOURNEY_EVENT")
    assert "jeConfigId" in body["message"]
    assert "no-such-config" in body["message"]


def test_unknown_event_key(client, tenant_a, token_a, created_config):
    response = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], event_key="CJE-NOPE.NOPE"
    )

    body = assert_rejected_and_nothing_stored(response, tenant_a, "INVALID_JOURNEY_EVENT")
    assert "jeEventKey" in body["message"]


def test_known_id_with_unknown_key(client, tenant_a, token_a, created_config):
    response = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1")],
        config_id=created_config.config_id,
        event_key="CJE-NOPE.NOPE",
    )

    body = assert_rejected_and_nothing_stored(response, tenant_a, "INVALID_JOURNEY_EVENT")
    assert "jeEventKey" in body["message"]


def test_id_and_key_of_two_different_configs(client, tenant_a, token_a, created_config):
    other = config_create(tenant_a, "Changed", event_name="membership_changed")

    response = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1")],
        config_id=created_config.config_id,
        event_key=other.event_key,
    )

    body = assert_rejected_and_nothing_stored(response, tenant_a, "INVALID_JOURNEY_EVENT")
    assert "two different" in body["message"]


def test_config_of_another_custom_model(client, tenant_a, token_a):
    loyalty = services.custom_model_create(organization=tenant_a.organization, name="Loyalty")
    config = config_create(tenant_a, data_model=loyalty, event_name="loyalty_created")

    response = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id=config.config_id
    )

    body = assert_rejected_and_nothing_stored(response, tenant_a, "INVALID_JOURNEY_EVENT")
    assert config.config_id in body["message"]


def test_system_model_config_used_with_custom_model_entries(client, tenant_a, token_a):
    config = config_create(
        tenant_a, data_model=system_model(tenant_a, "customer-identity"), event_name="c"
    )

    response = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], event_key=config.event_key
    )

    assert_rejected_and_nothing_stored(response, tenant_a, "INVALID_JOURNEY_EVENT")


def test_custom_model_config_used_with_a_system_object_type(
    client, tenant_a, token_a, created_config
):
    response = ingest(
        client,
        tenant_a,
        token_a,
        [{"customerId": "C-1", "email": "c@acme.test", "fullName": "C"}],
        object_type="customer-identity",
        config_id=created_config.config_id,
    )

    assert_rejected_and_nothing_stored(response, tenant_a, "INVALID_JOURNEY_EVENT")


def test_another_organizations_config_is_answered_as_unknown(client, tenant_a, tenant_b, token_a):
    foreign = config_create(tenant_b)

    by_id = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id=foreign.config_id
    )
    unknown_id = "f" * 32 + "-Created-AAAAAAAAAAAAAAA"
    unknown = ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id=unknown_id)
    by_key = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], event_key=foreign.event_key
    )

    for response in (by_id, unknown, by_key):
        assert response.status_code == 400
        assert response.json()["errorCode"] == "INVALID_JOURNEY_EVENT"
    assert by_id.json()["message"] == unknown.json()["message"].replace(
        unknown_id, foreign.config_id
    )
    assert by_key.json()["message"] == f"Unknown jeEventKey: {foreign.event_key}"
    assert not EntityRecord.objects.exists()
    assert not UserEvent.objects.exists()
    assert IngestionRequest.objects.filter(organization=tenant_a.organization).count() == 3
    assert not IngestionRequest.objects.filter(organization=tenant_b.organization).exists()


def test_disabled_config(client, tenant_a, token_a, created_config):
    journey_event_config_set_enabled(
        organization=tenant_a.organization, config=created_config, enabled=False
    )

    response = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], event_key=created_config.event_key
    )

    body = assert_rejected_and_nothing_stored(response, tenant_a, "JOURNEY_EVENT_DISABLED")
    assert created_config.config_id in body["message"]


def test_reenabled_config_fires_again(client, tenant_a, token_a, created_config):
    organization = tenant_a.organization
    journey_event_config_set_enabled(
        organization=organization, config=created_config, enabled=False
    )
    journey_event_config_set_enabled(organization=organization, config=created_config, enabled=True)

    body = ingest(
        client, tenant_a, token_a, [member(tenant_a, "R-1")], config_id=created_config.config_id
    ).json()

    assert body["events"]["generated"] == 1


def test_object_type_is_checked_before_the_config(client, tenant_a, token_a):
    response = ingest(
        client, tenant_a, token_a, [{"x": 1}], object_type="no-such-type", config_id="nope"
    )

    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_OBJECT_TYPE"


def test_disabled_config_is_checked_before_ignored_update_cfs(
    client, tenant_a, token_a, created_config
):
    journey_event_config_set_enabled(
        organization=tenant_a.organization, config=created_config, enabled=False
    )

    response = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1")],
        config_id=created_config.config_id,
        ignoredUpdateCfs=["customField99"],
    )

    assert response.json()["errorCode"] == "JOURNEY_EVENT_DISABLED"


# --- service validation ---------------------------------------------------------------

VALID = {"event_name": "membership_created", "category": "UserIdentity"}


def settings_of(**settings) -> UserEventSettings:
    return UserEventSettings(**{**VALID, **settings})


def create(tenant, trigger: str = "Created", **settings):
    return journey_event_config_create(
        organization=tenant.organization,
        data_model=tenant.model,
        trigger=trigger,
        settings=settings_of(**settings),
    )


def messages_of(error: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return error.value.messages


@pytest.mark.parametrize(
    ("settings", "path", "fragment"),
    [
        ({"event_name": None}, "eventName", "required"),
        ({"event_name": ""}, "eventName", "required"),
        ({"category": "Marketing"}, "category", "'Marketing'"),
        ({"category": None}, "category", "None"),
        ({"channel": "Email"}, "channel", "'Email'"),
        ({"event_time": "customFieldTimestamp99"}, "eventTime", "unknown field"),
        ({"event_time": "customField01"}, "eventTime", "not timestamp"),
        (
            {
                "filters": {
                    "conditions": [{"field": "customField01", "operator": "like", "value": 1}]
                }
            },
            "filter.conditions[0].operator",
            "'like'",
        ),
        (
            {
                "filters": {
                    "conditions": [{"field": "customFieldBool01", "operator": "gt", "value": 1}]
                }
            },
            "filter.conditions[0].operator",
            "does not apply",
        ),
        (
            {"filters": {"match": "most", "conditions": []}},
            "filter.match",
            "'most'",
        ),
        (
            {"update_values": [{"target": "value", "value": 1}, {"target": "score", "value": 2}]},
            "updateValues[1].target",
            "'score'",
        ),
        (
            {"update_values": [{"target": "value", "field": "customField99"}]},
            "updateValues[0].field",
            "unknown field",
        ),
        ({"enabled": "yes"}, "enabled", "true or false"),
    ],
)
def test_create_refuses_bad_settings_naming_the_path(tenant_a, settings, path, fragment):
    with pytest.raises(ValidationError) as error:
        create(tenant_a, **settings)

    matching = [m for m in messages_of(error) if m.startswith(f"{path}:")]
    assert matching, messages_of(error)
    assert fragment in matching[0]
    assert not JourneyEventConfig.objects.exists()


def test_create_lists_every_problem(tenant_a):
    with pytest.raises(ValidationError) as error:
        journey_event_config_create(
            organization=tenant_a.organization,
            data_model=tenant_a.model,
            trigger="Deleted",
            # eventName and category left out, as a provisioning file may.
            settings=user_event_settings_from_wire(
                {"channel": "Fax", "eventTime": "customFieldLong01"}
            ),
        )

    paths = sorted(m.split(":")[0] for m in messages_of(error))
    assert paths == ["category", "channel", "eventName", "eventTime", "trigger"]


def test_create_refuses_another_organizations_model(tenant_a, tenant_b):
    with pytest.raises(ValidationError):
        journey_event_config_create(
            organization=tenant_a.organization,
            data_model=tenant_b.model,
            trigger="Created",
            settings=settings_of(),
        )
    assert not JourneyEventConfig.objects.exists()


@pytest.mark.parametrize("trigger", ["Created", "Changed"])
def test_generated_ids_have_the_documented_shape(tenant_a, trigger):
    configs = [create(tenant_a, trigger) for _ in range(3)]

    id_shape = re.compile(rf"{tenant_a.group_key}-{trigger}-[A-Za-z0-9]{{15}}")
    key_shape = re.compile(r"CJE-[A-Z0-9]{10}\.[A-Z0-9]{10}")
    for config in configs:
        assert id_shape.fullmatch(config.config_id), config.config_id
        assert key_shape.fullmatch(config.event_key), config.event_key
        assert config.organization == tenant_a.organization
        assert config.trigger == trigger
    assert len({c.config_id for c in configs}) == 3
    assert len({c.event_key for c in configs}) == 3


def test_create_stores_the_settings(tenant_a):
    config = create(
        tenant_a,
        channel="Online",
        sub_category="signup",
        event_time="customFieldTimestamp01",
        filters={
            "match": "any",
            "conditions": [{"field": "customField01", "operator": "is_empty"}],
        },
        update_values=[{"target": "note", "value": "hi"}],
        enabled=False,
    )

    config.refresh_from_db()
    assert config.event_name == "membership_created"
    assert (config.channel, config.category, config.sub_category) == (
        "Online",
        "UserIdentity",
        "signup",
    )
    assert config.event_time == "customFieldTimestamp01"
    assert config.filters["match"] == "any"
    assert config.update_values == [{"target": "note", "value": "hi"}]
    assert config.enabled is False


def test_create_defaults(tenant_a):
    config = create(tenant_a)

    config.refresh_from_db()
    assert (config.event_time, config.channel, config.sub_category) == ("ingested", "None", "")
    assert (config.filters, config.update_values, config.enabled) == ({}, [], True)


def test_update_keeps_both_ids_and_the_trigger(client, tenant_a, token_a):
    config = create(tenant_a, "Changed", event_name="old_name")
    config_id, event_key = config.config_id, config.event_key

    updated, changed = journey_event_config_update(
        organization=tenant_a.organization,
        config=config,
        settings=settings_of(event_name="new_name", channel="Offline"),
    )

    assert changed is True
    updated.refresh_from_db()
    assert (updated.config_id, updated.event_key, updated.trigger) == (
        config_id,
        event_key,
        "Changed",
    )
    assert (updated.event_name, updated.channel) == ("new_name", "Offline")

    # Clients keep using the IDs they hold; the event follows the new settings.
    ingest(client, tenant_a, token_a, [member(tenant_a, "R-1")])
    body = ingest(
        client,
        tenant_a,
        token_a,
        [member(tenant_a, "R-1", customerId="C-1")],
        config_id=config_id,
        event_key=event_key,
    ).json()
    assert body["events"]["generated"] == 1
    [event] = UserEvent.objects.filter(organization=tenant_a.organization)
    assert (event.event_name, event.channel, event.condition) == ("new_name", "Offline", "Changed")


def test_update_resets_absent_settings_to_their_defaults_but_keeps_enabled(tenant_a):
    config = create(
        tenant_a,
        channel="Online",
        sub_category="signup",
        event_time="customFieldTimestamp01",
        filters={"conditions": [{"field": "customField01", "operator": "is_empty"}]},
        update_values=[{"target": "note", "value": "hi"}],
    )
    journey_event_config_set_enabled(
        organization=tenant_a.organization, config=config, enabled=False
    )

    # The settings are replaced as a whole, as a provisioning file declares them: a
    # setting left out takes the value a new User Event gets.
    _, changed = journey_event_config_update(
        organization=tenant_a.organization, config=config, settings=settings_of()
    )

    assert changed is True
    config.refresh_from_db()
    assert (config.channel, config.sub_category, config.event_time) == ("None", "", "ingested")
    assert (config.filters, config.update_values) == ({}, [])
    assert config.enabled is False


def test_update_without_changes_reports_none(tenant_a):
    config = create(tenant_a, channel="Online")

    _, changed = journey_event_config_update(
        organization=tenant_a.organization, config=config, settings=settings_of(channel="Online")
    )

    assert changed is False


def test_update_refuses_bad_settings_and_keeps_the_stored_ones(tenant_a):
    config = create(tenant_a)

    with pytest.raises(ValidationError) as error:
        journey_event_config_update(
            organization=tenant_a.organization,
            config=config,
            settings=settings_of(event_name="renamed", channel="Fax"),
        )

    assert any(m.startswith("channel:") for m in messages_of(error))
    config.refresh_from_db()
    assert config.event_name == "membership_created"


def test_another_organization_cannot_update_or_disable_a_config(tenant_a, tenant_b):
    config = create(tenant_a)

    with pytest.raises(ValidationError):
        journey_event_config_update(
            organization=tenant_b.organization, config=config, settings=settings_of()
        )
    with pytest.raises(ValidationError):
        journey_event_config_set_enabled(
            organization=tenant_b.organization, config=config, enabled=False
        )

    config.refresh_from_db()
    assert config.enabled is True
