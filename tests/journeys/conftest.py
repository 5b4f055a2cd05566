"""Helpers for the User Event tests that go through the Data Ingestion API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp.models import DataModel, ModelKind
from journeys.models import JourneyEventConfig
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings
from tests.conftest import Tenant

INGEST_URL = "/dhub-i/api/v1.0/ingest"
USER_EVENTS_URL = "/dhub-i/api/v1.0/user-events"


def ingest(
    client: APIClient,
    tenant: Tenant,
    token: str,
    entries: list[Any],
    *,
    object_type: str = "custom-model",
    source: str = "CRM",
    config_id: str | None = None,
    event_key: str | None = None,
    init_data: str | None = None,
    **body: Any,
):
    """POST one ingest request as a real client does: JSON body, TOKEN/API_KEY headers."""
    url = INGEST_URL if init_data is None else f"{INGEST_URL}?initData={init_data}"
    payload = {
        "objectType": object_type,
        "source": source,
        "jeConfigId": config_id,
        "jeEventKey": event_key,
        "entries": entries,
        **body,
    }
    return client.post(
        url,
        data=json.dumps(payload),
        content_type="application/json",
        headers={"TOKEN": token, "API_KEY": tenant.raw_key},
    )


def user_events_get(client: APIClient, tenant: Tenant, token: str, **params: Any):
    return client.get(USER_EVENTS_URL, params, headers={"TOKEN": token, "API_KEY": tenant.raw_key})


def member(tenant: Tenant, ref_id: str, **fields: Any) -> dict[str, Any]:
    """A custom-model entry of the tenant's Membership model."""
    return {"momCode": tenant.mom_code, "refId": ref_id, **fields}


def config_create(
    tenant: Tenant,
    trigger: str = "Created",
    *,
    data_model: DataModel | None = None,
    **settings: Any,
) -> JourneyEventConfig:
    """A User Event on the tenant's Membership model (or `data_model`), via the service;
    `settings` are UserEventSettings'."""
    settings.setdefault("event_name", "membership_created")
    settings.setdefault("category", "UserIdentity")
    return journey_event_config_create(
        organization=tenant.organization,
        data_model=data_model or tenant.model,
        trigger=trigger,
        settings=UserEventSettings(**settings),
    )


def system_model(tenant: Tenant, object_type: str) -> DataModel:
    return DataModel.objects.get(
        organization=tenant.organization, kind=ModelKind.SYSTEM, object_type=object_type
    )


def results_by_key(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["refId"]: result for result in body["results"]}


@pytest.fixture
def created_config(tenant_a) -> JourneyEventConfig:
    return config_create(tenant_a, "Created", channel="Online", sub_category="signup")


@pytest.fixture
def changed_config(tenant_a) -> JourneyEventConfig:
    return config_create(tenant_a, "Changed", event_name="membership_changed")
