from django.apps import AppConfig


class SpendConfig(AppConfig):
    name = "spend"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # /metrics is served from alerts' registry; spend adds its own families to it rather than
        # teaching alerts about money.
        from spend import metrics

        metrics.register()
