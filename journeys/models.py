"""User Event configurations and the user events they produce."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.expressions import Combinable
from django.db.models.functions import Lower

from cdp.identifiers import ALNUM, UPPER_ALNUM, random_string
from cdp.models import DataModel, Organization, identifier_indexed
from cdp.querysets import ProbedDatesQuerySet
from cdp.schema import CATEGORIES, CHANNELS
from journeys.event_time import EVENT_TIME_INGESTED


class Trigger(models.TextChoices):
    CREATED = "Created", "Created"
    CHANGED = "Changed", "Changed"


# Labels are the wire values (`UserIdentity`, not Django's derived "Useridentity").
CHANNEL_CHOICES = [(c, c) for c in CHANNELS]
CATEGORY_CHOICES = [(c, c) for c in CATEGORIES]


def config_id_generate(*, group_key: str, trigger: str) -> str:
    """The jeConfigId: `<group key>-<Created|Changed>-<15 alphanumerics>`."""
    return f"{group_key}-{trigger}-{random_string(ALNUM, 15)}"


def event_key_generate() -> str:
    """The jeEventKey: `CJE-<10 upper alphanumerics>.<10 upper alphanumerics>`."""
    return f"CJE-{random_string(UPPER_ALNUM, 10)}.{random_string(UPPER_ALNUM, 10)}"


def event_id_generate() -> str:
    return secrets.token_hex(16)


def backfill_progress_key(config: JourneyEventConfig) -> str:
    """Where a running backfill of `config` keeps its progress (the shared cache), for the
    User Event's page: {"records": read so far, "total": records of the model}."""
    return f"cdp:backfill:{config.organization_id}:{config.pk}"


class JourneyEventConfig(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="journey_event_configs"
    )
    # db_constraint=False: on PostgreSQL the database keeps the tenant-leading key instead
    # (cdp/distribution.py).
    data_model = models.ForeignKey(
        DataModel,
        on_delete=models.CASCADE,
        related_name="journey_event_configs",
        db_constraint=False,
    )
    config_id = models.CharField("ID (jeConfigId)", max_length=80, editable=False)
    event_key = models.CharField("Event Key (jeEventKey)", max_length=25, editable=False)
    ref = models.CharField(  # noqa: DJ001 (NULL: no provisioning ref, unique otherwise)
        max_length=100, null=True, blank=True, help_text="Provisioning reference."
    )
    trigger = models.CharField("Trigger when", max_length=10, choices=Trigger.choices)
    event_name = models.CharField(max_length=100)
    event_time = models.CharField(
        max_length=40,
        default=EVENT_TIME_INGESTED,
        help_text="'ingested' (the write time) or a timestamp field of the model.",
    )
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES, default="None")
    category = models.CharField(max_length=20, choices=CATEGORY_CHOICES)
    sub_category = models.CharField(max_length=100, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    update_values = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField("Enable", default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "User Event"
        verbose_name_plural = "User Events"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "config_id"], name="jeconfig_unique_config_id"
            ),
            models.UniqueConstraint(
                fields=["organization", "event_key"], name="jeconfig_unique_event_key"
            ),
            models.UniqueConstraint(
                fields=["organization", "ref"],
                condition=Q(ref__isnull=False),
                name="jeconfig_unique_ref",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} ({self.trigger})"


# An event's three personal identifiers, by column, as erasure reads them (emails
# compare case-insensitively).
EVENT_IDENTIFIERS: dict[str, Combinable] = {
    "customer_id": F("customer_id"),
    "email": Lower("email"),
    "phone": F("phone"),
}


