"""Pages for a batch's results (files, previews, downloads, error triage, re-submit) and for creating
a batch from an uploaded JSONL file. The work itself lives in batches.results."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser, User
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.roles import OPERATOR, VIEWER, can_operate, has_role, role_required
from batches import services
from batches.forms import CreateBatchForm
from batches.models import Batch
from batches.results import files, submit, triage, validation
from dashboard.htmx import HtmxHttpRequest
from spend import estimate

MAX_PAGE = 10_000_000
CONTENT_NEEDS_OPERATOR = (
    "Reading the content of results (requests, model output, custom_ids, error messages) needs the "
    "operator role: results can hold sensitive data."
)


def results_reader_role() -> str:
    """The role that may read what results hold: operator, or viewer where the deployment opens
    previews to viewers (DASHBOARD_VIEWERS_SEE_RESULTS). Downloads stay operator-only either way."""
    return VIEWER if settings.DASHBOARD_VIEWERS_SEE_RESULTS else OPERATOR


def can_read_results(user: User | AnonymousUser) -> bool:
    return has_role(user, results_reader_role())


def _batch(pk: int) -> Batch:
    return get_object_or_404(Batch.objects.select_related("connection"), pk=pk)


def _file_id_or_404(batch: Batch, kind: str) -> str:
    file_id = files.file_id_of(batch, kind)
    if not file_id or kind not in files.shown_kinds(batch):
        raise Http404(f"This batch has no {kind} file.")
    return file_id


def _bounded_int(value: str | None, default: int, maximum: int) -> int:
    try:
        number = int(value) if value is not None else default
    except (TypeError, ValueError):
        return default
    return min(max(number, 1), maximum)


def _page_size(value: str | None) -> int:
    size = _bounded_int(value, files.DEFAULT_PAGE_SIZE, max(files.PAGE_SIZES))
    return size if size in files.PAGE_SIZES else files.DEFAULT_PAGE_SIZE


# --------------------------------------------------------------------------- results section


@require_GET
def batch_results(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The files, triage and re-submit section: loaded into the detail page by htmx, or a page of
    its own without JavaScript."""
    batch = _batch(pk)
    readable = can_read_results(request.user)
    context = {
        "batch": batch,
        "files": files.batch_files(batch),
        "can_read_results": readable,
        "retries": submit.retries_of(batch),
        "original": submit.original_of(batch),
        "can_operate": can_operate(request.user),
        "can_resubmit": submit.can_resubmit(batch),
        "retry_estimate": submit.estimated_retry_count(batch),
        "triage": triage.triage(batch, with_content=readable) if batch.is_terminal else None,
    }
    template = "batches/results/results.html"
    if request.htmx:
        template += "#section"
    return render(request, template, context)


# --------------------------------------------------------------------------- files


@require_GET
# The pager swaps #file-preview: an htmx request is told why in its place rather than a whole page.
@role_required(
    results_reader_role,
    message=CONTENT_NEEDS_OPERATOR,
    htmx_template="batches/results/preview.html#denied",
)
def file_preview(request: HtmxHttpRequest, pk: int, kind: str) -> HttpResponse:
    batch = _batch(pk)
    _file_id_or_404(batch, kind)
    page = _bounded_int(request.GET.get("page"), 1, MAX_PAGE)
    per_page = _page_size(request.GET.get("size"))
    context = {
        "batch": batch,
        "kind": kind,
        "page_sizes": files.PAGE_SIZES,
        "per_page": per_page,
        "can_operate": can_operate(request.user),
        "kinds": [k for k in files.shown_kinds(batch) if files.file_id_of(batch, k)],
    }
    try:
        context["preview"], context["file"] = files.preview(batch, kind, page, per_page)
    except files.ResultsUnavailable as gone:
        context["gone"] = gone.message
    except files.ResultsError as error:
        context["problem"] = error.message
    template = "batches/results/preview.html"
    if request.htmx and request.htmx.target == "file-preview":
        template += "#lines"
    return render(request, template, context)


