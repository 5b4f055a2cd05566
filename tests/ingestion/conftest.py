"""Helpers for the ingestion tests: an ingest client bound to one tenant, and row reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from django.db.models import QuerySet
from rest_framework.test import APIClient

from cdp import ratelimit, services
from cdp.models import DataModel, EntityRecord, ModelKind
from ingestion.models import IngestionRequest
from tests.conftest import Tenant, authenticate

INGEST_URL = "/dhub-i/api/v1.0/ingest"


@dataclass
class Ingest:
    """One tenant's integrator: posts ingest requests as a real client does and reads
    back what was stored (rows of that tenant only)."""

    client: APIClient
    tenant: Tenant
    token: str

    def post(
        self,
        entries: list[Any],
        *,
        object_type: str = "custom-model",
        source: str = "CRM",
        ignored: list[str] | None = None,
        headers: dict[str, str] | None = None,
        **body: Any,
    ):
        payload: dict[str, Any] = {
            "objectType": object_type,
            "source": source,
            "jeConfigId": None,
            "jeEventKey": None,
            "entries": entries,
            **body,
        }
        if ignored is not None:
            payload["ignoredUpdateCfs"] = ignored
        return self.client.post(
            INGEST_URL,
            data=json.dumps(payload),
            content_type="application/json",
            headers=headers or {"TOKEN": self.token, "API_KEY": self.tenant.raw_key},
        )

    def entry(self, ref_id: str, **fields: Any) -> dict[str, Any]:
        """An entry of the tenant's Membership model (tagged SUPPORT_IGNORED_UPDATE_CFS)."""
        return {"momCode": self.tenant.mom_code, "refId": ref_id, **fields}

    def records(self, model: DataModel | None = None) -> QuerySet[EntityRecord]:
        return EntityRecord.objects.filter(
            organization=self.tenant.organization, data_model=model or self.tenant.model
        )

    def record(self, key: str, model: DataModel | None = None) -> EntityRecord:
        return self.records(model).get(key=key)

    def data(self, key: str, model: DataModel | None = None) -> dict[str, Any]:
        return self.record(key, model).data

    def log(self) -> QuerySet[IngestionRequest]:
        return IngestionRequest.objects.filter(organization=self.tenant.organization)

    def system_model(self, object_type: str) -> DataModel:
        return DataModel.objects.get(
            organization=self.tenant.organization, kind=ModelKind.SYSTEM, object_type=object_type
        )

    def custom_model(self, name: str, fields: list[str], tags: list[str] | None = None):
        model = services.custom_model_create(
            organization=self.tenant.organization, name=name, tags=tags or []
        )
        for field_name in fields:
            services.field_definition_create(
                organization=self.tenant.organization, data_model=model, name=field_name
            )
        return model


def ingest_for(tenant: Tenant) -> Ingest:
    """A fresh client with its own token: what each thread of a concurrency test uses."""
    client = APIClient()
    return Ingest(client, tenant, authenticate(client, tenant))


@pytest.fixture
def api_a(client, tenant_a, token_a) -> Ingest:
    return Ingest(client, tenant_a, token_a)


@pytest.fixture
def api_b(tenant_b) -> Ingest:
    return ingest_for(tenant_b)


# A whole minute (and so a whole second) starts here; the frozen clock stands 0.2 s into it.
MINUTE_START = 60 * 20_000_000


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The rate limits' clock (`cdp.ratelimit`), frozen at the start of a minute: the
    windows are fixed, so requests meant to share one must not straddle a boundary."""
    frozen = Clock(MINUTE_START + 0.2)
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: frozen.now))
    return frozen
