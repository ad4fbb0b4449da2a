"""The history charts: valid SVG, escaped text, the right numbers, one query for the outcomes."""

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone

from batches import charts, history
from batches.models import ProgressSnapshot
from tests.support.factories import make_batch, make_connection

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter() if element.tag in (f"{SVG}text", f"{SVG}title")]


def steady(minutes: int = 60, per_minute: int = 10) -> list[tuple[datetime, int]]:
    return [(START + timedelta(minutes=m), per_minute * m) for m in range(minutes + 1)]


def test_a_steady_batch_has_a_flat_throughput():
    rates = charts.throughput_rates(steady(), buckets=12)
    assert len(rates) == 12
    assert all(rate == pytest.approx(10) for *_, rate in rates)


def test_the_throughput_chart_is_valid_svg_with_its_axes():
    root = parse(charts.throughput_svg(steady()))
    assert len(root.findall(f"{SVG}path")) == 1
    labels = texts(root)
    assert "10" in labels and "peak 10/min" in labels  # the unit is in the caption
    assert "12:00" in labels and "13:00" in labels


def test_a_short_history_labels_its_time_ticks_with_seconds_so_no_two_read_the_same():
    labels = [
        label for label in texts(parse(charts.throughput_svg(steady(minutes=2)))) if label.count(":") == 2
    ]
    assert len(labels) >= 3
    assert len(set(labels)) == len(labels)
    assert labels[0] == "12:00:00"


def test_a_history_of_seconds_never_repeats_a_tick_label():
    points = [(START + timedelta(seconds=second), 10 * second) for second in range(3)]
    labels = [label for label in texts(parse(charts.throughput_svg(points))) if label.count(":") == 2]
    assert labels and len(set(labels)) == len(labels)


def test_the_progress_chart_draws_done_and_failed_lines():
    snapshots = [(at, done, done // 10, 600) for at, done in steady()]
    root = parse(charts.progress_svg(snapshots, until=START + timedelta(minutes=90)))
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    # Carried on, flat, from the last snapshot to `until`.
    last_two = lines[0].get("points").split()[-2:]
    assert last_two[0].split(",")[1] == last_two[1].split(",")[1]
    assert "100%" in texts(root)


def test_text_in_a_chart_is_escaped():
    hostile = '</title><script>alert("x")</script>&amp;'
    for svg in (
        charts.throughput_svg(steady(), label=hostile),
        charts.progress_svg([(START, 0, 0, 0)], label=hostile),
    ):
        root = parse(svg)
        assert root.find(f"{SVG}title").text == hostile
        assert root.get("aria-label") == hostile
        assert not [element for element in root.iter() if element.tag.endswith("script")]


def test_a_chart_without_history_says_so_in_valid_svg():
    assert "Not enough history yet." in texts(parse(charts.throughput_svg([(START, 0)])))
    assert "No requests counted yet." in texts(parse(charts.progress_svg([])))


def test_the_outcomes_chart_stacks_each_day_by_outcome():
    days = [date(2026, 3, 1) + timedelta(days=n) for n in range(7)]
    counts = {(days[0], "completed"): 3, (days[0], "failed"): 1, (days[6], "expired"): 2}
    root = parse(charts.outcomes_svg(days, counts))
    bars = [rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    assert sorted(rect.find(f"{SVG}title").text for rect in bars) == [
        "Sat Mar 07: 2 expired",
        "Sun Mar 01: 1 failed",
        "Sun Mar 01: 3 completed",
    ]
    labels = texts(root)
    assert "completed 3" in labels and "cancelled 0" in labels and "4" in labels


def test_axes_get_round_ticks():
    assert charts.nice_scale(32) == (40, 10)
    assert charts.nice_scale(10) == (10, 2)
    assert charts.nice_scale(0.3) == pytest.approx((0.3, 0.1))
    assert charts.nice_scale(2600) == (3000, 1000)
    assert charts.nice_scale(3, whole=True) == (3, 1)
    assert charts.nice_scale(0, whole=True) == (1, 1)


@pytest.mark.django_db
def test_outcomes_of_the_week_come_from_one_query(django_assert_num_queries):
    now = timezone.now()
    other = make_connection("team-b")
    make_batch(status="completed", completed_at=now - timedelta(hours=1))
    make_batch(status="failed", failed_at=now - timedelta(days=1))
    make_batch(other, status="completed", completed_at=now - timedelta(days=2))
    make_batch(status="completed", completed_at=now - timedelta(days=30))  # too old
    make_batch(status="in_progress")
    with django_assert_num_queries(1):
        days, counts = history.outcomes_by_day(now=now)
    today = timezone.localdate(now)
    assert days[-1] == today and len(days) == 7
    assert sum(counts.values()) == 3
    assert counts[(today - timedelta(days=1), "failed")] == 1


@pytest.mark.django_db
def test_the_pages_show_the_charts_and_the_eta_range(client):
    client.force_login(User.objects.create_user("viewer", password="pw-viewer-1"))
    now = timezone.now()
    batch = make_batch(
        batch_id='batch_<b>&"x"',
        status="in_progress",
        in_progress_at=now - timedelta(minutes=30),
        total_requests=1000,
        completed_requests=300,
        # As the sync stores them: faster lately (20/min) than on average (10/min).
        last_progress_at=now,
        rate_per_minute=20.0,
        eta_at=now + timedelta(minutes=35),
    )
    for m in range(0, 31, 5):
        ProgressSnapshot.objects.create(
            batch=batch, taken_at=now - timedelta(minutes=30 - m), completed=10 * m, failed=0, total=1000
        )
    make_batch(status="completed", completed_at=now - timedelta(hours=2))

    detail = client.get(f"/batches/{batch.pk}/").content.decode()
    svgs = re.findall(r"<svg.*?</svg>", detail, flags=re.DOTALL)
    assert len(svgs) == 2
    for svg in svgs:
        parse(svg)
    # One estimate, the same in the header and under History.
    shown = re.findall(r"<span data-eta>(.*?)</span>\s*</", detail, flags=re.DOTALL)
    assert len(shown) == 2 and shown[0] == shown[1]
    assert "likely between" in shown[0]
    range_text = re.search(r"<span data-eta-range>(.*?)</span>", detail)[1]
    row = client.get(f"/batches/{batch.pk}/row/", HTTP_HX_REQUEST="true").content.decode()
    assert range_text in row and "20/min" in row  # the list's row: the same range, the same rate
    assert "<b>" not in detail.split("<main>", 1)[-1]

    cache.clear()  # the outcomes chart is cached for a minute
    listing = client.get("/").content.decode()
    (outcomes,) = re.findall(r"<svg.*?</svg>", listing, flags=re.DOTALL)
    assert "completed 1" in texts(parse(outcomes))
    # The summary's polling fragment does not carry the chart.
    fragment = client.get("/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="summary").content.decode()
    assert "<svg" not in fragment
    cache.clear()


@pytest.mark.django_db
def test_the_outcomes_chart_is_cached_per_filter_for_a_minute(client):
    client.force_login(User.objects.create_user("viewer", password="pw-viewer-1"))
    cache.clear()
    make_batch(make_connection("team-a"), status="failed", failed_at=timezone.now())
    assert "failed 1" in client.get("/").content.decode()
    make_batch(status="failed", failed_at=timezone.now())
    assert "failed 1" in client.get("/?status=failed&sort=progress").content.decode()  # same chart
    assert "failed 1" in client.get("/?connection=team-a").content.decode()  # another chart
    cache.clear()
    assert "failed 2" in client.get("/").content.decode()
    cache.clear()
