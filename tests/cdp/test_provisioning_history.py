"""`manage.py provision` and the KEEP_HISTORY tag: a custom model tagged in the file keeps
record history (read back through the Read API with the provisioned credentials), a
re-run switches it on or off in place, an unknown tag or a tag on a system model is
refused whole. Two tenants stand by: no run touches them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from cdp.models import DataModel, Organization
from cdp.schema import TAG_KEEP_HISTORY, TAG_SUPPORT_IGNORED_UPDATE_CFS
from ingestion.models import RecordHistory
from tests.cdp.test_provisioning import (
    GIVEN_KEY,
    INITECH_GROUP_KEY,
    initech_document,
    provision,
    snapshot,
    write,
)

pytestmark = pytest.mark.django_db

INGEST_URL = "/dhub-i/api/v1.0/ingest"
HISTORY_URL = "/dhub-i/api/v1.0/record-history/custom-model"
MOM_CODE = "M-INIT1-O-TECH1-M"  # initech_document's Membership


@pytest.fixture(autouse=True)
def bystanders(tenant_a, tenant_b):
    """Two existing tenants, A tagged KEEP_HISTORY: no provisioning run changes either,
    nor writes history for them."""
    from cdp import services

    services.custom_model_tags_set(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        tags=[TAG_SUPPORT_IGNORED_UPDATE_CFS, TAG_KEEP_HISTORY],
    )
    before = (snapshot(tenant_a.organization), snapshot(tenant_b.organization))
    yield
    assert (snapshot(tenant_a.organization), snapshot(tenant_b.organization)) == before
    assert not RecordHistory.objects.filter(
        organization__in=[tenant_a.organization, tenant_b.organization]
    ).exists()


def document_with(tags: list[str]) -> dict[str, Any]:
    document = initech_document()
    document["models"][0]["tags"] = tags
    return document


class Initech:
    """The provisioned tenant's integrator, signed in with the file's credentials."""

    def __init__(self) -> None:
        self.client = APIClient()
        response = self.client.post(
            "/api/accounts/authen",
            {"username": "ops@initech.test", "apiKey": GIVEN_KEY, "cdpGKey": INITECH_GROUP_KEY},
            format="json",
        )
        assert response.status_code == 200, response.content
        self.headers = {"TOKEN": response.json()["token"], "API_KEY": GIVEN_KEY}

    def post(self, mom_code: str, ref_id: str, **fields: Any) -> dict[str, Any]:
        response = self.client.post(
            INGEST_URL,
            data=json.dumps(
                {
                    "objectType": "custom-model",
                    "source": "CRM",
                    "entries": [{"momCode": mom_code, "refId": ref_id, **fields}],
                }
            ),
            content_type="application/json",
            headers=self.headers,
        )
        body = response.json()
        assert response.status_code == 200 and body["failed"] == 0, body
        return body

    def history(self, mom_code: str, ref_id: str) -> dict[str, Any]:
        response = self.client.get(
            f"{HISTORY_URL}/{ref_id}", {"momCode": mom_code}, headers=self.headers
        )
        assert response.status_code == 200, response.content
        return response.json()


def initech() -> Organization:
    return Organization.objects.get(group_key=INITECH_GROUP_KEY)


def test_a_custom_model_tagged_keep_history_keeps_history(tmp_path):
    provision(write(tmp_path, document_with([TAG_SUPPORT_IGNORED_UPDATE_CFS, TAG_KEEP_HISTORY])))

    organization = initech()
    membership = DataModel.objects.get(organization=organization, name="Membership")
    visit = DataModel.objects.get(organization=organization, name="Visit")
    assert membership.tags == [TAG_SUPPORT_IGNORED_UPDATE_CFS, TAG_KEEP_HISTORY]
    assert visit.tags == []

    api = Initech()
    created = api.post(MOM_CODE, "R-1", customField01="gold")
    updated = api.post(MOM_CODE, "R-1", customField01="silver", customFieldLong01=120)
    api.post(visit.mom_code, "R-1", customFieldTimestamp01=1704164645000)

    body = api.history(MOM_CODE, "R-1")
    assert body["historyKept"] is True and body["next"] is None
    assert [(e["requestId"], e["action"], e["changes"]) for e in body["history"]] == [
        (
            updated["requestId"],
            "updated",
            {
                "customField01": {"from": "gold", "to": "silver"},
                "customFieldLong01": {"from": None, "to": 120},
            },
        ),
        (
            created["requestId"],
            "created",
            {
                "refId": {"from": None, "to": "R-1"},
                "customField01": {"from": None, "to": "gold"},
            },
        ),
    ]
    assert api.history(visit.mom_code, "R-1") == {
        "success": True,
        "historyKept": False,
        "history": [],
        "next": None,
    }
    assert list(
        RecordHistory.objects.filter(organization=organization).values_list(
            "data_model", "key", "action"
        )
    ) == [(membership.pk, "R-1", "created"), (membership.pk, "R-1", "updated")]
    # The same file again changes nothing.
    assert "Nothing to change" in provision(
        write(tmp_path, document_with([TAG_SUPPORT_IGNORED_UPDATE_CFS, TAG_KEEP_HISTORY]))
    )


def test_a_rerun_switches_history_on_and_off_in_place(tmp_path):
    provision(write(tmp_path, document_with([TAG_SUPPORT_IGNORED_UPDATE_CFS])))
    api = Initech()
    api.post(MOM_CODE, "R-1", customField01="gold")
    assert api.history(MOM_CODE, "R-1")["historyKept"] is False
    model_pk = DataModel.objects.get(organization=initech(), name="Membership").pk

    switched_on = provision(write(tmp_path, document_with([TAG_KEEP_HISTORY])))
    on = api.post(MOM_CODE, "R-1", customField01="silver")

    membership = DataModel.objects.get(organization=initech(), name="Membership")
    assert (membership.pk, membership.tags) == (model_pk, [TAG_KEEP_HISTORY])
    assert "Nothing to change" not in switched_on
    body = api.history(MOM_CODE, "R-1")
    assert body["historyKept"] is True
    assert [(e["requestId"], e["changes"]) for e in body["history"]] == [
        (on["requestId"], {"customField01": {"from": "gold", "to": "silver"}})
    ]

    provision(write(tmp_path, document_with([])))
    api.post(MOM_CODE, "R-1", customField01="bronze")

    assert DataModel.objects.get(pk=model_pk).tags == []
    assert api.history(MOM_CODE, "R-1") == {
        "success": True,
        "historyKept": False,
        "history": [],
        "next": None,
    }
    assert list(
        RecordHistory.objects.filter(organization=initech()).values_list("request_id", flat=True)
    ) == [on["requestId"]]


@pytest.mark.parametrize(
    ("tags", "path", "tag"),
    [
        ([TAG_KEEP_HISTORY, "KEEP_HISTORIES"], "models[0].tags[1]", "KEEP_HISTORIES"),
        (["keep_history"], "models[0].tags[0]", "keep_history"),
    ],
    ids=["unknown", "wrong-case"],
)
def test_an_unknown_tag_is_still_refused(tmp_path, tags, path, tag):
    before = snapshot()

    with pytest.raises(CommandError) as refused:
        provision(write(tmp_path, document_with(tags)))

    message = str(refused.value)
    assert f"\n  {path}: unknown tag {tag!r}" in message
    assert TAG_KEEP_HISTORY in message and TAG_SUPPORT_IGNORED_UPDATE_CFS in message
    assert "nothing was changed" in message
    assert snapshot() == before
    assert not Organization.objects.filter(group_key=INITECH_GROUP_KEY).exists()


def test_an_unknown_tag_on_a_rerun_leaves_the_stored_tags(tmp_path):
    provision(write(tmp_path, document_with([TAG_KEEP_HISTORY])))
    before = snapshot()

    with pytest.raises(CommandError, match=r"models\[0\]\.tags\[1\]"):
        provision(write(tmp_path, document_with([TAG_KEEP_HISTORY, "HISTORY"])))

    assert snapshot() == before
    assert DataModel.objects.get(organization=initech(), name="Membership").tags == [
        TAG_KEEP_HISTORY
    ]


def test_keep_history_on_a_system_model_is_refused(tmp_path):
    """A system model keeps the tags of its spec: a file cannot tag it."""
    document = initech_document()
    document["models"].append({"objectType": "order", "tags": [TAG_KEEP_HISTORY]})
    before = snapshot()

    with pytest.raises(CommandError) as refused:
        provision(write(tmp_path, document))

    assert "\n  models[3].tags: " in str(refused.value)
    assert "nothing was changed" in str(refused.value)
    assert snapshot() == before
