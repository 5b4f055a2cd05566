"""`manage.py provision` (DESIGN §10): creates, updates idempotently, refuses bad files whole."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from cdp import keys, services
from cdp.models import ApiKey, DataModel, FieldDefinition, Membership, Organization
from journeys.models import JourneyEventConfig

DEMO_FILE = Path(__file__).resolve().parents[2] / "examples" / "demo-tenant.json"
INITECH_GROUP_KEY = "1234567890abcdef1234567890abcdef"
GIVEN_KEY = "abcdef0123456789abcdef0123456789abcdef01"
OTHER_KEY = "0123456789abcdef0123456789abcdef01234567"


def initech_document() -> dict[str, Any]:
    return {
        "organization": {"name": "Initech", "groupKey": INITECH_GROUP_KEY},
        "users": [
            {
                "username": "ops@initech.test",
                "password": "initech-pass-1",
                "role": "admin",
                "apiKeys": [{"name": "ingest", "key": GIVEN_KEY}, {"name": "backfill"}],
            },
            {"username": "viewer@initech.test", "role": "viewer"},
        ],
        "models": [
            {
                "name": "Membership",
                "momCode": "M-INIT1-O-TECH1-M",
                "tags": ["SUPPORT_IGNORED_UPDATE_CFS"],
                "fields": [
                    {"name": "customField01", "label": "Tier", "required": True},
                    {"name": "customFieldLong01", "label": "Points"},
                ],
            },
            {"name": "Visit", "fields": [{"name": "customFieldTimestamp01", "label": "At"}]},
            {
                "objectType": "user-event",
                "fields": [{"name": "customField01", "label": "Campaign"}],
            },
        ],
        "userEvents": [
            {
                "ref": "membership_created",
                "model": "Membership",
                "trigger": "Created",
                "eventName": "membership_created",
                "eventTime": "ingested",
                "channel": "Online",
                "category": "UserIdentity",
                "subCategory": "signup",
                "filter": {
                    "match": "all",
                    "conditions": [
                        {"field": "customField01", "operator": "is_not_empty"},
                        {"field": "customFieldLong01", "operator": "gte", "value": 100},
                    ],
                },
                "updateValues": [
                    {"target": "value", "field": "customFieldLong01"},
                    {"target": "properties.tier", "field": "customField01"},
                    {"target": "eventLabels", "value": ["vip"]},
                ],
                "enabled": True,
            },
            {
                "ref": "identity_changed",
                "model": "customer-identity",
                "trigger": "Changed",
                "eventName": "identity_changed",
                "category": "UserIdentity",
            },
        ],
    }


def write(tmp_path: Path, document: Any, name: str = "tenant.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def provision(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("provision", str(path), *args, stdout=out)
    return out.getvalue()


def provision_json(path: Path) -> dict[str, Any]:
    return json.loads(provision(path, "--json"))


def snapshot(organization: Organization | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every provisioned row (of one organization, when given), with the columns
    provisioning may write."""
    scope = {} if organization is None else {"organization": organization}
    organizations = Organization.objects.filter(
        **({} if organization is None else {"pk": organization.pk})
    )
    users = get_user_model().objects.all()
    if organization is not None:
        users = users.filter(memberships__organization=organization)
    return {
        "organizations": list(
            organizations.order_by("pk").values_list(
                "pk", "name", "group_key", "callback_url", "callback_enabled", "callback_secret"
            )
        ),
        "users": list(users.order_by("pk").values_list("pk", "username", "password")),
        "memberships": list(
            Membership.objects.filter(**scope)
            .order_by("pk")
            .values_list("pk", "organization", "user", "role")
        ),
        "api_keys": list(
            ApiKey.objects.filter(**scope)
            .order_by("pk")
            .values_list("pk", "organization", "membership", "name", "digest", "revoked_at")
        ),
        "models": list(
            DataModel.objects.filter(**scope)
            .order_by("pk")
            .values_list("pk", "organization", "kind", "object_type", "name", "mom_code", "tags")
        ),
        "fields": list(
            FieldDefinition.objects.filter(**scope)
            .order_by("pk")
            .values_list("pk", "organization", "data_model", "name", "type", "label", "required")
        ),
        "user_events": list(
            JourneyEventConfig.objects.filter(**scope)
            .order_by("pk")
            .values_list(
                "pk",
                "organization",
                "data_model",
                "ref",
                "config_id",
                "event_key",
                "trigger",
                "event_name",
                "filters",
                "update_values",
                "enabled",
            )
        ),
    }