@require_GET
@role_required(
    OPERATOR, message="Downloading results needs the operator role: results can hold sensitive data."
)
def file_download(request: HttpRequest, pk: int, kind: str) -> HttpResponse | StreamingHttpResponse:
    batch = _batch(pk)
    _file_id_or_404(batch, kind)
    context = {"batch": batch, "kind": kind, "can_operate": True}
    try:
        download = files.FileDownload(batch, kind)
    except files.ResultsUnavailable as gone:
        return render(request, "batches/results/preview.html", {**context, "gone": gone.message}, status=410)
    except files.ResultsError as error:
        return render(
            request, "batches/results/preview.html", {**context, "problem": error.message}, status=502
        )
    response = StreamingHttpResponse(download, content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
    if download.size is not None:
        response["Content-Length"] = str(download.size)
    # Results can hold personal data: keep them out of shared caches and the browser's.
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --------------------------------------------------------------------------- re-submit


@require_http_methods(["GET", "POST"])
@role_required(OPERATOR, message="Re-submitting requests needs the operator role.")
def batch_resubmit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST re-submits the failed requests as a new batch."""
    batch = _batch(pk)
    retries = submit.retries_of(batch)
    context = {
        "batch": batch,
        "retries": retries,
        "can_resubmit": submit.can_resubmit(batch),
        "retry_estimate": submit.estimated_retry_count(batch),
    }
    if request.method == "GET":
        return render(request, "batches/results/resubmit.html", context)
    if retries and request.POST.get("again") != "1":
        # A second click, or a second operator: re-running the same requests again bills them again.
        outcome = submit.SubmitOutcome(
            False,
            f"This batch was already re-submitted as {retries[-1].batch_id}. Confirm to re-submit it again.",
        )
    else:
        outcome = services.resubmit_failed(batch, user=request.user, request=request)
    if outcome.ok and outcome.batch is not None:
        messages.success(request, outcome.message)
        if request.htmx:
            return HttpResponseClientRedirect(reverse("batches:detail", args=[outcome.batch.pk]))
        return redirect(reverse("batches:detail", args=[outcome.batch.pk]))
    context["outcome"] = outcome
    if request.htmx:
        return render(request, "batches/results/resubmit.html#form", context)
    return render(request, "batches/results/resubmit.html", context)


# --------------------------------------------------------------------------- create


@require_http_methods(["GET", "POST"])
@role_required(OPERATOR, message="Creating batches needs the operator role.")
def batch_create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "batches/results/create.html", {"form": CreateBatchForm(), **_limits()})
    form = CreateBatchForm(request.POST, request.FILES)
    context = {"form": form, **_limits()}
    if not form.is_valid():
        return render(request, "batches/results/create.html", context)
    upload = form.cleaned_data["file"]
    if request.POST.get("estimate"):
        # Checked and priced here; nothing goes to the API.
        context["estimate"] = estimate.estimate_upload(
            upload.file,
            size=upload.size,
            endpoint=form.cleaned_data["endpoint"],
            connection=form.cleaned_data["connection"],
        )
        if request.htmx and request.htmx.target == "estimate":
            return render(request, "batches/results/create.html#estimate", context)
        return render(request, "batches/results/create.html", context)
    outcome = services.create_from_upload(
        form.cleaned_data["connection"],
        upload=upload.file,
        filename=upload.name,
        size=upload.size,
        endpoint=form.cleaned_data["endpoint"],
        completion_window=form.cleaned_data["completion_window"],
        metadata=form.cleaned_data["metadata"],
        user=request.user,
        request=request,
    )
    if outcome.ok and outcome.batch is not None:
        messages.success(request, outcome.message)
        detail = reverse("batches:detail", args=[outcome.batch.pk])
        return HttpResponseClientRedirect(detail) if request.htmx else redirect(detail)
    context["outcome"] = outcome
    return render(request, "batches/results/create.html", context)


def _limits() -> dict[str, int]:
    return {
        "max_lines": validation.MAX_LINES,
        "max_megabytes": validation.MAX_BYTES // (1024 * 1024),
        "max_embedding_inputs": validation.MAX_EMBEDDING_INPUTS,
    }
