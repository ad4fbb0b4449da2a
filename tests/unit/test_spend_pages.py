"""The spend page, its CSV, prices and budgets: who may see and edit what, and figures that agree."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent
from batches.models import Batch
from spend import costs
from spend.models import Budget, Price
from tests.support.factories import make_batch, make_connection, make_user

pytestmark = pytest.mark.django_db


def _client(role: str) -> Client:
    from django.contrib.auth.models import User

    client = Client()
    user = User.objects.filter(username=f"user-{role}").first() or make_user(f"user-{role}", role)
    client.force_login(user)
    return client


@pytest.fixture
def spent():
    """Six batches of today with known costs, some with project metadata and some without."""
    now = timezone.now()
    other = make_connection("team-b")
    rows = [
        (None, "gpt-4o-mini", {"project": "search"}, 10_000_000, 0),  # $0.75
        (None, "gpt-4o-mini-2024-07-18", {"project": "search"}, 0, 1_000_000),  # $0.30
        (None, "gpt-4o", {"project": "ads"}, 1_000_000, 1_000_000),  # $6.25
        (other, "gpt-4.1-nano", {"owner": "ana"}, 2_000_000, 0),  # $0.10, no project
        (other, "gpt-4.1-nano", None, 0, 500_000),  # $0.10, no metadata at all
        (other, "my-finetune", {"project": "ads"}, 1000, 1000),  # no price
    ]
    for connection, model, metadata, input_tokens, output_tokens in rows:
        make_batch(
            connection,
            model=model,
            metadata=metadata,
            status="completed",
            created_at=now - timedelta(minutes=1),
            input_tokens=input_tokens,
            cached_tokens=0,
            output_tokens=output_tokens,
        )
    costs.recompute()


def _table(html: str) -> list[list[str]]:
    body = html.split('id="spend-table"', 1)[1].split("</table>", 1)[0]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [
            unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        rows.append(cells)
    return rows


def test_grouping_by_a_metadata_key_puts_batches_without_it_under_none(spent):
    response = _client("viewer").get("/spend/?period=day&group=metadata&key=project")
    assert response.status_code == 200
    rows = {row[0]: row for row in _table(response.content.decode())[1:]}
    assert rows["ads"][2] == "6.25"
    assert rows["search"][2] == "1.05"
    assert rows["(none)"][2] == "0.2000"
    assert rows["(none)"][1] == "2"
    assert rows["ads"][4] == "1"  # the unpriced batch is reported, not counted
    assert rows["Total"][2] == "7.50"


def test_unpriced_models_are_listed_with_a_link_for_admins(spent):
    viewer = _client("viewer").get("/spend/?period=day").content.decode()
    assert "my-finetune" in viewer and "add a price" not in viewer
    admin = _client("admin").get("/spend/?period=day").content.decode()
    assert "/spend/prices/new/?model=my-finetune" in admin


def test_the_csv_equals_the_table(spent):
    client = _client("viewer")
    for query in (
        "period=day&group=metadata&key=project",
        "period=month&group=model",
        "period=week&group=connection",
    ):
        table = _table(client.get(f"/spend/?{query}").content.decode())
        response = client.get(f"/spend/export.csv?{query}")
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert len(rows) > 2
        assert [row[:4] for row in rows[1:]] == [row[:4] for row in table[1:]]


def test_the_csv_neutralises_spreadsheet_formulas():
    make_batch(
        model="gpt-4o",
        metadata={"project": "=HYPERLINK(1)"},
        status="completed",
        created_at=timezone.now(),
        input_tokens=1,
        output_tokens=1,
    )
    costs.recompute()
    text = _client("viewer").get("/spend/export.csv?period=day&group=metadata&key=project").content.decode()
    assert "'=HYPERLINK(1)" in text


def test_bad_queries_are_said_and_ignored_not_500s():
    client = _client("viewer")
    for query in (
        "period=year",
        "on=2026-02-31",
        "period=custom&start=x",
        "group=metadata&key=",
        "group=x",
        "period=custom&start=2020-01-01&end=2026-01-01",
        "group=metadata&key=%00",
    ):
        response = client.get(f"/spend/?{query}")
        assert response.status_code == 200, query
        assert b"Ignored" in response.content, query


def test_viewers_see_spend_but_only_admins_edit_prices_and_budgets(spent):
    viewer, operator, admin = _client("viewer"), _client("operator"), _client("admin")
    assert viewer.get("/spend/").status_code == 200
    assert viewer.get("/spend/prices/").status_code == 200
    price = Price.objects.get(model="gpt-4o", connection=None)
    post = {"model": "gpt-4o", "input": "9", "cached_input": "1", "output": "9"}
    for client in (viewer, operator):
        assert client.get("/spend/prices/new/").status_code == 403
        assert client.post(f"/spend/prices/{price.pk}/", post).status_code == 403
        assert client.post(f"/spend/prices/{price.pk}/delete/").status_code == 403
        assert (
            client.post("/spend/budgets/new/", {"metadata": "project=ads", "monthly_usd": "5"}).status_code
            == 403
        )
    assert Price.objects.get(pk=price.pk).input == Decimal("1.25")
    assert not Budget.objects.exists()
    assert admin.post(f"/spend/prices/{price.pk}/", post).status_code == 302
    assert Price.objects.get(pk=price.pk).input == Decimal("9")
    assert Batch.objects.get(model="gpt-4o").cost_micros == 18_000_000
    assert AuditEvent.objects.filter(action="price.save").exists()
    assert (
        admin.post("/spend/budgets/new/", {"metadata": "project=ads", "monthly_usd": "5"}).status_code == 302
    )
    budget = Budget.objects.get()
    assert (budget.metadata_key, budget.metadata_value) == ("project", "ads")
    page = viewer.get("/spend/").content.decode()
    assert "project=ads" in page and "over budget" in page
    assert admin.post(f"/spend/budgets/{budget.pk}/delete/").status_code == 302
    assert AuditEvent.objects.filter(action__in=["budget.create", "budget.delete"]).count() == 2


def test_the_spend_page_shows_money_not_content(spent):
    batch = Batch.objects.first()
    assert batch is not None
    Batch.objects.filter(pk=batch.pk).update(
        raw={"secret-prompt": "do not show"}, errors=[{"message": "secret"}]
    )
    page = _client("viewer").get("/spend/?period=day").content.decode()
    assert "secret" not in page


def test_a_duplicate_price_is_refused_with_a_message():
    response = _client("admin").post(
        "/spend/prices/new/", {"model": "gpt-4o", "input": "1", "cached_input": "1", "output": "1"}
    )
    assert response.status_code == 200
    assert b"already has a price" in response.content


def test_the_htmx_form_gets_the_report_alone(spent):
    response = _client("viewer").get(
        "/spend/?period=day", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="spend-report"
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="spend-report"')
    assert "<svg" in html


def test_the_list_sorts_by_cost_and_shows_the_total_of_its_filter(spent):
    client = _client("viewer")
    html = client.get("/?sort=cost").content.decode()
    assert "Cost of the batches shown by these filters: <strong>$7.50</strong>" in html
    assert "1 without a price left out" in html
    costs_in_order = re.findall(r'<td class="c-cost num"[^>]*>(.*?)</td>', html)
    assert costs_in_order[:3] == ["$6.25", "$0.7500", "$0.3000"]
    assert "no price" in html
    filtered = client.get("/?model=gpt-4o").content.decode()
    assert "<strong>$6.25</strong>" in filtered
    # Paging by cost goes on past the first page without repeating a row.
    first = client.get("/?sort=-cost").content.decode()
    assert first.count('class="c-cost num"') == Batch.objects.count()


def test_a_running_batch_shows_its_cost_so_far_and_projected():
    batch = make_batch(
        model="gpt-4o",
        status="in_progress",
        total_requests=100,
        completed_requests=40,
        failed_requests=10,
        input_tokens=1_000_000,
        cached_tokens=0,
        output_tokens=0,
    )
    costs.recompute()
    client = _client("viewer")
    row = client.get("/").content.decode()
    assert "$1.25+" in row and "so far; projected $2.50" in row
    detail = client.get(f"/batches/{batch.pk}/").content.decode()
    assert "$1.25</strong> so far, projected <strong>$2.50</strong>" in detail
    assert "1,000,000 input \N{MULTIPLICATION SIGN} $1.25 / M = $1.25" in detail


def test_the_detail_page_says_no_price_for_an_unpriced_model():
    batch = make_batch(model="mystery-1", status="completed", input_tokens=5, output_tokens=5)
    costs.recompute()
    assert "no price for mystery-1" in _client("viewer").get(f"/batches/{batch.pk}/").content.decode()


def test_a_cost_cursor_that_is_not_ours_is_ignored_not_a_500(spent):
    import base64
    import json

    for values in ([1e400, 1], ["x", 1], [2**70, 1], [None, 1]):
        cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
        assert _client("viewer").get(f"/?sort=cost&cursor={cursor}").status_code == 200


def test_the_chart_puts_each_cost_in_its_day_and_hour():
    from datetime import datetime

    from django.http import QueryDict

    from spend import selectors

    at = datetime(2026, 3, 10, 14, 30, tzinfo=timezone.get_current_timezone())
    make_batch(model="gpt-4o", status="completed", created_at=at, input_tokens=1_000_000, output_tokens=0)
    costs.recompute()
    month = selectors.spend_report(selectors.SpendQuery.from_query(QueryDict("period=month&on=2026-03-01")))
    assert month.series == {(datetime(2026, 3, 10, tzinfo=at.tzinfo), "default"): 1_250_000}
    day = selectors.spend_report(selectors.SpendQuery.from_query(QueryDict("period=day&on=2026-03-10")))
    assert day.series == {(datetime(2026, 3, 10, 14, tzinfo=at.tzinfo), "default"): 1_250_000}
    assert (
        selectors.spend_report(selectors.SpendQuery.from_query(QueryDict("period=day&on=2026-03-11"))).rows
        == []
    )