@pytest.fixture(autouse=True)
def bystander(tenant_a, tenant_b):
    """Every test runs beside two existing tenants, and no provisioning run may change the
    second one (the first is the target of one test)."""
    before = snapshot(tenant_b.organization)
    yield
    assert snapshot(tenant_b.organization) == before


def fields_of(organization: Organization, model_name: str) -> dict[str, tuple[str, str, bool]]:
    return {
        fd.name: (fd.type, fd.label, fd.required)
        for fd in FieldDefinition.objects.filter(
            organization=organization, data_model__name=model_name
        )
    }


def test_provision_creates_organization_users_keys_models_and_fields(tmp_path, tenant_a, tenant_b):
    before_a = fields_of(tenant_a.organization, "Membership")

    provision(write(tmp_path, initech_document()))

    organization = Organization.objects.get(group_key=INITECH_GROUP_KEY)
    assert organization.name == "Initech"
    ops = get_user_model().objects.get(username="ops@initech.test")
    assert ops.check_password("initech-pass-1")
    viewer = get_user_model().objects.get(username="viewer@initech.test")
    assert not viewer.has_usable_password()
    # Members may sign in to the Console (scoped to their organizations there).
    assert ops.is_staff and viewer.is_staff
    assert not ops.is_superuser
    roles = dict(
        Membership.objects.filter(organization=organization).values_list("user__username", "role")
    )
    assert roles == {"ops@initech.test": "admin", "viewer@initech.test": "viewer"}
    api_keys = ApiKey.objects.filter(organization=organization, membership__user=ops)
    assert sorted(api_keys.values_list("name", flat=True)) == ["backfill", "ingest"]
    ingest = api_keys.get(name="ingest")
    assert ingest.prefix == GIVEN_KEY[:8]
    assert keys.digest_matches(GIVEN_KEY, ingest.digest)

    membership = DataModel.objects.get(organization=organization, name="Membership")
    assert (membership.kind, membership.mom_code, membership.tags) == (
        "custom",
        "M-INIT1-O-TECH1-M",
        ["SUPPORT_IGNORED_UPDATE_CFS"],
    )
    visit = DataModel.objects.get(organization=organization, name="Visit")
    assert re.fullmatch(r"M-[A-Z0-9]{5}-O-[A-Z0-9]{5}-M", visit.mom_code)
    assert visit.tags == []
    assert fields_of(organization, "Membership") == {
        "customField01": ("text", "Tier", True),
        "customFieldLong01": ("integer", "Points", False),
    }
    assert fields_of(organization, "Visit") == {
        "customFieldTimestamp01": ("timestamp", "At", False)
    }
    assert fields_of(organization, "User Event") == {"customField01": ("text", "Campaign", False)}
    system_types = DataModel.objects.filter(organization=organization, kind="system")
    assert set(system_types.values_list("object_type", flat=True)) == set(
        services.SYSTEM_OBJECT_TYPES
    )
    # The other tenants are untouched.
    assert fields_of(tenant_a.organization, "Membership") == before_a
    assert not FieldDefinition.objects.filter(
        organization=tenant_b.organization, data_model__object_type="user-event"
    ).exists()


