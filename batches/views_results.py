"""Pages for a batch's results (files, previews, downloads, error triage, re-submit) and for creating
a batch from an uploaded JSONL file. The work itself lives in the batches.results package."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts import audit
from accounts.models import AuditEvent
from accounts.roles import can_operate
from batches.forms import CreateBatchForm
from batches.models import Batch
from batches.results import files, submit, triage, validation

MAX_PAGE = 10_000_000
CONTENT_NEEDS_OPERATOR = (
    "Reading the content of results (requests, model output, custom_ids, error messages) needs the "
    "operator role: results can hold sensitive data."
)


def _forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "batches/results/forbidden.html", {"message": message}, status=403)


def can_read_results(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether the user may read what results hold. Operators may; viewers only where the deployment
    opens previews to them (DASHBOARD_VIEWERS_SEE_RESULTS). Downloads stay operator-only either way."""
    return can_operate(user) or settings.DASHBOARD_VIEWERS_SEE_RESULTS


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
@login_required
def batch_results(request: HttpRequest, pk: int) -> HttpResponse:
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
@login_required
def file_preview(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    batch = _batch(pk)
    _file_id_or_404(batch, kind)
    if not can_read_results(request.user):
        if request.htmx:
            # The pager swaps #file-preview: say why in its place rather than a whole page.
            return render(
                request,
                "batches/results/_preview_denied.html",
                {"message": CONTENT_NEEDS_OPERATOR},
                status=403,
            )
        return _forbidden(request, CONTENT_NEEDS_OPERATOR)
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
@login_required
def file_download(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    batch = _batch(pk)
    _file_id_or_404(batch, kind)
    if not can_operate(request.user):
        return _forbidden(
            request, "Downloading results needs the operator role: results can hold sensitive data."
        )
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
@login_required
def batch_resubmit(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST re-submits the failed requests as a new batch."""
    batch = _batch(pk)
    if not can_operate(request.user):
        return _forbidden(request, "Re-submitting requests needs the operator role.")
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
        outcome = submit.Outcome(
            False,
            f"This batch was already re-submitted as {retries[-1].batch_id}. Confirm to re-submit it again.",
        )
    else:
        outcome = submit.resubmit_failed(batch)
        audit.record(
            AuditEvent.Action.CREATE_BATCH,
            actor=request.user,
            target=f"{batch.connection.name}/{outcome.batch.batch_id if outcome.batch else '-'}",
            succeeded=outcome.ok,
            detail=f"re-submit of {batch.batch_id}: {outcome.message}",
            request=request,
        )
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
@login_required
def batch_create(request: HttpRequest) -> HttpResponse:
    if not can_operate(request.user):
        return _forbidden(request, "Creating batches needs the operator role.")
    if request.method == "GET":
        return render(request, "batches/results/create.html", {"form": CreateBatchForm(), **_limits()})
    form = CreateBatchForm(request.POST, request.FILES)
    context = {"form": form, **_limits()}
    if not form.is_valid():
        return render(request, "batches/results/create.html", context)
    upload = form.cleaned_data["file"]
    outcome = submit.create_from_upload(
        form.cleaned_data["connection"],
        upload=upload.file,
        filename=upload.name,
        size=upload.size,
        endpoint=form.cleaned_data["endpoint"],
        completion_window=form.cleaned_data["completion_window"],
        metadata=form.cleaned_data["metadata"],
        user=request.user,
    )
    audit.record(
        AuditEvent.Action.CREATE_BATCH,
        actor=request.user,
        target=f"{form.cleaned_data['connection'].name}/{outcome.batch.batch_id if outcome.batch else '-'}",
        succeeded=outcome.ok,
        detail=outcome.message,
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
