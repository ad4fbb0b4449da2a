from django.urls import path

from batches import views, views_bulk, views_connections, views_events, views_live, views_results

app_name = "batches"

urlpatterns = [
    # First: the row poll is the most frequent request (see dashboard/urls.py).
    path("batches/<int:pk>/row/", views.batch_row, name="row"),
    path("live/", views_live.list_live, name="live"),
    path("live/events/", views_events.live_events_view, name="live_events"),
    path("", views.batch_list, name="list"),
    path("batches/<int:pk>/", views.batch_detail, name="detail"),
    path("batches/<int:pk>/live/", views_live.detail_live, name="detail_live"),
    path("batches/<int:pk>/cancel/", views.batch_cancel, name="cancel"),
    path("batches/bulk-cancel/", views_bulk.bulk_cancel, name="bulk_cancel"),
    path("batches/bulk-cancel/<int:pk>/", views_bulk.bulk_cancel_progress, name="bulk_cancel_progress"),
    path("batches/new/", views_results.batch_create, name="create"),
    path("batches/<int:pk>/results/", views_results.batch_results, name="results"),
    path("batches/<int:pk>/files/<str:kind>/", views_results.file_preview, name="file_preview"),
    path("batches/<int:pk>/files/<str:kind>/download/", views_results.file_download, name="file_download"),
    path("batches/<int:pk>/resubmit/", views_results.batch_resubmit, name="resubmit"),
    path("connections/", views_connections.connection_list, name="connections"),
    path("connections/new/", views_connections.connection_edit, name="connection_new"),
    path("connections/<int:pk>/", views_connections.connection_edit, name="connection_edit"),
    path("connections/<int:pk>/test/", views_connections.connection_test, name="connection_test"),
    path("connections/<int:pk>/delete/", views_connections.connection_delete, name="connection_delete"),
]
