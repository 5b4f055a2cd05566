from django.apps import AppConfig


class CdpConfig(AppConfig):
    verbose_name = "Console"
    name = "cdp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cdp.model_cache import model_cache_connect
        from cdp.token_cache import token_cache_connect

        token_cache_connect()
        model_cache_connect()
