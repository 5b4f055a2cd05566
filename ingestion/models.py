"""The ingestion log (DESIGN §4): one row per authenticated ingest request."""

from django.db import models

from cdp.models import ApiKey, Organization


class IngestionRequest(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="ingestion_requests"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=32)
    object_type = models.CharField(max_length=50, blank=True)
    source = models.CharField(max_length=100, blank=True)
    init_data = models.BooleanField(default=False)
    config = models.ForeignKey(
        "journeys.JourneyEventConfig",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
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
    duration_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ingestion request"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "request_id"], name="ingestionrequest_unique_request"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="ingestionrequest_org_time"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.object_type} {self.status}"