class UserEvent(models.Model):
    # Indexed by the constraints that lead with it (no index of its own to update).
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="user_events",
        db_index=False,
    )
    # No index of its own: the ingest path looks a config's events up by (organization,
    # config, sourceId) in `userevent_created_once`; an index on the config alone would
    # cost every insert and could lure the planner away from that one.
    config = models.ForeignKey(
        JourneyEventConfig,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
        db_index=False,
        db_constraint=False,  # the database keeps the tenant-leading key instead
    )
    # Where the event comes from, fixed when it is written: True for an entry of objectType
    # `user-event`, False for an event a User Event generated. The de-duplication of
    # ingested events keys on it, never on `config`: deleting a User Event sets its
    # events' `config` to NULL, and they stay generated events (kept, and outside the
    # ingested events' unique constraints). The database default serves the writers of
    # the release before the column (docs/deploy.md: the old code runs during `migrate`).
    ingested = models.BooleanField(default=False, db_default=False)
    event_id = models.CharField(
        "event ID", max_length=32, default=event_id_generate, editable=False
    )
    # Indexed and de-duplicated on: entries are held to 255 characters (cdp.schema).
    source = models.CharField(max_length=255)
    source_id = models.CharField("source ID", max_length=255)
    condition = models.CharField(max_length=10, choices=Trigger.choices)
    channel = models.TextField(blank=True)
    event_ctg = models.TextField(blank=True)
    event_ctg2 = models.TextField(blank=True)
    event_ctg3 = models.TextField(blank=True)
    event_name = models.CharField(max_length=255)
    event_at = models.DateTimeField("event time")
    value = models.FloatField(null=True, blank=True)
    event_labels = models.JSONField(default=list, blank=True)
    event_label2s = models.JSONField(default=list, blank=True)
    event_label3s = models.JSONField(default=list, blank=True)
    # Free text from records and entries: no length limit, so no value can fail the insert.
    customer_id = models.TextField("customer ID", blank=True)
    email = models.TextField(blank=True)
    phone = models.TextField(blank=True)
    note = models.TextField(blank=True)
    properties = models.JSONField(default=dict, blank=True)
    request_id = models.CharField("request ID", max_length=32, blank=True)
    created_at = models.DateTimeField("written at")

    objects = ProbedDatesQuerySet.as_manager()

    class Meta:
        verbose_name = "event"
        verbose_name_plural = "events"
        ordering = ["-event_at", "-id"]
        indexes = [
            # The Read API's pages, newest first, whatever the filter: each filter has an
            # index that ends in the page order, so no page sorts the tenant's events.
            # It carries the User Event, so that the dashboard's events per User Event are
            # an index-only scan (journeys/dashboard.py).
            models.Index(
                fields=["organization", "-event_at", "-id"],
                include=["config"],
                name="userevent_org_time",
            ),
            models.Index(
                fields=["organization", "event_name", "-event_at", "-id"],
                name="userevent_org_name_time",
            ),
            models.Index(
                fields=["organization", "source", "-event_at", "-id"],
                name="userevent_org_source_time",
            ),
            # A record's events (the Read API's sourceId, the Console's search), whatever
            # the source.
            models.Index(
                fields=["organization", "source_id", "-event_at", "-id"],
                name="userevent_org_srcid_time",
            ),
            # Erasure (ingestion/erasure.py) finds a person's events by these; partial, so
            # an event that carries none of them costs no entry.
            *(
                models.Index(
                    "organization",
                    identifier_indexed(expression),
                    name=f"userevent_org_{column}",
                    condition=~Q(**{column: ""}),
                )
                for column, expression in EVENT_IDENTIFIERS.items()
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "event_id"], name="userevent_unique_id"
            ),
            # A Created configuration fires at most once per record, ever, even when
            # requests race: the second insert conflicts instead of duplicating.
            models.UniqueConstraint(
                fields=["organization", "config", "source_id"],
                condition=Q(config__isnull=False, condition="Created"),
                name="userevent_created_once",
            ),
            # Ingested user events (objectType user-event) are de-duplicated; generated
            # ones, whatever became of their User Event, are not.
            models.UniqueConstraint(
                fields=["organization", "source", "source_id", "event_name"],
                condition=Q(ingested=True, condition="Created"),
                name="userevent_ingested_created_unique",
            ),
            models.UniqueConstraint(
                fields=["organization", "source", "source_id", "event_name", "event_at"],
                condition=Q(ingested=True, condition="Changed"),
                name="userevent_ingested_changed_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} {self.source}/{self.source_id}"
