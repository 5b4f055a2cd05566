"""Shared fixtures. Every tenant test gets two organizations, so it can prove isolation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from cdp import services
from cdp.models import ApiKey, DataModel, Membership, Organization


@dataclass
class Tenant:
    organization: Organization
    user: object
    membership: Membership
    api_key: ApiKey
    raw_key: str
    model: DataModel  # a custom model with a few custom fields

    @property
    def group_key(self) -> str:
        return self.organization.group_key

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def mom_code(self) -> str:
        return self.model.mom_code


CUSTOM_FIELDS = [
    ("customField01", "Tier"),
    ("customField02", "Nickname"),
    ("customFieldLong01", "Points"),
    ("customFieldDouble01", "Balance"),
    ("customFieldBool01", "Opted in"),
    ("customFieldTimestamp01", "Joined"),
    ("customFieldList01", "Interests"),
]


def tenant_create(name: str, username: str) -> Tenant:
    organization = services.organization_create(name=name)
    user = services.user_create(username=username, password="s3cret-pass-word")
    membership = services.member_add(organization=organization, user=user, role="admin")
    api_key, raw_key = services.api_key_create(membership=membership, name="ingest")
    model = services.custom_model_create(
        organization=organization, name="Membership", tags=["SUPPORT_IGNORED_UPDATE_CFS"]
    )
    for field_name, label in CUSTOM_FIELDS:
        services.field_definition_create(
            organization=organization, data_model=model, name=field_name, label=label
        )
    return Tenant(organization, user, membership, api_key, raw_key, model)


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tenant_a(db) -> Tenant:
    return tenant_create("Acme Retail", "ops@acme.test")


@pytest.fixture
def tenant_b(db) -> Tenant:
    return tenant_create("Globex", "ops@globex.test")


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def authenticate(client: APIClient, tenant: Tenant) -> str:
    response = client.post(
        "/api/accounts/authen",
        {"username": tenant.username, "apiKey": tenant.raw_key, "cdpGKey": tenant.group_key},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


@pytest.fixture
def token_a(client, tenant_a) -> str:
    return authenticate(client, tenant_a)


@pytest.fixture
def token_b(client, tenant_b) -> str:
    return authenticate(client, tenant_b)
