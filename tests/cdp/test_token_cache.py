"""Verified tokens are cached briefly; anything that invalidates a token forgets it at once."""

import pickle

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cdp import keys, services
from tests.conftest import authenticate

INGEST = "/dhub-i/api/v1.0/ingest"


def ingest(client, tenant, token):
    body = {
        "objectType": "custom-model",
        "source": "CRM",
        "entries": [{"momCode": tenant.mom_code, "refId": "R-1"}],
    }
    return client.post(INGEST, body, format="json", HTTP_TOKEN=token, HTTP_API_KEY=tenant.raw_key)


def test_a_cached_token_authenticates_without_querying_the_access_tables(client, tenant_a):
    token = authenticate(client, tenant_a)
    services.token_verify(raw_token=token, raw_api_key=tenant_a.raw_key)

    with CaptureQueriesContext(connection) as queries:
        api_key = services.token_verify(raw_token=token, raw_api_key=tenant_a.raw_key)

    assert len(queries) == 0
    assert api_key.pk == tenant_a.api_key.pk
    assert api_key.organization.group_key == tenant_a.group_key
    assert api_key.membership.user.username == tenant_a.username


def test_the_cache_entry_holds_no_secret(client, tenant_a):
    token = authenticate(client, tenant_a)
    services.token_verify(raw_token=token, raw_api_key=tenant_a.raw_key)

    entry = cache.get("cdp:token:" + keys.digest(token))
    dumped = pickle.dumps(entry)
    assert entry is not None
    for secret in (token.encode(), tenant_a.raw_key.encode(), tenant_a.user.password.encode()):
        assert secret not in dumped


def test_a_cached_token_still_needs_its_own_api_key(client, tenant_a, tenant_b):
    token = authenticate(client, tenant_a)
    services.token_verify(raw_token=token, raw_api_key=tenant_a.raw_key)

    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=token, raw_api_key=tenant_b.raw_key)


@pytest.mark.parametrize(
    "invalidate",
    [
        pytest.param(
            lambda t: services.api_key_revoke(organization=t.organization, api_key_id=t.api_key.pk),
            id="key revoked",
        ),
        pytest.param(
            lambda t: setattr(t.organization, "is_active", False) or t.organization.save(),
            id="organization deactivated",
        ),
        pytest.param(
            lambda t: setattr(t.user, "is_active", False) or t.user.save(), id="user deactivated"
        ),
        pytest.param(lambda t: t.membership.delete(), id="member removed"),
    ],
)
def test_invalidation_takes_effect_at_once(client, tenant_a, tenant_b, invalidate):
    token_a, token_b = authenticate(client, tenant_a), authenticate(client, tenant_b)
    assert ingest(client, tenant_a, token_a).status_code == 200
    assert ingest(client, tenant_b, token_b).status_code == 200

    invalidate(tenant_a)

    refused = ingest(client, tenant_a, token_a)
    assert refused.status_code == 401
    assert refused.json()["message"] == "Invalid token or API key"
    # The other organization's cached token is untouched.
    assert ingest(client, tenant_b, token_b).status_code == 200


def test_the_cache_keeps_a_token_five_seconds_by_default():
    from cdp import settings as project_settings

    assert project_settings.CDP_TOKEN_CACHE_SECONDS == 5


def test_a_deactivation_around_the_services_is_seen_within_the_cache_lifetime(
    client, tenant_a, tenant_b, settings
):
    """A bulk update sends no signal: the cached token is refused once its entry ends."""
    import time

    from cdp.models import Organization

    settings.CDP_TOKEN_CACHE_SECONDS = 1
    token_a, token_b = authenticate(client, tenant_a), authenticate(client, tenant_b)
    assert ingest(client, tenant_a, token_a).json()["created"] == 1
    Organization.objects.filter(pk=tenant_a.organization.pk).update(is_active=False)

    time.sleep(1.2)
    refused = ingest(client, tenant_a, token_a)

    assert (refused.status_code, refused.json()["message"]) == (401, "Invalid token or API key")
    assert ingest(client, tenant_b, token_b).json()["created"] == 1


def test_a_refused_token_is_refused_again_without_a_query(client, tenant_a):
    bad = {"TOKEN": "no-such-token", "API_KEY": tenant_a.raw_key}
    first = client.post(
        "/dhub-i/api/v1.0/ingest", data="{}", content_type="application/json", headers=bad
    )
    with CaptureQueriesContext(connection) as captured:
        again = client.post(
            "/dhub-i/api/v1.0/ingest", data="{}", content_type="application/json", headers=bad
        )

    assert first.status_code == again.status_code == 401
    assert again.json()["message"] == "Invalid token or API key"
    assert captured.captured_queries == []


def test_refused_tokens_are_limited_per_client_address(client, tenant_a, tenant_b, settings):
    """Past the window of refused tokens from one address, tokens a worker has not seen
    answer 429 before any query; other addresses and known tokens are not affected."""
    from cdp import gate

    settings.CDP_REFUSED_TOKEN_RATE_LIMITS = [(3, 3600)]
    token_b = authenticate(client, tenant_b)
    gate._known.clear()

    def send(token, tenant, address):
        return client.post(
            INGEST,
            {"objectType": "custom-model", "source": "CRM", "entries": [{"refId": "x"}]},
            format="json",
            HTTP_TOKEN=token,
            HTTP_API_KEY=tenant.raw_key,
            REMOTE_ADDR=address,
        )

    refused = [send(f"guess-{i}", tenant_a, "198.51.100.7") for i in range(3)]
    assert [r.status_code for r in refused] == [401, 401, 401]
    with CaptureQueriesContext(connection) as captured:
        limited = send("guess-4", tenant_a, "198.51.100.7")

    assert limited.status_code == 429
    assert limited.json()["message"] == "Rate limit exceeded: 3 requests per hour of refused tokens"
    assert limited["Retry-After"]
    assert captured.captured_queries == []
    # A valid token from another address gets in, and is not counted as refused.
    admitted = send(token_b, tenant_b, "198.51.100.8")
    assert (admitted.status_code, admitted.json()["errorCode"]) == (400, "INVALID_ENTRIES")
    assert send("guess-5", tenant_a, "198.51.100.8").status_code == 401
