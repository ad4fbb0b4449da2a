from django.urls import path

from spend import views

app_name = "spend"

urlpatterns = [
    path("spend/", views.spend_page, name="page"),
    path("spend/export.csv", views.spend_csv, name="csv"),
    path("spend/prices/", views.price_list, name="prices"),
    path("spend/prices/new/", views.price_edit, name="price_new"),
    path("spend/prices/<int:pk>/", views.price_edit, name="price_edit"),
    path("spend/prices/<int:pk>/delete/", views.price_delete, name="price_delete"),
    path("spend/budgets/new/", views.budget_new, name="budget_new"),
    path("spend/budgets/<int:pk>/delete/", views.budget_delete, name="budget_delete"),
]