def test_json_output_gives_what_a_client_needs(tmp_path, client):
    output = provision_json(write(tmp_path, initech_document()))

    assert set(output) == {"organization", "users", "models", "userEvents", "destinations"}
    assert output["destinations"] == []
    assert output["organization"] == {
        "name": "Initech",
        "groupKey": INITECH_GROUP_KEY,
        "callbackSecret": None,
    }
    ops, viewer = output["users"]
    assert viewer == {"username": "viewer@initech.test", "apiKeys": []}
    assert ops["username"] == "ops@initech.test"
    ingest, backfill = ops["apiKeys"]
    assert ingest == {"name": "ingest", "key": GIVEN_KEY}
    assert backfill["name"] == "backfill"
    assert keys.API_KEY_RE.match(backfill["key"])
    visit_code = DataModel.objects.get(name="Visit", organization__name="Initech").mom_code
    assert output["models"] == [
        {"name": "Membership", "objectType": "custom-model", "momCode": "M-INIT1-O-TECH1-M"},
        {"name": "Visit", "objectType": "custom-model", "momCode": visit_code},
        {"name": "User Event", "objectType": "user-event", "momCode": None},
    ]
    configs = {c.ref: c for c in JourneyEventConfig.objects.filter(organization__name="Initech")}
    assert output["userEvents"] == [
        {
            "ref": ref,
            "jeConfigId": configs[ref].config_id,
            "jeEventKey": configs[ref].event_key,
        }
        for ref in ("membership_created", "identity_changed")
    ]
    assert re.fullmatch(
        INITECH_GROUP_KEY + r"-Created-[A-Za-z0-9]{15}", configs["membership_created"].config_id
    )
    assert re.fullmatch(r"CJE-[A-Z0-9]{10}\.[A-Z0-9]{10}", configs["identity_changed"].event_key)
    created = configs["membership_created"]
    assert (created.data_model.name, created.trigger, created.channel, created.sub_category) == (
        "Membership",
        "Created",
        "Online",
        "signup",
    )
    assert created.filters["conditions"][1] == {
        "field": "customFieldLong01",
        "operator": "gte",
        "value": 100,
    }
    assert configs["identity_changed"].data_model.object_type == "customer-identity"
    # The generated key printed is the stored one: it authenticates.
    response = client.post(
        "/api/accounts/authen",
        {"username": "ops@initech.test", "apiKey": backfill["key"], "cdpGKey": INITECH_GROUP_KEY},
        format="json",
    )
    assert response.status_code == 200, response.content


def test_second_run_changes_nothing_and_prints_only_keys_the_file_gives(tmp_path):
    path = write(tmp_path, initech_document())
    provision(path)
    before = snapshot()

    output = provision_json(path)
    summary = provision(path)

    assert snapshot() == before
    assert output["users"][0]["apiKeys"] == [
        {"name": "ingest", "key": GIVEN_KEY},
        {"name": "backfill", "key": None},
    ]
    stored_backfill = ApiKey.objects.get(name="backfill")
    assert stored_backfill.prefix not in summary
    assert "Nothing to change" in summary


def test_summary_shows_a_generated_key_once(tmp_path):
    path = write(tmp_path, initech_document())

    first = provision(path)
    second = provision(path)

    backfill = ApiKey.objects.get(name="backfill")
    printed = re.search(r"'backfill': created; key ([0-9a-f]{40}) \(shown once", first)
    assert printed is not None
    assert keys.digest_matches(printed.group(1), backfill.digest)
    assert GIVEN_KEY not in first  # the file's own key is not echoed in the summary
    assert "'backfill': unchanged" in second
    assert backfill.prefix not in second


