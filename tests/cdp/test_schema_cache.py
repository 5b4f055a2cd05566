"""Each worker keeps an organization's schema (models, fields, User Events) between
requests, and drops its copy as soon as any of them changes in that organization."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from cdp import schema_cache, selectors, services
from tests.conftest import authenticate

INGEST = "/dhub-i/api/v1.0/ingest"


def test_a_current_copy_is_served_without_queries(tenant_a):
    first = selectors.organization_models(organization=tenant_a.organization)

    with CaptureQueriesContext(connection) as queries:
        second = selectors.organization_models(organization=tenant_a.organization)

    assert len(queries) == 0
    assert second is first
    assert set(second.custom) == {tenant_a.mom_code}
    assert set(second.system) == set(services.SYSTEM_OBJECT_TYPES)


def test_a_new_field_is_seen_by_the_next_request(client, tenant_a, tenant_b):
    token = authenticate(client, tenant_a)
    body = {
        "objectType": "custom-model",
        "source": "CRM",
        "entries": [{"momCode": tenant_a.mom_code, "refId": "R-1", "customField05": "x"}],
    }

    def post():
        return client.post(
            INGEST, body, format="json", HTTP_TOKEN=token, HTTP_API_KEY=tenant_a.raw_key
        ).json()

    assert post()["results"][0]["errorMessage"] == "Unknown field: customField05"
    services.field_definition_create(
        organization=tenant_a.organization, data_model=tenant_a.model, name="customField05"
    )

    assert post()["results"][0]["action"] == "created"


def test_a_new_model_is_seen_at_once_and_other_organizations_keep_their_copy(tenant_a, tenant_b):
    copy_b = selectors.organization_models(organization=tenant_b.organization)
    selectors.organization_models(organization=tenant_a.organization)

    new = services.custom_model_create(organization=tenant_a.organization, name="Visit")

    assert new.mom_code in selectors.organization_models(organization=tenant_a.organization).custom
    assert selectors.organization_models(organization=tenant_b.organization) is copy_b


def test_a_lost_version_token_invalidates_every_copy(tenant_a):
    from django.core.cache import cache

    first = selectors.organization_models(organization=tenant_a.organization)
    cache.delete(schema_cache.schema_version_key(tenant_a.organization.pk))

    assert selectors.organization_models(organization=tenant_a.organization) is not first
    assert schema_cache.schema_version(tenant_a.organization.pk)


def test_a_disabled_user_event_is_refused_by_the_next_request(client, tenant_a, tenant_b):
    from journeys.services import journey_event_config_create, journey_event_config_set_enabled
    from journeys.user_event_settings import UserEventSettings

    configs = {
        t.organization.pk: journey_event_config_create(
            organization=t.organization,
            data_model=t.model,
            trigger="Created",
            settings=UserEventSettings(event_name="member_created", category="UserIdentity"),
        )
        for t in (tenant_a, tenant_b)
    }

    def post(tenant, key):
        body = {
            "objectType": "custom-model",
            "source": "CRM",
            "jeConfigId": configs[tenant.organization.pk].config_id,
            "entries": [{"momCode": tenant.mom_code, "refId": key}],
        }
        token = authenticate(client, tenant)
        return client.post(
            INGEST, body, format="json", HTTP_TOKEN=token, HTTP_API_KEY=tenant.raw_key
        ).json()

    assert post(tenant_a, "R-1")["events"]["generated"] == 1
    assert post(tenant_b, "R-1")["events"]["generated"] == 1  # B's copy is loaded too
    journey_event_config_set_enabled(
        organization=tenant_a.organization, config=configs[tenant_a.organization.pk], enabled=False
    )

    refused = post(tenant_a, "R-2")
    assert (refused["errorCode"], refused["message"]) == (
        "JOURNEY_EVENT_DISABLED",
        f"User Event {configs[tenant_a.organization.pk].config_id} is disabled",
    )
    assert post(tenant_b, "R-2")["events"]["generated"] == 1


def test_the_shared_store_connects_with_the_caches_options():
    """A socket timeout (or a password) set for the cache holds for the shared store too;
    the cache's own options (its serializer) are not redis-py's and stay out."""
    from cdp.shared_store import REDIS_BACKEND, store_for

    store = store_for(
        {
            "BACKEND": REDIS_BACKEND,
            "LOCATION": "redis://127.0.0.1:6379/15",
            "KEY_PREFIX": "p",
            "OPTIONS": {
                "socket_timeout": 2.5,
                "socket_connect_timeout": 1,
                "serializer": "django.core.cache.backends.redis.RedisSerializer",
            },
        }
    )

    kwargs = store.client().connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2.5, 1)
    assert "serializer" not in kwargs
    assert store.key("k") == "p:k"
