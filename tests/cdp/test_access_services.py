"""Access services (cdp/services/): organizations, API keys and tokens, two tenants."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from cdp import keys, services
from cdp.models import ApiKey, AuthToken, DataModel, ModelKind, Organization

SYSTEM_MODEL_KEYS = {
    "user-event": "sourceId",
    "order": "orderId",
    "customer-identity": "customerId",
    "lead-information": "leadId",
}


def sha256(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# --- organizations ---------------------------------------------------------------------


@pytest.mark.django_db
def test_organization_create_creates_the_system_models_of_each_organization():
    first = services.organization_create(name="First")
    second = services.organization_create(name="Second")

    for organization in (first, second):
        models = DataModel.objects.filter(organization=organization)
        assert {(m.object_type, m.key_field) for m in models} == set(SYSTEM_MODEL_KEYS.items())
        assert {m.kind for m in models} == {ModelKind.SYSTEM}
        assert all(m.mom_code is None for m in models)
    first_ids = set(DataModel.objects.filter(organization=first).values_list("pk", flat=True))
    second_ids = set(DataModel.objects.filter(organization=second).values_list("pk", flat=True))
    assert first_ids.isdisjoint(second_ids)
    assert DataModel.objects.count() == 8


@pytest.mark.django_db
def test_system_models_ensure_is_idempotent():
    organization = services.organization_create(name="First")

    created = services.system_models_ensure(organization=organization)

    assert created == []
    assert DataModel.objects.filter(organization=organization).count() == 4


@pytest.mark.django_db
def test_system_models_ensure_restores_a_missing_system_model():
    organization = services.organization_create(name="First")
    other = services.organization_create(name="Second")
    DataModel.objects.filter(organization=organization, object_type="order").delete()

    created = services.system_models_ensure(organization=organization)

    assert [m.object_type for m in created] == ["order"]
    assert DataModel.objects.filter(organization=organization).count() == 4
    assert DataModel.objects.filter(organization=other).count() == 4


@pytest.mark.django_db
def test_organization_create_draws_a_distinct_32_hex_group_key():
    first = services.organization_create(name="First")
    second = services.organization_create(name="Second")

    for organization in (first, second):
        organization.refresh_from_db()
        assert len(organization.group_key) == 32
        assert set(organization.group_key) <= set("0123456789abcdef")
    assert first.group_key != second.group_key


@pytest.mark.django_db
def test_organization_create_keeps_a_given_group_key():
    organization = services.organization_create(name="First", group_key="ab" * 16)

    assert Organization.objects.get(pk=organization.pk).group_key == "ab" * 16


@pytest.mark.django_db
@pytest.mark.parametrize(
    "group_key",
    ["AB" * 16, "ab" * 15, "ab" * 17, "zz" * 16, "ab" * 16 + "\n"],
    ids=["upper-case", "short", "long", "not-hex", "trailing-newline"],
)
def test_organization_create_rejects_a_malformed_group_key(group_key):
    with pytest.raises(ValidationError) as raised:
        services.organization_create(name="First", group_key=group_key)

    assert "groupKey" in raised.value.message_dict
    assert Organization.objects.count() == 0
    assert DataModel.objects.count() == 0


def test_organization_create_rejects_a_taken_group_key(tenant_a):
    with pytest.raises(ValidationError) as raised:
        services.organization_create(name="Copycat", group_key=tenant_a.group_key)

    assert "groupKey" in raised.value.message_dict
    assert Organization.objects.filter(name="Copycat").count() == 0


# --- API keys --------------------------------------------------------------------------


def test_api_key_create_returns_the_raw_key_once_and_stores_only_digest_and_prefix(
    tenant_a, tenant_b
):
    api_key, raw = services.api_key_create(
        membership=tenant_a.membership, name="crm", created_by=tenant_a.user
    )

    assert keys.API_KEY_RE.match(raw)
    assert len(raw) == 40
    row = ApiKey.objects.get(pk=api_key.pk)
    assert row.organization == tenant_a.organization
    assert row.membership == tenant_a.membership
    assert row.created_by == tenant_a.user
    assert row.prefix == raw[:8]
    assert row.digest == sha256(raw)
    assert row.revoked_at is None
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    for column, value in stored.items():
        assert raw not in str(value), column
    # The raw key is not kept on the instance either.
    for field in ApiKey._meta.concrete_fields:
        assert raw not in str(getattr(api_key, field.attname)), field.name


def test_api_keys_are_distinct(tenant_a):
    raws = {
        services.api_key_create(membership=tenant_a.membership, name=f"k{i}")[1] for i in range(5)
    }

    assert len(raws) == 5
    assert ApiKey.objects.filter(organization=tenant_a.organization).count() == 6


def test_api_key_create_imports_a_given_key(tenant_a):
    raw_key = "0123456789abcdef" * 2 + "01234567"

    api_key, raw = services.api_key_create(
        membership=tenant_a.membership, name="imported", raw_key=raw_key
    )

    assert raw == raw_key
    assert api_key.digest == sha256(raw_key)
    assert api_key.prefix == "01234567"


@pytest.mark.parametrize(
    "raw_key",
    ["A" * 40, "a" * 39, "a" * 41, "g" * 40, "a" * 40 + "\n", ""],
    ids=["upper-case", "short", "long", "not-hex", "trailing-newline", "empty"],
)
def test_api_key_create_rejects_a_malformed_key(tenant_a, raw_key):
    with pytest.raises(ValidationError) as raised:
        services.api_key_create(membership=tenant_a.membership, name="bad", raw_key=raw_key)

    assert "key" in raised.value.message_dict
    assert ApiKey.objects.filter(organization=tenant_a.organization).count() == 1


def test_api_key_prefix_is_unique_per_organization_only(tenant_a, tenant_b):
    raw_key = tenant_a.raw_key[:8] + "f" * 32
    if raw_key == tenant_a.raw_key:  # pragma: no cover - one chance in 2**128
        raw_key = tenant_a.raw_key[:8] + "e" * 32

    with pytest.raises(ValidationError) as raised:
        services.api_key_create(membership=tenant_a.membership, name="clash", raw_key=raw_key)
    assert "key" in raised.value.message_dict
    assert ApiKey.objects.filter(organization=tenant_a.organization).count() == 1

    api_key, _ = services.api_key_create(
        membership=tenant_b.membership, name="same prefix elsewhere", raw_key=raw_key
    )
    assert api_key.organization == tenant_b.organization


def test_key_comparison_uses_compare_digest(tenant_a, tenant_b, monkeypatch):
    calls = []
    real_compare_digest = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real_compare_digest(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)

    found = services.api_key_authenticate(
        group_key=tenant_a.group_key, username=tenant_a.username, raw_key=tenant_a.raw_key
    )
    assert found == tenant_a.api_key
    assert calls == [(sha256(tenant_a.raw_key), tenant_a.api_key.digest)]

    calls.clear()
    _token, raw_token = services.token_issue(api_key=tenant_a.api_key)
    services.token_verify(raw_token=raw_token, raw_api_key=tenant_a.raw_key)
    assert (sha256(tenant_a.raw_key), tenant_a.api_key.digest) in calls


def test_api_key_authenticate_needs_all_three_to_match_in_one_organization(tenant_a, tenant_b):
    def authenticate(tenant_user, tenant_key, tenant_group):
        return services.api_key_authenticate(
            group_key=tenant_group.group_key,
            username=tenant_user.username,
            raw_key=tenant_key.raw_key,
        )

    assert authenticate(tenant_a, tenant_a, tenant_a) == tenant_a.api_key
    assert authenticate(tenant_b, tenant_b, tenant_b) == tenant_b.api_key
    for combination in [
        (tenant_a, tenant_a, tenant_b),
        (tenant_a, tenant_b, tenant_a),
        (tenant_b, tenant_a, tenant_a),
        (tenant_a, tenant_b, tenant_b),
        (tenant_b, tenant_a, tenant_b),
        (tenant_b, tenant_b, tenant_a),
    ]:
        assert authenticate(*combination) is None, combination


def test_api_key_revoke_kills_its_tokens_only(tenant_a, tenant_b):
    other_key_a, _ = services.api_key_create(membership=tenant_a.membership, name="other")
    services.token_issue(api_key=tenant_a.api_key)
    services.token_issue(api_key=tenant_a.api_key)
    services.token_issue(api_key=other_key_a)
    services.token_issue(api_key=tenant_b.api_key)

    revoked = services.api_key_revoke(
        organization=tenant_a.organization, api_key_id=tenant_a.api_key.pk
    )

    assert revoked.pk == tenant_a.api_key.pk
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).revoked_at is not None
    assert AuthToken.objects.filter(api_key=tenant_a.api_key).count() == 0
    assert AuthToken.objects.filter(api_key=other_key_a).count() == 1
    assert AuthToken.objects.filter(api_key=tenant_b.api_key).count() == 1
    assert ApiKey.objects.get(pk=other_key_a.pk).revoked_at is None
    assert ApiKey.objects.get(pk=tenant_b.api_key.pk).revoked_at is None


def test_api_key_revoke_keeps_the_first_revocation_time(tenant_a):
    first = services.api_key_revoke(
        organization=tenant_a.organization, api_key_id=tenant_a.api_key.pk
    ).revoked_at

    again = services.api_key_revoke(
        organization=tenant_a.organization, api_key_id=tenant_a.api_key.pk
    )

    assert again.revoked_at == first
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).revoked_at == first


def test_api_key_revoke_cannot_reach_another_organizations_key(tenant_a, tenant_b):
    services.token_issue(api_key=tenant_a.api_key)

    with pytest.raises(ApiKey.DoesNotExist):
        services.api_key_revoke(organization=tenant_b.organization, api_key_id=tenant_a.api_key.pk)

    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).revoked_at is None
    assert AuthToken.objects.filter(api_key=tenant_a.api_key).count() == 1


# --- tokens ----------------------------------------------------------------------------


def test_token_issue_stores_only_the_digest_and_the_lifetime(tenant_a, settings):
    settings.CDP_TOKEN_TTL_SECONDS = 90
    before = timezone.now()

    token, raw = services.token_issue(api_key=tenant_a.api_key)

    row = AuthToken.objects.get(pk=token.pk)
    assert row.organization == tenant_a.organization
    assert row.digest == sha256(raw)
    for column, value in AuthToken.objects.filter(pk=token.pk).values().get().items():
        assert raw not in str(value), column
    assert before <= row.issued_at <= timezone.now()
    assert row.expires_at - row.issued_at == timedelta(seconds=90)
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).last_used_at == row.issued_at


def test_token_verify_returns_the_key_with_its_organization_and_user(
    tenant_a, tenant_b, django_assert_num_queries
):
    _token, raw = services.token_issue(api_key=tenant_a.api_key)

    with django_assert_num_queries(1):
        api_key = services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key)
        assert api_key.organization.group_key == tenant_a.group_key
        assert api_key.membership.user.username == tenant_a.username

    assert api_key.pk == tenant_a.api_key.pk
    assert api_key.organization_id == tenant_a.organization.pk


def test_unknown_token_is_invalid(tenant_a):
    services.token_issue(api_key=tenant_a.api_key)

    with pytest.raises(services.TokenInvalid):
        services.token_verify(
            raw_token=keys.token_generate(tenant_a.organization.pk), raw_api_key=tenant_a.raw_key
        )


def test_token_of_another_key_of_the_same_organization_is_invalid(tenant_a):
    _other_key, other_raw = services.api_key_create(membership=tenant_a.membership, name="other")
    _token, raw = services.token_issue(api_key=tenant_a.api_key)

    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=raw, raw_api_key=other_raw)
    # The token still works with its own key.
    assert services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key) == tenant_a.api_key


def test_token_issued_in_one_organization_is_invalid_with_another_organizations_key(
    tenant_a, tenant_b
):
    _token_a, raw_a = services.token_issue(api_key=tenant_a.api_key)
    _token_b, raw_b = services.token_issue(api_key=tenant_b.api_key)

    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=raw_a, raw_api_key=tenant_b.raw_key)
    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=raw_b, raw_api_key=tenant_a.raw_key)


def test_token_of_a_revoked_key_is_invalid(tenant_a, tenant_b):
    _token, raw = services.token_issue(api_key=tenant_a.api_key)
    services.api_key_revoke(organization=tenant_a.organization, api_key_id=tenant_a.api_key.pk)

    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key)


def test_surviving_token_of_a_revoked_key_is_invalid(tenant_a):
    # A token row left behind (a revocation racing a login) must not work either.
    _token, raw = services.token_issue(api_key=tenant_a.api_key)
    ApiKey.objects.filter(pk=tenant_a.api_key.pk).update(revoked_at=timezone.now())

    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key)


def test_token_of_an_inactive_user_is_invalid(tenant_a, tenant_b):
    _token, raw = services.token_issue(api_key=tenant_a.api_key)
    _token_b, raw_b = services.token_issue(api_key=tenant_b.api_key)
    get_user_model().objects.filter(pk=tenant_a.user.pk).update(is_active=False)

    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key)
    assert services.token_verify(raw_token=raw_b, raw_api_key=tenant_b.raw_key) == tenant_b.api_key


def test_token_of_an_inactive_organization_is_invalid(tenant_a, tenant_b):
    _token, raw = services.token_issue(api_key=tenant_a.api_key)
    _token_b, raw_b = services.token_issue(api_key=tenant_b.api_key)
    Organization.objects.filter(pk=tenant_a.organization.pk).update(is_active=False)

    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key)
    assert services.token_verify(raw_token=raw_b, raw_api_key=tenant_b.raw_key) == tenant_b.api_key


def test_expired_token_is_expired(tenant_a):
    token, raw = services.token_issue(api_key=tenant_a.api_key)
    AuthToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(services.TokenExpired):
        services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key)


def test_token_expires_after_its_lifetime(tenant_a, monkeypatch):
    token, raw = services.token_issue(api_key=tenant_a.api_key)
    assert services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key) == tenant_a.api_key

    monkeypatch.setattr(timezone, "now", lambda: token.issued_at + timedelta(seconds=1799))
    assert services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key) == tenant_a.api_key

    monkeypatch.setattr(timezone, "now", lambda: token.issued_at + timedelta(seconds=1800))
    with pytest.raises(services.TokenExpired):
        services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key)


def test_expired_token_with_the_wrong_key_is_invalid_not_expired(tenant_a, tenant_b):
    # DESIGN §6: "invalid" (row 2) is checked before "expired" (row 3).
    token, raw = services.token_issue(api_key=tenant_a.api_key)
    AuthToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(hours=1))

    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=raw, raw_api_key=tenant_b.raw_key)


def test_a_token_names_its_organization_and_is_looked_up_there_only(
    tenant_a, tenant_b, django_assert_num_queries
):
    _token, raw = services.token_issue(api_key=tenant_a.api_key)
    organization_id = tenant_a.organization.pk
    assert keys.token_organization_id(raw) == organization_id
    assert services.token_verify(raw_token=raw, raw_api_key=tenant_a.raw_key) == tenant_a.api_key

    # The same random part under B's prefix is another token: unknown in B.
    _, _, random_part = raw.partition(".")
    moved = f"{keys.token_generate(tenant_b.organization.pk).partition('.')[0]}.{random_part}"
    with pytest.raises(services.TokenInvalid):
        services.token_verify(raw_token=moved, raw_api_key=tenant_b.raw_key)
    with pytest.raises(services.TokenInvalid):
        services.token_lookup(
            token_digest=keys.digest(raw), organization_id=tenant_b.organization.pk
        )

    # A string that names no organization costs no query.
    with django_assert_num_queries(0), pytest.raises(services.TokenInvalid):
        services.token_lookup(token_digest=keys.digest(random_part), organization_id=None)
