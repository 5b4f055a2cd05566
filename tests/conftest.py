"""Shared fixtures. Every tenant test gets two organizations, so it can prove isolation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from cdp import services
from cdp.models import ApiKey, DataModel, EntityRecord, Membership, Organization
from cdp.shared_store import store_for


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


def records_bulk_create(
    tenant: Tenant, count: int, prefix: str, data: Callable[[int, str], dict[str, Any]]
) -> None:
    """`count` records of the tenant's model keyed `{prefix}-00000` on, written in bulk as
    an import leaves them (no log, no history); `data(n, key)` is each one's data."""
    now = timezone.now()
    EntityRecord.objects.bulk_create(
        EntityRecord(
            organization=tenant.organization,
            data_model=tenant.model,
            key=key,
            data=data(n, key),
            source="CRM",
            created_at=now,
            updated_at=now,
        )
        for n, key in ((n, f"{prefix}-{n:05}") for n in range(count))
    )


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


REDIS_URL = "redis://127.0.0.1:6379/15"


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def shared_redis(settings):
    """The default cache (and so the shared store) pointed at Redis (database 15), under a
    key prefix of its own so that concurrent test runs do not share keys; yields a maker
    of further stores on the same keys, each with its own client (another worker). The
    keys are deleted after."""
    if not _redis_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Redis is not reachable at {REDIS_URL}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CI=1 to make this a failure)")
    prefix = f"cdp-test-{uuid.uuid4().hex}"
    config = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": prefix,
    }
    settings.CACHES = {"default": config}
    yield lambda: store_for(config)
    import redis

    raw = redis.Redis.from_url(REDIS_URL)
    for key in raw.scan_iter(f"{prefix}:*"):
        raw.delete(key)


@pytest.fixture
def failing_log_write(monkeypatch):
    """Make the database refuse the log row of every planned request (a status its column
    refuses), so that the request's one write fails after the records and events in it."""
    import dataclasses

    from ingestion import pipeline

    real_plan_build = pipeline.plan_build

    def plan_build(**kwargs):
        plan = real_plan_build(**kwargs)
        return dataclasses.replace(plan, log=dataclasses.replace(plan.log, status=-1))

    monkeypatch.setattr(pipeline, "plan_build", plan_build)


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
