"""`manage.py erase`: an operator erases a person from one organization, as the erasure
endpoint does, and lifts a suppression; bad input is a CommandError, not a traceback."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cdp.models import EntityRecord, ErasureRequest
from tests.ingestion.conftest import ingest_for

pytestmark = pytest.mark.django_db

EMAIL = "ana.nguyen@example.com"


def _run(*args: str) -> str:
    out = StringIO()
    call_command("erase", *args, stdout=out)
    return out.getvalue()


def test_erase_erases_inside_the_organization_and_prints_the_answer(tenant_a, tenant_b):
    for tenant in (tenant_a, tenant_b):
        api = ingest_for(tenant)
        assert api.post([api.entry("R-1", email=EMAIL), api.entry("R-2")]).json()["created"] == 2

    answer = json.loads(
        _run("--org", tenant_a.group_key, "--email", EMAIL.upper(), "--suppress", "--json")
    )

    assert set(answer) == {"success", "erasureId", "records", "events"}
    assert (answer["records"], answer["events"]) == (1, 0)
    keys = EntityRecord.objects.filter(organization=tenant_a.organization).values_list(
        "key", flat=True
    )
    assert list(keys) == ["R-2"]
    assert EntityRecord.objects.filter(organization=tenant_b.organization).count() == 2
    erasure = ErasureRequest.objects.get(erasure_id=answer["erasureId"])
    assert erasure.requested_by == "operator (manage.py erase)" and erasure.suppressing

    lifted = _run("--org", tenant_a.group_key, "--lift", erasure.erasure_id)
    assert lifted.strip() == f"Lifted the suppression of erasure {erasure.erasure_id}."
    erasure.refresh_from_db()
    assert not erasure.suppressing


def test_the_summary_line_counts_what_was_erased(tenant_a):
    api = ingest_for(tenant_a)
    api.post([api.entry("R-1", phone="+84901")])
    line = _run("--org", tenant_a.group_key, "--phone", "+84901")
    erasure = ErasureRequest.objects.get()
    assert line.strip() == (
        f"Erasure {erasure.erasure_id}: 1 records, 0 history entries and 0 events erased; "
        "0 callbacks and 0 deliveries changed."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Invalid value of: customerId, email, phone (give --customer-id, --email or --phone)"),
        (("--email", " "), "Invalid value of: email (give --customer-id, --email or --phone)"),
        (("--lift", "f" * 32), "Unknown erasure in this organization: " + "f" * 32),
    ],
)
def test_bad_input_is_a_command_error(tenant_a, args, message):
    with pytest.raises(CommandError) as raised:
        _run("--org", tenant_a.group_key, *args)
    assert str(raised.value) == message
    assert not ErasureRequest.objects.exists()


def test_an_unknown_organization_and_another_organizations_erasure_are_refused(tenant_a, tenant_b):
    with pytest.raises(CommandError, match="Unknown organization group key: nope"):
        _run("--org", "nope", "--email", EMAIL)
    theirs = json.loads(_run("--org", tenant_b.group_key, "--email", EMAIL, "--suppress", "--json"))
    with pytest.raises(CommandError, match="Unknown erasure in this organization"):
        _run("--org", tenant_a.group_key, "--lift", theirs["erasureId"])
    assert ErasureRequest.objects.get(erasure_id=theirs["erasureId"]).suppressing
