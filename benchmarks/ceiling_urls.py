"""The dashboard's URLs plus /bench/ceiling/: a bare view returning a constant string, served by the
same server with the same settings and middleware, so it is the most any view can get from them."""

from django.http import HttpResponse
from django.urls import include, path


def ceiling(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/ceiling/", ceiling),
    path("", include("dashboard.urls")),
]
