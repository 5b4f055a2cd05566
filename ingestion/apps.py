from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from datetime import timedelta

        from django.conf import settings

        from cdp.schedules import schedule_register
        from cdp.schema_cache import schema_cache_watch
        from ingestion import tasks
        from ingestion.models import Destination

        # The ingest plan keeps the enabled destinations with the schema.
        schema_cache_watch(Destination)

        poll = timedelta(seconds=settings.CDP_CALLBACK_POLL_SECONDS)
        schedule_register(
            name="deliver_callbacks", task=tasks.deliver_callbacks, every=poll, drain=True
        )
        schedule_register(
            name="deliver_destinations", task=tasks.deliver_destinations, every=poll, drain=True
        )
        for purge in (
            tasks.purge_ingestion_logs,
            tasks.purge_idempotency_keys,
            tasks.purge_record_history,
        ):
            schedule_register(name=purge.name, task=purge, every=timedelta(days=1))
