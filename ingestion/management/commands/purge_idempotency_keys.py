"""`manage.py purge_idempotency_keys`: delete the Idempotency-Keys past their expiry
(CDP_IDEMPOTENCY_KEY_TTL_SECONDS after first use), with their stored answers."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from ingestion.log import idempotency_keys_purge


class Command(BaseCommand):
    help = "Delete expired Idempotency-Keys and their stored answers, in every organization."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = idempotency_keys_purge(before=timezone.now())
        self.stdout.write(
            f"Deleted {deleted} expired idempotency key{'' if deleted == 1 else 's'}."
        )