def test_rerun_updates_labels_required_tags_and_role_in_place(tmp_path):
    document = initech_document()
    provision(write(tmp_path, document))
    before = snapshot()
    document["models"][0]["fields"][0].update(label="Level", required=False)
    del document["models"][0]["fields"][1]["label"]  # absent: the stored label stays
    document["models"][0]["tags"] = []
    document["users"][1]["role"] = "editor"
    document["organization"]["name"] = "Initech Corp"

    summary = provision(write(tmp_path, document))

    after = snapshot()
    assert [row[0] for row in after["fields"]] == [row[0] for row in before["fields"]]
    assert [row[0] for row in after["models"]] == [row[0] for row in before["models"]]
    assert after["api_keys"] == before["api_keys"]
    organization = Organization.objects.get(group_key=INITECH_GROUP_KEY)
    assert organization.name == "Initech Corp"
    assert fields_of(organization, "Membership") == {
        "customField01": ("text", "Level", False),
        "customFieldLong01": ("integer", "Points", False),
    }
    assert DataModel.objects.get(organization=organization, name="Membership").tags == []
    assert Membership.objects.get(user__username="viewer@initech.test").role == "editor"
    assert "fields updated: customField01" in summary


def test_two_files_make_two_isolated_organizations(tmp_path):
    first = {
        "organization": {"name": "First"},
        "models": [{"name": "Membership", "fields": [{"name": "customField01", "label": "Tier"}]}],
    }
    second = {
        "organization": {"name": "Second"},
        "models": [
            {
                "name": "Membership",
                "fields": [
                    {"name": "customField01", "label": "Rank", "required": True},
                    {"name": "customFieldBool01", "label": "Opted in"},
                ],
            }
        ],
    }
    out_first = provision_json(write(tmp_path, first, "first.json"))
    first_rows = snapshot()

    out_second = provision_json(write(tmp_path, second, "second.json"))

    org_first = Organization.objects.get(name="First")
    org_second = Organization.objects.get(name="Second")
    assert out_first["organization"]["groupKey"] != out_second["organization"]["groupKey"]
    assert out_first["models"][0]["momCode"] != out_second["models"][0]["momCode"]
    assert fields_of(org_first, "Membership") == {"customField01": ("text", "Tier", False)}
    assert fields_of(org_second, "Membership") == {
        "customField01": ("text", "Rank", True),
        "customFieldBool01": ("boolean", "Opted in", False),
    }
    after = snapshot()
    for table, rows in first_rows.items():
        assert [r for r in after[table] if r in rows] == rows, table  # nothing of First changed


def test_organization_is_matched_by_name_without_group_key(tmp_path, tenant_a, tenant_b):
    document = {
        "organization": {"name": "Acme Retail"},
        "models": [{"name": "Membership", "fields": [{"name": "customField03", "label": "Level"}]}],
    }
    organizations = Organization.objects.count()

    output = provision_json(write(tmp_path, document))

    assert Organization.objects.count() == organizations
    assert output["organization"]["groupKey"] == tenant_a.group_key
    assert output["models"][0]["momCode"] == tenant_a.mom_code
    assert fields_of(tenant_a.organization, "Membership")["customField03"] == (
        "text",
        "Level",
        False,
    )
    assert "customField03" not in fields_of(tenant_b.organization, "Membership")


def test_existing_user_keeps_password_and_other_memberships(tmp_path, tenant_a):
    document = {
        "organization": {"name": "Initech"},
        "users": [{"username": tenant_a.username, "password": "hijack-attempt", "role": "viewer"}],
    }

    provision(write(tmp_path, document))

    user = get_user_model().objects.get(username=tenant_a.username)
    assert user.check_password("s3cret-pass-word")
    assert Membership.objects.get(organization=tenant_a.organization, user=user).role == "admin"
    assert Membership.objects.get(organization__name="Initech", user=user).role == "viewer"


