"""Django's {# #} comment ends at its line: one spread over lines is printed on the page as text."""

from __future__ import annotations

from tests.conftest import REPO


def test_no_template_has_a_comment_tag_spread_over_lines():
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "templates").rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "{#" in line and "#}" not in line.split("{#", 1)[1]
    ]
    assert not offenders, "use {% comment %} for comments over several lines: " + ", ".join(offenders)
