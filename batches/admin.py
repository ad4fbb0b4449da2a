from django.contrib import admin

from batches.models import Batch, Connection


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "enabled", "last_success_at", "last_error_at")
    # Keys are managed on the Connections page, where they are encrypted; never shown here.
    exclude = ("api_key_encrypted",)
    readonly_fields = ("api_key_last4",)


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("batch_id", "status", "connection", "endpoint", "model", "created_at", "total_requests")
    list_filter = ("status", "connection", "endpoint")
    search_fields = ("batch_id",)
    list_select_related = ("connection",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False
