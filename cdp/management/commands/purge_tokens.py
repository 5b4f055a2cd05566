"""`manage.py purge_tokens`: delete expired Authentication API tokens (run it daily)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from cdp.services import auth_tokens_purge_expired


class Command(BaseCommand):
    help = "Delete expired tokens of every organization and print how many were deleted."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = auth_tokens_purge_expired()
        self.stdout.write(f"Deleted {deleted} expired token{'' if deleted == 1 else 's'}.")
