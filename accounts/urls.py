from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("audit/", views.audit_log, name="audit"),
    path("audit.csv", views.audit_log_csv, name="audit_csv"),
]
