from django.contrib import admin

from alerts.forms import ChannelForm
from alerts.models import Channel, Delivery, WebhookReceipt


def _admin_fields(form_fields: tuple[str, ...]) -> tuple[str, ...]:
    """The channel form's fields in its order, and two only the admin shows: url_hint before the URL
    it stands for, and the channel's owner (a personal channel's user) before the events."""
    fields = list(form_fields)
    fields.insert(fields.index("url"), "url_hint")
    fields.insert(fields.index("events"), "user")
    return tuple(fields)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    # The URL and secret are write-only form fields (stored encrypted); url_hint says what is stored.
    fields = _admin_fields(ChannelForm.Meta.fields)
    readonly_fields = ("url_hint",)
    list_display = ("__str__", "kind", "connection", "user", "enabled")
    list_filter = ("kind", "enabled")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("event", "batch", "channel", "state", "attempts", "next_attempt_at", "sent_at")
    list_filter = ("state", "event")
    # Read-only: a delivery's state only moves by the services' compare-and-set updates.
    readonly_fields = [field.name for field in Delivery._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(WebhookReceipt)
class WebhookReceiptAdmin(admin.ModelAdmin):
    list_display = ("webhook_id", "event_type", "connection", "batch_id", "received_at")
    readonly_fields = ("webhook_id", "event_type", "connection", "batch_id", "received_at")

    def has_add_permission(self, request) -> bool:
        # Receipts are written by the webhook endpoint only; an empty add form could not be saved.
        return False
