"""What a batch will cost, estimated from its input file before anything is uploaded.

Input tokens are estimated from the characters of the requests' text (about four characters a token
for English; the range spans 3 to 5), and said to be an estimate. Output is bounded by each request's
max_output_tokens / max_completion_tokens / max_tokens; requests that set none leave the range open
above. The file is read once as a stream by batches.results.validation, which gathers the counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from batches.models import Connection
from batches.results.validation import ValidationReport, validate_upload
from spend.money import dollars
from spend.prices import PriceBook

CHARS_PER_TOKEN = (5, 4, 3)  # fewest tokens, likeliest, most


@dataclass(frozen=True)
class CostEstimate:
    report: ValidationReport
    requests: int
    model: str | None
    input_tokens: tuple[int, int]  # low, high
    max_output_tokens: int
    unbounded_outputs: int
    low_micros: int | None  # None: no price for the model
    high_micros: int | None
    price_model: str = ""

    @property
    def priced(self) -> bool:
        return self.low_micros is not None

    @property
    def low_text(self) -> str:
        return dollars(self.low_micros or 0)

    @property
    def high_text(self) -> str:
        return dollars(self.high_micros or 0)


def estimate(report: ValidationReport, connection: Connection) -> CostEstimate:
    low_tokens = report.text_chars // CHARS_PER_TOKEN[0]
    high_tokens = -(-report.text_chars // CHARS_PER_TOKEN[2])
    rates = PriceBook.load().rates(connection.pk, report.model or "")
    low = high = None
    if rates is not None:
        # Low: the fewest input tokens and no output; high: the most input tokens, none of them cached,
        # and every request writing up to its limit.
        low = (low_tokens * rates.input + 500_000) // 1_000_000
        high = (high_tokens * rates.input + report.max_output_tokens * rates.output + 500_000) // 1_000_000
    return CostEstimate(
        report=report,
        requests=report.lines,
        model=report.model,
        input_tokens=(low_tokens, high_tokens),
        max_output_tokens=report.max_output_tokens,
        unbounded_outputs=report.unbounded_outputs,
        low_micros=low,
        high_micros=high,
        price_model=rates.model if rates else "",
    )


def estimate_upload(
    upload: IO[bytes], *, size: int | None, endpoint: str, connection: Connection
) -> CostEstimate:
    """Validate and estimate in one streaming pass over the uploaded file (nothing leaves the server)."""
    upload.seek(0)
    report = validate_upload(iter(lambda: upload.read(1024 * 1024), b""), endpoint, size)
    return estimate(report, connection)