def test_ambiguous_organization_name_is_refused(tmp_path):
    services.organization_create(name="Twin")
    services.organization_create(name="Twin")
    before = snapshot()

    with pytest.raises(CommandError, match=r"organization\.name: several organizations"):
        provision(write(tmp_path, {"organization": {"name": "Twin"}, "models": [{"name": "X"}]}))

    assert snapshot() == before


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            lambda d: d["users"][0]["apiKeys"][0].update(key=OTHER_KEY),
            "users[0].apiKeys[0].key",
            "never replaces a key",
        ),
        (
            lambda d: d["models"][0].update(momCode="M-OTHER-O-CODE1-M"),
            "models[0].momCode",
            "never changes",
        ),
        (
            lambda d: (
                d["models"][0].pop("momCode"),
                d["models"].append({"name": "Loyalty", "momCode": "M-INIT1-O-TECH1-M"}),
            ),
            "models[3].momCode",
            "is taken",
        ),
    ],
    ids=["other-key-value", "momCode-change", "momCode-taken"],
)
def test_clash_with_stored_rows_is_refused_and_rolled_back(tmp_path, change, path, message):
    document = initech_document()
    provision(write(tmp_path, document))
    before = snapshot()
    # Writes the run makes before it meets the clash; they must be rolled back with it.
    document["organization"]["name"] = "Initech Renamed"
    document["users"].append({"username": "new@initech.test", "role": "owner"})
    change(document)

    with pytest.raises(CommandError) as refused:
        provision(write(tmp_path, document))

    assert f"{path}: " in str(refused.value)
    assert message in str(refused.value)
    assert snapshot() == before


