"""The brute-force limit per client address, directly and behind trusted proxies."""

import pytest

URL = "/api/accounts/authen"


@pytest.fixture
def one_failure_allowed(settings):
    settings.CDP_AUTHEN_RATE_LIMITS = [(1, 60)]


def fail(client, username: str, **meta):
    return client.post(
        URL,
        {"username": username, "apiKey": "0" * 40, "cdpGKey": "0" * 32},
        format="json",
        **meta,
    )


def test_without_trusted_proxies_x_forwarded_for_is_ignored(client, db, one_failure_allowed):
    assert (
        fail(client, "a@x.test", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1").status_code
        == 401
    )

    # A different claimed address does not escape the limit of the real one.
    refused = fail(client, "b@x.test", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="2.2.2.2")
    assert refused.status_code == 429
    assert refused.json()["errorCode"] == "RATE_LIMITED"


def test_behind_one_proxy_each_client_address_has_its_own_limit(
    client, db, one_failure_allowed, settings
):
    settings.CDP_TRUSTED_PROXIES = 1
    proxy = {"REMOTE_ADDR": "127.0.0.1"}

    assert fail(client, "a@x.test", HTTP_X_FORWARDED_FOR="1.1.1.1", **proxy).status_code == 401
    # Another client behind the same proxy is not locked out by the first one's failure.
    assert fail(client, "b@x.test", HTTP_X_FORWARDED_FOR="2.2.2.2", **proxy).status_code == 401
    # The first client is, even when it puts a made-up address in front of the real one.
    spoofed = fail(client, "c@x.test", HTTP_X_FORWARDED_FOR="9.9.9.9, 1.1.1.1", **proxy)
    assert spoofed.status_code == 429
    assert spoofed.json()["errorCode"] == "RATE_LIMITED"
    assert spoofed["Retry-After"] == spoofed["X-Rate-Limit-Retry-After-Seconds"]
