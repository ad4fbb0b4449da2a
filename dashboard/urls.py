from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

# Django tries the patterns in order: the batches' come first, since their row poll is most of
# the traffic (every open list polls each running row every few seconds).
urlpatterns = [
    path("", include("batches.urls")),
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    # Signing out with no session left (another tab signed out first) goes to the login as before.
    path("logout/", login_not_required(auth_views.LogoutView.as_view()), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("alerts.urls")),
    path("", include("spend.urls")),
]
