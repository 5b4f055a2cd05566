"""The tenant-leading keys (ingestion's migration 0009 and the three before it) applied to
a database that already holds two organizations' data: every row kept, the keys
rebuilt, and a row that would point into another organization refused by the database.
Tokens issued before the upgrade name no organization: they are refused, and their
clients authenticate again (docs/decisions.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from cdp import keys, services
from cdp.models import AuthToken, DataModel, EntityRecord
from ingestion.models import IngestionRequest, RecordHistory
from journeys.models import JourneyEventConfig, UserEvent

BEFORE = [
    ("cdp", "0005_entityrecord_no_model_index"),
    ("journeys", "0008_userevent_ingested_constraints"),
    ("ingestion", "0007_record_history"),
]


def _populate(apps) -> dict[str, dict[str, int]]:
    """One organization's rows in every tenant table, through the models of the schema
    before the migrations; the ids, by organization."""
    now = timezone.now()
    made: dict[str, dict[str, int]] = {}
    for name in ("A", "B"):
        organization = apps.get_model("cdp", "Organization").objects.create(
            name=name, group_key=f"GK{name}"
        )
        user = apps.get_model("auth", "User").objects.create(username=f"{name}@x.test")
        membership = apps.get_model("cdp", "Membership").objects.create(
            organization=organization, user=user, role="admin"
        )
        api_key = apps.get_model("cdp", "ApiKey").objects.create(
            organization=organization,
            membership=membership,
            name="k",
            prefix=name * 8,
            digest=keys.digest(f"key-{name}"),
        )
        token = apps.get_model("cdp", "AuthToken").objects.create(
            organization=organization,
            api_key=api_key,
            digest=keys.digest(f"old-token-{name}"),
            issued_at=now,
            expires_at=now + timedelta(minutes=30),
        )
        model = apps.get_model("cdp", "DataModel").objects.create(
            organization=organization, kind="custom", object_type="custom-model", name="M"
        )
        field = apps.get_model("cdp", "FieldDefinition").objects.create(
            organization=organization, data_model=model, name="customField01", type="text"
        )
        record = apps.get_model("cdp", "EntityRecord").objects.create(
            organization=organization,
            data_model=model,
            key="R-1",
            data={"a": name},
            created_at=now,
            updated_at=now,
        )
        config = apps.get_model("journeys", "JourneyEventConfig").objects.create(
            organization=organization,
            data_model=model,
            config_id=f"{name}-Created-1",
            event_key=f"CJE-{name}",
            trigger="Created",
            event_name="membership_created",
            category="UserIdentity",
        )
        event = apps.get_model("journeys", "UserEvent").objects.create(
            organization=organization,
            config=config,
            event_id=f"{name}-event",
            source="M",
            source_id="R-1",
            condition="Created",
            event_name="membership_created",
            event_at=now,
            created_at=now,
            ingested=False,
        )
        request = apps.get_model("ingestion", "IngestionRequest").objects.create(
            organization=organization,
            api_key=api_key,
            config=config,
            request_id=name * 32,
            status=200,
        )
        history = apps.get_model("ingestion", "RecordHistory").objects.create(
            organization=organization,
            data_model=model,
            key="R-1",
            request_id=name * 32,
            changes={},
            action="created",
            source="M",
            created_at=now,
        )
        made[name] = {
            "organization": organization.pk,
            "api_key": api_key.pk,
            "token": token.pk,
            "model": model.pk,
            "field": field.pk,
            "record": record.pk,
            "config": config.pk,
            "event": event.pk,
            "request": request.pk,
            "history": history.pk,
        }
    return made


@pytest.mark.django_db(transaction=True)
def test_the_migrations_keep_every_row_and_rebuild_the_keys():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    try:
        executor.loader.build_graph()
        made = _populate(executor.loader.project_state(BEFORE).apps)

        MigrationExecutor(connection).migrate(latest)

        for name, ids in made.items():
            organization = ids["organization"]
            record = EntityRecord.objects.get(organization_id=organization, pk=ids["record"])
            assert (record.data, record.data_model_id) == ({"a": name}, ids["model"])
            event = UserEvent.objects.get(organization_id=organization, pk=ids["event"])
            assert event.config_id == ids["config"]
            request = IngestionRequest.objects.get(organization_id=organization, pk=ids["request"])
            assert (request.api_key_id, request.config_id) == (ids["api_key"], ids["config"])
            assert RecordHistory.objects.get(pk=ids["history"]).data_model_id == ids["model"]
            assert AuthToken.objects.get(pk=ids["token"]).api_key_id == ids["api_key"]
            assert JourneyEventConfig.objects.get(pk=ids["config"]).data_model_id == ids["model"]
        assert EntityRecord.objects.count() == 2 and UserEvent.objects.count() == 2

        # A token of before the upgrade names no organization: refused, without a query.
        with pytest.raises(services.TokenInvalid):
            services.token_lookup(
                token_digest=keys.digest("old-token-A"),
                organization_id=keys.token_organization_id("old-token-A"),
            )

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = 'cdp_entityrecord'::regclass AND contype IN ('p', 'f') "
                    "ORDER BY 1"
                )
                # No key of its own to the organization (cdp migration 0011): the one to
                # the organization's data model holds it.
                assert [row[0] for row in cursor.fetchall()] == [
                    "FOREIGN KEY (organization_id, data_model_id) REFERENCES "
                    "cdp_datamodel(organization_id, id) DEFERRABLE INITIALLY DEFERRED",
                    "PRIMARY KEY (organization_id, id)",
                ]
            # B's record pointing at A's model: the database refuses it at commit.
            with pytest.raises(IntegrityError), transaction.atomic():
                EntityRecord.objects.create(
                    organization_id=made["B"]["organization"],
                    data_model=DataModel.objects.get(pk=made["A"]["model"]),
                    key="R-cross",
                    created_at=timezone.now(),
                    updated_at=timezone.now(),
                )
            assert not EntityRecord.objects.filter(key="R-cross").exists()
            # An organization that does not exist: refused too, through the same key.
            with pytest.raises(IntegrityError), transaction.atomic():
                EntityRecord.objects.create(
                    organization_id=max(ids["organization"] for ids in made.values()) + 100,
                    data_model=DataModel.objects.get(pk=made["A"]["model"]),
                    key="R-nowhere",
                    created_at=timezone.now(),
                    updated_at=timezone.now(),
                )
    finally:
        MigrationExecutor(connection).migrate(latest)


def test_a_token_names_its_organization_and_nothing_else_parses():
    raw = keys.token_generate(12345)
    assert raw.startswith("9ix.") and len(raw) == 4 + 43
    assert keys.token_organization_id(raw) == 12345
    assert keys.token_organization_id(keys.token_generate(0)) == 0
    for bad in (
        "",
        "abc",
        "9ix",
        "9ix.short",
        "9IX." + "a" * 43,
        "9_x." + "a" * 43,
        "9ix." + "a" * 43 + "\n",
        "." + "a" * 43,
    ):
        assert keys.token_organization_id(bad) is None, bad
