from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# Django tries the patterns in order: the batches' come first, since their row poll is most of
# the traffic (every open list polls each running row every few seconds).
urlpatterns = [
    path("", include("batches.urls")),
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("alerts.urls")),
]
