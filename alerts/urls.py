from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("webhooks/openai/<str:ref>/", views.openai_webhook, name="openai_webhook"),
    path("metrics", views.metrics, name="metrics"),
    path("alerts/channels/", views.channel_list, name="channels"),
    path("alerts/channels/<int:pk>/delete/", views.channel_delete, name="channel_delete"),
    path("alerts/channels/<int:pk>/toggle/", views.channel_toggle, name="channel_toggle"),
    path("alerts/failures/", views.failures, name="failures"),
    path("alerts/failures/<int:pk>/retry/", views.retry, name="retry"),
]