def _set(keys_path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for key in keys_path[:-1]:
            target = target[key]
        target[keys_path[-1]] = value

    return change


BAD_DOCUMENTS = [
    ("bad-group-key", _set(("organization", "groupKey"), "ABCDEF"), "organization.groupKey"),
    ("bad-mom-code", _set(("models", 0, "momCode"), "M-abcde-O-12345-M"), "models[0].momCode"),
    (
        "bad-field-name",
        _set(("models", 0, "fields", 1, "name"), "customFieldLong1"),
        "models[0].fields[1].name",
    ),
    ("bad-role", _set(("users", 0, "role"), "root"), "users[0].role"),
    ("bad-key", _set(("users", 0, "apiKeys", 1, "key"), "A" * 40), "users[0].apiKeys[1].key"),
    ("unknown-tag", _set(("models", 0, "tags"), ["FAST"]), "models[0].tags[0]"),
    ("unknown-top-level-key", _set(("owner",), "me"), "owner"),
    ("unknown-item-key", _set(("users", 1, "email"), "v@initech.test"), "users[1].email"),
    ("wrong-type-list", _set(("users",), {"username": "x@y.test"}), "users"),
    (
        "wrong-type-bool",
        _set(("models", 0, "fields", 0, "required"), "yes"),
        "models[0].fields[0].required",
    ),
    ("wrong-type-string", _set(("organization", "name"), 42), "organization.name"),
    ("missing-role", lambda d: d["users"][1].pop("role"), "users[1].role"),
    ("duplicate-model", _set(("models", 1, "name"), "Membership"), "models[1].name"),
    ("system-model-with-name", _set(("models", 2, "name"), "Events"), "models[2].name"),
    (
        "user-event-without-trigger",
        lambda d: d["userEvents"][0].pop("trigger"),
        "userEvents[0].trigger",
    ),
    (
        "user-event-bad-trigger",
        _set(("userEvents", 1, "trigger"), "Deleted"),
        "userEvents[1].trigger",
    ),
    (
        "user-event-duplicate-ref",
        _set(("userEvents", 1, "ref"), "membership_created"),
        "userEvents[1].ref",
    ),
    ("user-event-unknown-key", _set(("userEvents", 0, "colour"), "red"), "userEvents[0].colour"),
    ("user-event-unknown-model", _set(("userEvents", 0, "model"), "Nope"), "userEvents[0].model"),
    (
        "user-event-bad-operator",
        _set(("userEvents", 0, "filter", "conditions", 1, "operator"), "like"),
        "userEvents[0].filter.conditions[1].operator",
    ),
    (
        "user-event-unknown-event-time-field",
        _set(("userEvents", 0, "eventTime"), "customFieldTimestamp09"),
        "userEvents[0].eventTime",
    ),
    (
        "user-event-bad-category",
        _set(("userEvents", 1, "category"), "Shopping"),
        "userEvents[1].category",
    ),
    (
        "user-event-bad-update-target",
        _set(("userEvents", 0, "updateValues", 0, "target"), "price"),
        "userEvents[0].updateValues[0].target",
    ),
    ("callback-not-an-object", _set(("organization", "callback"), "on"), "organization.callback"),
    (
        "callback-unknown-key",
        _set(("organization", "callback"), {"url": "https://p.example/cb", "secret": "s"}),
        "organization.callback.secret",
    ),
    (
        "callback-bad-scheme",
        _set(("organization", "callback"), {"url": "ftp://p.example/cb", "enabled": True}),
        "organization.callback.url",
    ),
    (
        "callback-credentials-in-url",
        _set(("organization", "callback"), {"url": "https://u:p@p.example/cb"}),
        "organization.callback.url",
    ),
    (
        "callback-enabled-not-boolean",
        _set(("organization", "callback"), {"url": "https://p.example/cb", "enabled": "yes"}),
        "organization.callback.enabled",
    ),
    (
        "callback-enabled-without-url",
        _set(("organization", "callback"), {"url": "", "enabled": True}),
        "organization.callback.enabled",
    ),
]


@pytest.mark.parametrize(
    ("change", "path"),
    [(change, path) for _, change, path in BAD_DOCUMENTS],
    ids=[name for name, _, _ in BAD_DOCUMENTS],
)
def test_bad_file_is_refused_with_its_path_and_changes_nothing(
    tmp_path, tenant_a, tenant_b, change, path
):
    document = initech_document()
    change(document)
    before = snapshot()

    with pytest.raises(CommandError) as refused:
        provision(write(tmp_path, document))

    assert f"\n  {path}: " in str(refused.value)
    assert "nothing was changed" in str(refused.value)
    assert snapshot() == before


CALLBACK = {"url": "https://partner.example/cdp-callback", "enabled": True}


def test_callback_section_sets_the_callback_and_prints_its_secret_once(tmp_path, tenant_a):
    document = initech_document()
    document["organization"]["callback"] = dict(CALLBACK)
    path = write(tmp_path, document)

    first = provision_json(path)
    organization = Organization.objects.get(group_key=INITECH_GROUP_KEY)
    second = provision_json(path)

    assert (organization.callback_url, organization.callback_enabled) == (CALLBACK["url"], True)
    assert re.fullmatch(r"[0-9a-f]{64}", first["organization"]["callbackSecret"])
    # Stored as given: the worker signs callbacks with it.
    assert first["organization"]["callbackSecret"] == organization.callback_secret
    assert second["organization"]["callbackSecret"] is None
    # Another tenant's callback settings are untouched.
    tenant_a.organization.refresh_from_db()
    assert (tenant_a.organization.callback_url, tenant_a.organization.callback_secret) == ("", "")


def test_callback_rerun_updates_settings_and_keeps_the_secret(tmp_path):
    document = initech_document()
    document["organization"]["callback"] = dict(CALLBACK)
    provision(write(tmp_path, document))
    secret = Organization.objects.get(group_key=INITECH_GROUP_KEY).callback_secret
    document["organization"]["callback"] = {"enabled": False}  # url absent: kept

    output = provision_json(write(tmp_path, document))

    organization = Organization.objects.get(group_key=INITECH_GROUP_KEY)
    assert (organization.callback_url, organization.callback_enabled) == (CALLBACK["url"], False)
    assert organization.callback_secret == secret
    assert output["organization"]["callbackSecret"] is None


def test_summary_shows_a_generated_callback_secret_once(tmp_path):
    document = initech_document()
    document["organization"]["callback"] = dict(CALLBACK)
    path = write(tmp_path, document)

    first = provision(path)
    second = provision(path)

    secret = Organization.objects.get(group_key=INITECH_GROUP_KEY).callback_secret
    assert f"Callback secret: {secret} (shown once" in first
    assert secret not in second
    assert "Nothing to change" in second


def test_callback_url_of_a_private_address_is_refused_with_its_path(tmp_path, settings):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False
    document = initech_document()
    document["organization"]["callback"] = {"url": "http://127.0.0.1:8080/cb", "enabled": True}
    before = snapshot()

    with pytest.raises(CommandError) as refused:
        provision(write(tmp_path, document))

    assert "\n  organization.callback.url: " in str(refused.value)
    assert "loopback address" in str(refused.value)
    assert snapshot() == before


def test_user_event_settings_are_updated_by_ref_and_keep_their_ids(tmp_path):
    path = write(tmp_path, initech_document())
    first = provision_json(path)["userEvents"]
    document = initech_document()
    document["userEvents"][0]["eventName"] = "member_joined"
    document["userEvents"][0]["enabled"] = False

    second = provision_json(write(tmp_path, document))["userEvents"]

    assert second == first
    config = JourneyEventConfig.objects.get(ref="membership_created")
    assert (config.event_name, config.enabled) == ("member_joined", False)
    assert JourneyEventConfig.objects.filter(organization__name="Initech").count() == 2


def test_user_event_trigger_never_changes(tmp_path):
    provision(write(tmp_path, initech_document()))
    document = initech_document()
    document["userEvents"][0]["trigger"] = "Changed"
    before = snapshot()

    with pytest.raises(CommandError) as refused:
        provision(write(tmp_path, document))

    assert "userEvents[0]: User Event 'membership_created' exists on Membership" in str(
        refused.value
    )
    assert snapshot() == before


def test_every_error_of_a_file_is_reported_at_once(tmp_path):
    document = initech_document()
    document["organization"]["groupKey"] = "xyz"
    document["users"][0]["role"] = "boss"
    document["models"][0]["fields"][1]["name"] = "points"

    with pytest.raises(CommandError) as refused:
        provision(write(tmp_path, document))

    lines = str(refused.value).splitlines()[1:]
    assert [line.split(": ")[0].strip() for line in lines] == [
        "organization.groupKey",
        "users[0].role",
        "models[0].fields[1].name",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"organization": {"name": "Initech"},', "not valid JSON"),
        ('{"organization": {"name": "A", "name": "B"}}', "appears twice"),
        ('["organization"]', "must be a JSON object"),
    ],
    ids=["invalid-json", "duplicate-key", "not-an-object"],
)
def test_unreadable_file_is_refused(tmp_path, text, message):
    before = snapshot()

    with pytest.raises(CommandError, match=message):
        provision(write(tmp_path, text))

    assert snapshot() == before


