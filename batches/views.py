from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def batch_list(request: HttpRequest) -> HttpResponse:
    return render(request, "batches/list.html", {})
