"""Console sign-in is limited per (email, client address) with django-axes: after five
wrong passwords the pair is locked out, the right password included, with a clear page;
the same email from another address, and another member, still sign in."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.console.conftest import PASSWORD, url

LOGIN = url("login")
WRONG = "not-the-password"


def _sign_in(client: Client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(
        LOGIN,
        {"username": username, "password": password, "next": url("index")},
        REMOTE_ADDR=address,
    )


def signed_in(client: Client, user) -> bool:
    """Whether `client`'s session now belongs to `user` (a redirect alone proves nothing)."""
    return client.session.get("_auth_user_id") == str(user.pk)


@pytest.fixture(autouse=True)
def _fresh_attempts(db):
    from axes.models import AccessAttempt

    AccessAttempt.objects.all().delete()


def test_five_wrong_passwords_lock_the_email_from_that_address(console, admin_a, admin_b):
    for _ in range(4):
        refused = _sign_in(console, admin_a.username, WRONG)
        assert refused.status_code == 200
        assert "Please enter the correct" in refused.content.decode()

    fifth = _sign_in(console, admin_a.username, WRONG)
    right = _sign_in(console, admin_a.username, PASSWORD)

    for locked in (fifth, right):
        assert locked.status_code == 429
        page = locked.content.decode()
        assert "Too many failed sign-ins" in page
        assert "after 5 wrong passwords" in page
    assert "_auth_user_id" not in console.session
    # Another member from the same address, and the same member from elsewhere, sign in.
    other_member, elsewhere = Client(), Client()
    assert _sign_in(other_member, admin_b.username, PASSWORD).status_code == 302
    assert signed_in(other_member, admin_b)
    assert (
        _sign_in(elsewhere, admin_a.username, PASSWORD, address="198.51.100.9").status_code == 302
    )
    assert signed_in(elsewhere, admin_a)


def test_a_right_password_before_the_limit_resets_the_count(console, admin_a):
    for _ in range(4):
        _sign_in(console, admin_a.username, WRONG)
    assert _sign_in(console, admin_a.username, PASSWORD).status_code == 302
    assert signed_in(console, admin_a)
    console.logout()

    for _ in range(4):
        assert _sign_in(console, admin_a.username, WRONG).status_code == 200
        assert not signed_in(console, admin_a)
    assert _sign_in(console, admin_a.username, PASSWORD).status_code == 302
    assert signed_in(console, admin_a)


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_clients(console, admin_a, settings):
    settings.CDP_TRUSTED_PROXIES = 1
    for _ in range(5):
        console.post(
            LOGIN,
            {"username": admin_a.username, "password": WRONG},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="203.0.113.7",
        )
    # The proxy's own address is the same for every client: another client is not locked.
    other_client = Client()
    other = other_client.post(
        LOGIN,
        {"username": admin_a.username, "password": PASSWORD, "next": url("index")},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.9",
    )
    assert other.status_code == 302
    assert signed_in(other_client, admin_a)
    # The locked-out client itself is refused, though its proxy address is the same.
    locked = console.post(
        LOGIN,
        {"username": admin_a.username, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()
