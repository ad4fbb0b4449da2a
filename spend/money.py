"""Money as every page and the CSV write it (pure functions, no Django)."""

from __future__ import annotations

NO_PRICE = "no price"


def dollars(micros: int) -> str:
    """Dollars and cents, or four decimals below one dollar so that a cheap batch does not read $0.00."""
    value = micros / 1_000_000
    if micros and abs(value) < 1:
        return f"{value:.4f}"
    return f"{value:,.2f}"


def projected_micros(cost_micros: int, done: int, total: int) -> int | None:
    """What a running batch will cost at the end if the rest of its requests cost what the done ones did."""
    if total <= 0 or done <= 0:
        return None
    return cost_micros * total // min(done, total)


def batch_cost_text(
    cost_micros: int | None, *, has_usage: bool, active: bool, done: int, total: int
) -> tuple[str, str]:
    """A list cell's text and its title: "$1.23", "$0.40+" for a running batch (so far; the title says so
    and gives the projection: the dense list has no room for more), "no price"."""
    if cost_micros is None:
        return (
            ("no price", "This model has no price: an admin can add one on the Prices page")
            if has_usage
            else ("", "")
        )
    text = f"${dollars(cost_micros)}"
    if not active:
        return text, ""
    projected = projected_micros(cost_micros, done, total)
    title = (
        f"so far; projected ${dollars(projected)} when all {total} requests are done"
        if projected
        else "so far"
    )
    return f"{text}+", title
