from django.urls import path

from batches import views

app_name = "batches"

urlpatterns = [
    path("", views.batch_list, name="list"),
    path("batches/<int:pk>/", views.batch_detail, name="detail"),
    path("batches/<int:pk>/row/", views.batch_row, name="row"),
    path("batches/<int:pk>/cancel/", views.batch_cancel, name="cancel"),
]
