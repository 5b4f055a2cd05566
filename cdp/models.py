"""Tenants, access and data models.

Tenancy: every tenant-owned table has a non-null `organization` and every unique
constraint on it starts with the organization. The two exceptions, looked up from the
wire before the tenant is known, are documented in docs/decisions.md (token digest).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, Left, Lower

from cdp import identifiers
from cdp.schema import (
    CUSTOM_FIELD_NAME_HELP,
    CUSTOM_MODEL_OBJECT_TYPE,
    SYSTEM_MODELS,
    Field,
    FieldType,
    ModelSchema,
    SystemModelSpec,
    custom_field_pattern,
)


class Organization(models.Model):
    name = models.CharField(max_length=200)
    group_key = models.CharField(
        "group key (cdpGKey)",
        max_length=32,
        unique=True,
        default=identifiers.group_key_generate,
        editable=False,
    )
    is_active = models.BooleanField(default=True)
    callback_url = models.URLField(blank=True, max_length=500)
    callback_enabled = models.BooleanField(default=False)
    # The HMAC key callbacks are signed with: kept as generated, since the worker signs
    # with it, and shown once (cdp/callback_settings.py). Never display or log it.
    callback_secret = models.CharField(max_length=64, blank=True, editable=False)
    callback_secret_set_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user"], name="membership_unique_org_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class ApiKey(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    # db_constraint=False on every key between tenant tables: on PostgreSQL the database
    # keeps a tenant-leading one instead, (organization_id, x_id) → (organization_id, id)
    # (cdp/distribution.py).
    membership = models.ForeignKey(
        Membership, on_delete=models.CASCADE, related_name="api_keys", db_constraint=False
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "prefix"], name="apikey_unique_org_prefix"
            ),
            # A member's live keys are told apart by name (the Console lists them by name,
            # provisioning matches them by name). A revoked key is gone, so its name may
            # be given to a new key (docs/decisions.md, "API keys in the Console").
            models.UniqueConstraint(
                fields=["organization", "membership", "name"],
                condition=Q(revoked_at__isnull=True),
                name="apikey_unique_live_name",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuthToken(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="auth_tokens"
    )
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.CASCADE, related_name="tokens", db_constraint=False
    )
    # Unique per organization: a token names its organization (cdp/keys.py), so it is
    # looked up by (organization, digest), on one shard once distributed.
    digest = models.CharField(max_length=64, editable=False)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = "token"
        verbose_name_plural = "tokens"
        indexes = [
            models.Index(fields=["organization", "expires_at"], name="authtoken_org_expires"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "digest"], name="authtoken_unique_org_digest"
            ),
        ]

    def __str__(self) -> str:
        return f"token for {self.api_key}"


class ModelKind(models.TextChoices):
    SYSTEM = "system", "System"
    CUSTOM = "custom", "Custom"


class DataModel(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="data_models"
    )
    kind = models.CharField(max_length=10, choices=ModelKind.choices)
    object_type = models.CharField(max_length=50)
    name = models.CharField(max_length=100)
    # NULL for system models: unique only among custom models.
    mom_code = models.CharField(  # noqa: DJ001
        "momCode", max_length=17, null=True, blank=True, editable=False
    )
    key_field = models.CharField(max_length=50, editable=False)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "model"
        verbose_name_plural = "models"
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="datamodel_unique_name"),
            models.UniqueConstraint(
                fields=["organization", "mom_code"],
                condition=Q(mom_code__isnull=False),
                name="datamodel_unique_mom_code",
            ),
            models.UniqueConstraint(
                fields=["organization", "object_type"],
                condition=Q(kind="system"),
                name="datamodel_unique_system_type",
            ),
        ]

    def __str__(self) -> str:
        return self.name if self.kind == ModelKind.SYSTEM else f"{self.name} ({self.mom_code})"

    @property
    def is_custom(self) -> bool:
        return self.kind == ModelKind.CUSTOM

    @property
    def spec(self) -> SystemModelSpec:
        return SYSTEM_MODELS[CUSTOM_MODEL_OBJECT_TYPE if self.is_custom else self.object_type]

    @property
    def source_name(self) -> str:
        """What events and logs call this model: the momCode, or the object type."""
        return self.mom_code or self.object_type

    def schema(self, field_definitions: list[FieldDefinition]) -> ModelSchema:
        return ModelSchema.build(
            self.spec,
            tags=tuple(self.tags),
            custom_fields=tuple(fd.as_field() for fd in field_definitions),
        )


def validate_custom_field_name(name: str) -> None:
    if custom_field_pattern(name) is None:
        raise ValidationError(
            f"{name!r} is not a custom field name: use {CUSTOM_FIELD_NAME_HELP}.",
            code="invalid_custom_field_name",
        )


class FieldDefinition(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="field_definitions"
    )
    data_model = models.ForeignKey(
        DataModel, on_delete=models.CASCADE, related_name="field_definitions", db_constraint=False
    )
    name = models.CharField(max_length=40, validators=[validate_custom_field_name])
    label = models.CharField(max_length=100, blank=True)
    type = models.CharField(
        max_length=20, choices=[(t.value, t.value) for t in FieldType], editable=False
    )
    required = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "field"
        verbose_name_plural = "fields"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "data_model", "name"], name="fielddef_unique_name"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.label})" if self.label else self.name

    def as_field(self) -> Field:
        return Field(
            self.name, FieldType(self.type), required=self.required, custom=True, label=self.label
        )


# A record's three personal identifiers, as erasure reads them: the Order model names its
# email and phone customerEmail and customerPhone; emails compare case-insensitively.
RECORD_IDENTIFIERS = {
    "customerId": KT("data__customerId"),
    "email": Lower(Coalesce(KT("data__email"), KT("data__customerEmail"))),
    "phone": Coalesce(KT("data__phone"), KT("data__customerPhone")),
}
# Which records carry each (the erasure indexes' conditions).
RECORD_IDENTIFIER_KEYS = {
    "customerId": ["customerId"],
    "email": ["email", "customerEmail"],
    "phone": ["phone", "customerPhone"],
}
# Indexes hold the first 255 characters: text fields have no length limit, and a B-tree
# entry has one. A lookup compares the prefixes (the index) and then the whole values.
IDENTIFIER_INDEXED_LENGTH = 255


def identifier_indexed(expression: Any) -> Left:
    return Left(expression, IDENTIFIER_INDEXED_LENGTH)


class EntityRecord(models.Model):
    # Indexed by the constraints that lead with it (no index of its own to update). No
    # foreign key of its own in the database: the (organization, data model) one (ingestion
    # migration 0009) already holds the organization to its models', and each foreign key
    # is a check per written row, at commit (about 3.5 µs a row, a tenth of an import's).
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="records",
        db_index=False,
        db_constraint=False,
    )
    # No index of its own either: records are looked up by (organization, model, key), and
    # an index on the model alone could only serve deleting a model, which only deleting
    # the organization does; meanwhile it costs every insert and tempts the planner.
    data_model = models.ForeignKey(
        DataModel,
        on_delete=models.CASCADE,
        related_name="records",
        db_index=False,
        db_constraint=False,
    )
    key = models.CharField(max_length=255)
    cdp_id = models.CharField(max_length=20, default=identifiers.cdp_id_generate, editable=False)
    data = models.JSONField(default=dict)
    source = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "record"
        verbose_name_plural = "records"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "data_model", "key"], name="record_unique_key"
            ),
            models.UniqueConstraint(fields=["organization", "cdp_id"], name="record_unique_cdp_id"),
        ]
        # Erasure (ingestion/erasure.py) looks a person's records up by these, in every
        # model at once; partial, so a record that carries none of them costs no entry.
        # The lookups repeat each index's expression and condition exactly.
        indexes = [
            models.Index(
                "organization",
                identifier_indexed(RECORD_IDENTIFIERS[kind]),
                name=f"record_org_{name}",
                condition=Q(data__has_any_keys=RECORD_IDENTIFIER_KEYS[kind]),
            )
            for kind, name in (
                ("customerId", "customer_id"),
                ("email", "email"),
                ("phone", "phone"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.data_model.source_name}/{self.key}"


class ErasureRequest(models.Model):
    """One erasure of a person's data (ingestion/erasure.py): who asked, what it erased,
    and, when it suppresses, the SHA-256 digests of the identifiers it was given (never
    the values). An organization's unlifted suppressions refuse later entries that carry
    one of those identifiers (`cdp.suppression`)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="erasure_requests", db_index=False
    )
    erasure_id = models.CharField("erasure ID", max_length=32, editable=False)
    # Which identifiers were given (customerId, email, phone), never their values.
    identifiers = models.JSONField(default=list)
    # Who asked: "API key <prefix>", a member's username, or "operator" (manage.py erase).
    requested_by = models.CharField(max_length=200)
    records = models.PositiveIntegerField(default=0)
    events = models.PositiveIntegerField(default=0)
    history = models.PositiveIntegerField("history entries", default=0)
    callbacks = models.PositiveIntegerField("pending callbacks changed", default=0)
    deliveries = models.PositiveIntegerField("destination deliveries changed", default=0)
    suppress = models.BooleanField("suppression", default=False)
    # `<kind>:<sha256 hex>` for each identifier given, kept while the suppression holds.
    digests = models.JSONField(default=list, blank=True)
    suppression_lifted_at = models.DateTimeField(null=True, blank=True)
    suppression_lifted_by = models.CharField(max_length=200, blank=True)
    # When the worker removed the identifiers from the request log, the stored answers
    # and the sent callbacks (ingestion/erasure.py `erasure_logs_scrub`).
    logs_scrubbed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "erasure request"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "erasure_id"], name="erasure_unique_id"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="erasure_org_time"),
        ]

    def __str__(self) -> str:
        return self.erasure_id

    @property
    def suppressing(self) -> bool:
        return self.suppress and self.suppression_lifted_at is None


class ScheduledRun(models.Model):
    """When a recurring task (cdp/schedules.py) is next due; one row per schedule."""

    name = models.CharField(max_length=100, unique=True)
    next_run_at = models.DateTimeField()
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "scheduled run"

    def __str__(self) -> str:
        return self.name
