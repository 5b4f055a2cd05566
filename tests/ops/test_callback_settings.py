"""Callback settings: the secret is generated once and shown once, the URL passes the SSRF
guard unless CDP_CALLBACK_ALLOW_PRIVATE is on."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

from cdp.callback_settings import callback_secret_rotate, callback_settings_set
from cdp.models import Organization

PUBLIC_URL = "https://93.184.215.14/cdp-callback"  # an address literal: no DNS needed


def stored(organization: Organization) -> tuple[str, bool, str]:
    organization.refresh_from_db()
    return organization.callback_url, organization.callback_enabled, organization.callback_secret


def test_first_url_generates_a_secret_returned_once(tenant_a, tenant_b):
    secret = callback_settings_set(organization=tenant_a.organization, url=PUBLIC_URL, enabled=True)
    again = callback_settings_set(
        organization=tenant_a.organization, url=PUBLIC_URL + "/v2", enabled=False
    )

    assert secret is not None and re.fullmatch(r"[0-9a-f]{64}", secret)
    assert again is None
    assert stored(tenant_a.organization) == (PUBLIC_URL + "/v2", False, secret)
    assert tenant_a.organization.callback_secret_set_at is not None
    assert stored(tenant_b.organization) == ("", False, "")


def test_rotation_replaces_the_secret(tenant_a):
    first = callback_settings_set(organization=tenant_a.organization, url=PUBLIC_URL, enabled=True)

    second = callback_secret_rotate(organization=tenant_a.organization)

    assert second != first
    assert stored(tenant_a.organization)[2] == second


def test_enabling_needs_a_url(tenant_a):
    with pytest.raises(ValidationError) as refused:
        callback_settings_set(organization=tenant_a.organization, url="  ", enabled=True)

    assert "enabled" in refused.value.message_dict
    assert stored(tenant_a.organization) == ("", False, "")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://partner.example/cb", "must start with https://"),
        ("https://user:pw@partner.example/cb", "must not contain credentials"),
        ("https:///cb", "must name a host"),
        ("https://partner.example/a b", "must not contain spaces"),
        ("https://partner.example:99999/cb", "is not a valid URL"),
    ],
)
def test_malformed_urls_are_refused(tenant_a, url, message):
    with pytest.raises(ValidationError) as refused:
        callback_settings_set(organization=tenant_a.organization, url=url, enabled=True)

    assert message in refused.value.message_dict["url"][0]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8000/cb", "loopback"),
        ("http://localhost/cb", "loopback"),
        ("http://[::1]/cb", "loopback"),
        ("http://[::ffff:127.0.0.1]/cb", "loopback"),
        ("http://10.1.2.3/cb", "private"),
        ("http://192.168.0.10/cb", "private"),
        ("http://172.16.5.4/cb", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/cb", "link-local"),
        ("http://224.0.0.1/cb", "multicast"),
        ("http://0.0.0.0/cb", "unspecified"),
        ("http://240.0.0.1/cb", "reserved"),
        ("http://100.64.0.1/cb", "non-public"),
        # IPv6 addresses that carry a non-public IPv4 one: 6to4, NAT64, IPv4-compatible.
        ("http://[2002:7f00:1::]/cb", "loopback"),
        ("http://[2002:a01:203::1]/cb", "private"),
        ("http://[2002:a9fe:a9fe::]/latest/meta-data", "link-local"),
        ("http://[64:ff9b::10.0.0.1]/cb", "private"),
        ("http://[64:ff9b::127.0.0.1]/cb", "loopback"),
        ("http://[::10.0.0.1]/cb", "private"),
        ("http://[::ffff:169.254.169.254]/cb", "link-local"),
    ],
)
def test_ssrf_guard_refuses_non_public_addresses_when_the_setting_is_off(
    tenant_a, settings, url, kind
):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False

    with pytest.raises(ValidationError) as refused:
        callback_settings_set(organization=tenant_a.organization, url=url, enabled=True)

    assert f"a {kind} address" in refused.value.message_dict["url"][0]
    assert stored(tenant_a.organization) == ("", False, "")


def test_ssrf_guard_accepts_public_addresses(tenant_a, settings):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False

    secret = callback_settings_set(organization=tenant_a.organization, url=PUBLIC_URL, enabled=True)

    assert secret is not None
    assert stored(tenant_a.organization)[:2] == (PUBLIC_URL, True)


@pytest.mark.parametrize("url", ["http://[2002:808:808::1]/cb"])
def test_ssrf_guard_accepts_ipv6_addresses_that_carry_a_public_ipv4(tenant_a, settings, url):
    """6to4 of a public address is public. (NAT64's 64:ff9b::/96 lies in ::/8, reserved:
    refused whatever it carries.)"""
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False

    callback_settings_set(organization=tenant_a.organization, url=url, enabled=True)

    assert stored(tenant_a.organization)[:2] == (url, True)


def test_unresolvable_host_is_refused_when_the_guard_is_on(tenant_a, settings):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False

    with pytest.raises(ValidationError) as refused:
        callback_settings_set(
            organization=tenant_a.organization, url="https://no-such-host.invalid/cb", enabled=True
        )

    assert "does not resolve" in refused.value.message_dict["url"][0]


def test_loopback_is_allowed_when_the_setting_is_on(tenant_a, settings):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = True

    callback_settings_set(
        organization=tenant_a.organization, url="http://127.0.0.1:9/cb", enabled=True
    )

    assert stored(tenant_a.organization)[:2] == ("http://127.0.0.1:9/cb", True)
