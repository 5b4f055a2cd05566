"""The ingestion log: one row per authenticated ingest request."""

from django.db import models

from cdp.models import ApiKey, DataModel, Organization
from cdp.querysets import ProbedDatesQuerySet


class IngestionRequest(models.Model):
    # Indexed by the constraints that lead with it (no index of its own to update).
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="ingestion_requests",
        db_index=False,
    )
    api_key = models.ForeignKey(
        ApiKey,
        verbose_name="API key",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        # On PostgreSQL the database keeps tenant-leading keys instead, (organization_id,
        # api_key_id) and (organization_id, config_id) (cdp/distribution.py).
        db_constraint=False,
    )
    request_id = models.CharField("request ID", max_length=32)
    object_type = models.CharField(max_length=50, blank=True)
    source = models.CharField(max_length=100, blank=True)
    init_data = models.BooleanField(default=False)
    config = models.ForeignKey(
        "journeys.JourneyEventConfig",
        verbose_name="User Event",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    total = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    events_generated = models.PositiveIntegerField(default=0)
    events_suppressed = models.PositiveIntegerField(default=0)
    events_dropped = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=40, blank=True)
    message = models.CharField(max_length=300, blank=True)
    duration_ms = models.FloatField("duration (ms)", default=0)
    # The request's Idempotency-Key header (blank: none), and how many times a retry with
    # it was answered with this request's stored answer.
    idempotency_key = models.CharField("Idempotency-Key", max_length=255, blank=True)
    replays = models.PositiveIntegerField(db_default=0)
    last_replayed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProbedDatesQuerySet.as_manager()

    class Meta:
        verbose_name = "ingestion request"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "request_id"], name="ingestionrequest_unique_request"
            ),
        ]
        indexes = [
            # The log's pages, newest first; it carries the counts so that the dashboard's
            # hourly chart is an index-only scan (ingestion/admin/dashboard.py).
            models.Index(
                fields=["organization", "-created_at"],
                include=["created", "updated", "unchanged", "failed"],
                name="ingestionrequest_org_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.object_type} {self.status}"


class RecordHistory(models.Model):
    """One write that created or changed a record of a model tagged KEEP_HISTORY: the
    request, the action, the source, the time and each changed field's old and new value
    (`{"<field>": {"from": …, "to": …}}`; a created record: every field, from null).

    Written by the ingest writer in the transaction of the write; purged after
    CDP_RECORD_HISTORY_DAYS (`manage.py purge_record_history`).
    """

    # Indexed by the indexes that lead with it (no index of its own to update). No foreign
    # key of its own in the database, as a record's: the (organization, data model) one
    # holds it.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    data_model = models.ForeignKey(
        DataModel, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    key = models.CharField(max_length=255)
    request_id = models.CharField(max_length=32)
    action = models.CharField(max_length=10)  # created or updated
    source = models.CharField(max_length=100)
    changes = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "record history entry"
        verbose_name_plural = "record history"
        indexes = [
            # A record's history, newest first (the Read API's pages).
            models.Index(
                fields=["organization", "data_model", "key", "-id"], name="recordhistory_record"
            ),
            # The retention purge, organization by organization.
            models.Index(fields=["organization", "created_at"], name="recordhistory_org_time"),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.action} {self.request_id}"


class IdempotencyKey(models.Model):
    """An ingest request's `Idempotency-Key` and the answer it got, kept until
    `expires_at` (CDP_IDEMPOTENCY_KEY_TTL_SECONDS after first use) so that a retry with
    the same key and body is answered the same bytes, and nothing is written twice.

    Written in the transaction of the request's writes, so a stored answer always
    matches what was stored; `manage.py purge_idempotency_keys` deletes the expired.
    """

    # Indexed by the constraint that leads with it (no index of its own to update).
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    key = models.CharField(max_length=255)
    # SHA-256 (hex) of the raw body bytes and the initData value.
    fingerprint = models.CharField(max_length=64)
    request_id = models.CharField(max_length=32)
    status = models.PositiveSmallIntegerField()
    body = models.TextField()  # the answer's exact JSON
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = "idempotency key"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "key"], name="idempotencykey_unique_key"
            ),
        ]
        indexes = [models.Index(fields=["expires_at"], name="idempotencykey_expiry")]

    def __str__(self) -> str:
        return f"{self.key} → {self.request_id}"


class CallbackStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class OutboxRow(models.Model):
    """What every outbox row holds besides its payload: its delivery state, and a worker's
    lease. The outboxes share the machinery that claims, sends and records them
    (ingestion/callbacks.py `outbox_claim`, `outbox_deliver_due`)."""

    status = models.CharField(
        max_length=10, choices=CallbackStatus.choices, default=CallbackStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A worker's claim: nobody else sends the row before `locked_until`.
    locked_until = models.DateTimeField(null=True, blank=True)
    locked_by = models.CharField(max_length=32, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        abstract = True


class CallbackDelivery(OutboxRow):
    """The outbox of ingestion callbacks: one row per ingest request that stored or
    rejected entries while the organization's callback was on, written in that request's
    transaction and sent by `manage.py run_worker` (ingestion/callbacks.py).

    The Console shows `status`, `attempts`, `next_attempt_at`, `last_status_code`,
    `last_error` and `delivered_at`; `body` is the JSON sent, which holds no secret.
    """

    # Indexed by the constraints that lead with it (no index of its own to update).
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="callback_deliveries",
        db_index=False,
    )
    request_id = models.CharField(max_length=32)
    # The public 8-character prefix of the key that sent the request; blank for imports.
    api_key_prefix = models.CharField(max_length=8, blank=True)
    # The exact body sent (and signed) on every attempt.
    body = models.TextField()
    entries = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "callback delivery"
        verbose_name_plural = "callback deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "request_id"], name="callbackdelivery_unique_request"
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "status", "-created_at"],
                name="callbackdelivery_org_status",
            ),
            # The one index that does not lead with the organization: workers claim due
            # rows of every tenant (docs/decisions.md, docs/scale-out.md).
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="callbackdelivery_due",
            ),
        ]

    def __str__(self) -> str:
        return f"callback {self.request_id} {self.status}"


class Destination(models.Model):
    """A system the organization's user events are pushed to (ingestion/destinations.py):
    every committed event whose name `events` lists (all when empty) is queued for it in
    the transaction that stores the event, and POSTed, signed, in batches of at most 100.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="destinations", db_index=False
    )
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=2000)
    enabled = models.BooleanField(default=True)
    events = models.JSONField("event names", default=list, blank=True)
    # `whsec_<base64 of 24 random bytes>`, shown once at creation (Standard Webhooks).
    secret = models.CharField(max_length=100, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "destination"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="destination_unique_name"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DestinationDelivery(OutboxRow):
    """One POST to a destination: up to 100 events of one ingest request, in its order.
    Written by the request's own write statement; sent by `run_worker` with the callback
    backoff, the same `webhook-id` on every attempt."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # On PostgreSQL the database keeps (organization_id, destination_id) instead.
    destination = models.ForeignKey(
        Destination,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
        db_constraint=False,
    )
    webhook_id = models.CharField(max_length=40)
    request_id = models.CharField(max_length=32)
    # The events' eventIds, in request order; each is read and rendered at every attempt.
    event_ids = models.JSONField(default=list)

    class Meta:
        verbose_name = "destination delivery"
        verbose_name_plural = "destination deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "webhook_id"], name="destinationdelivery_unique_id"
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "destination", "status", "-created_at"],
                name="destdelivery_org_dest_status",
            ),
            # As the callback outbox's: workers list the organizations with due rows.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="destinationdelivery_due",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.webhook_id} {self.status}"