def test_missing_file_is_refused(tmp_path):
    before = snapshot()

    with pytest.raises(CommandError, match="file not found"):
        provision(tmp_path / "absent.json")

    assert snapshot() == before


def test_demo_prints_credentials_and_a_working_curl_line(client):
    demo = json.loads(DEMO_FILE.read_text())
    user = demo["users"][0]
    given_key = user["apiKeys"][0]["key"]

    provision(DEMO_FILE, "--demo", "--host", "http://127.0.0.1:8000")
    before = snapshot()
    output = provision(DEMO_FILE, "--demo", "--host", "http://127.0.0.1:8000/")

    assert snapshot() == before
    organization = Organization.objects.get(name="Demo Shop")
    assert organization.group_key == demo["organization"]["groupKey"]
    for value in (user["username"], given_key, organization.group_key, "M-DEMO1-O-SHOP1-M"):
        assert value in output
    curl = re.search(
        r"^  curl -s -X POST (\S+)/api/accounts/authen "
        r"-H 'Content-Type: application/json' -d '(\{.*\})'$",
        output,
        re.MULTILINE,
    )
    assert curl is not None, output
    assert curl.group(1) == "http://127.0.0.1:8000"
    body = json.loads(curl.group(2))
    assert body == {
        "username": "demo@cdp.test",
        "apiKey": given_key,
        "cdpGKey": organization.group_key,
    }
    response = client.post("/api/accounts/authen", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["token"]


def test_demo_file_declares_the_documented_tenant():
    provision(DEMO_FILE)

    organization = Organization.objects.get(name="Demo Shop")
    membership = DataModel.objects.get(organization=organization, name="Membership")
    assert membership.tags == ["SUPPORT_IGNORED_UPDATE_CFS"]
    assert {
        name: label for name, (_, label, _) in fields_of(organization, "Membership").items()
    } == {
        "customField01": "Tier",
        "customFieldLong01": "Points",
        "customFieldTimestamp01": "Joined",
        "customFieldList01": "Interests",
    }
    assert fields_of(organization, "User Event") == {"customField01": ("text", "Campaign", False)}
    assert Membership.objects.get(organization=organization).role == "admin"


def test_demo_needs_a_key_given_in_the_file(tmp_path):
    document = initech_document()
    document["users"][0]["apiKeys"] = [{"name": "ingest"}]
    before = snapshot()

    with pytest.raises(CommandError, match="must give one"):
        provision(write(tmp_path, document), "--demo")

    assert snapshot() == before


def test_destinations_are_matched_by_name_and_their_secret_printed_once(tmp_path, settings):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = True
    from ingestion.models import Destination

    document = initech_document()
    document["destinations"] = [
        {"name": "Journeys", "url": "http://127.0.0.1:9/hooks", "events": ["purchase"]},
        {"name": "Backend", "url": "http://127.0.0.1:9/all", "enabled": False},
    ]
    path = write(tmp_path, document)

    first = provision_json(path)["destinations"]
    assert [d["name"] for d in first] == ["Journeys", "Backend"]
    stored = {d.name: d for d in Destination.objects.all()}
    assert [d["secret"] for d in first] == [stored["Journeys"].secret, stored["Backend"].secret]
    assert all(d["secret"].startswith("whsec_") for d in first)
    assert (stored["Journeys"].events, stored["Backend"].enabled) == (["purchase"], False)

    assert provision_json(path)["destinations"] == [
        {"name": "Journeys", "secret": None},
        {"name": "Backend", "secret": None},
    ]
    document["destinations"][0]["events"] = ["purchase", "refund"]
    document["destinations"][1]["enabled"] = True
    summary = provision(write(tmp_path, document))
    assert "Destination 'Journeys': updated" in summary
    assert "Destination 'Backend': updated" in summary
    journeys = Destination.objects.get(name="Journeys")
    assert journeys.events == ["purchase", "refund"]
    assert journeys.secret == stored["Journeys"].secret  # never replaced
    assert Destination.objects.get(name="Backend").enabled is True


@pytest.mark.parametrize(
    ("destinations", "path", "message"),
    [
        ([{"name": "J"}], "destinations[0].url", "is required"),
        ([{"name": "J", "url": "ftp://x"}], "destinations[0].url", ""),
        (
            [{"name": "J", "url": "http://a.test", "events": "purchase"}],
            "destinations[0].events",
            "must be a list of event names",
        ),
        (
            [{"name": "J", "url": "http://a.test"}, {"name": "J", "url": "http://b.test"}],
            "destinations[1].name",
            "already appears at destinations[0].name",
        ),
        ([{"name": "J", "url": "http://a.test", "secret": "x"}], "destinations[0].secret", ""),
    ],
)
def test_bad_destinations_are_refused_with_their_path(tmp_path, destinations, path, message):
    document = initech_document()
    document["destinations"] = destinations

    with pytest.raises(CommandError) as refused:
        provision(write(tmp_path, document))

    assert f"{path}:" in str(refused.value) and message in str(refused.value)
    assert not Organization.objects.filter(name="Initech").exists()


def test_a_destination_on_a_private_address_is_refused_with_its_path(tmp_path, settings):
    settings.CDP_CALLBACK_ALLOW_PRIVATE = False
    document = initech_document()
    document["destinations"] = [{"name": "J", "url": "http://10.0.0.5/hooks"}]

    with pytest.raises(CommandError, match=r"destinations\[0\]\.url: "):
        provision(write(tmp_path, document))
    assert not Organization.objects.filter(name="Initech").exists()
