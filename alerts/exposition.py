"""/metrics in the Prometheus text format, written by prometheus_client from what the selectors read.

The registry is a private one: the library's global registry also holds its process, platform and
garbage-collector collectors, which would add series nobody asked this dashboard for.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from alerts import selectors

# The format generate_latest writes for names like ours, and the type prometheus_client's own
# exporters send with it. (Its CONTENT_TYPE_LATEST announces version 1.0.0, the UTF-8 names this
# dashboard does not use, and Prometheus before 3.0 does not know that version.)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class DashboardCollector:
    """Reads the database at every scrape: the numbers live there, not in this process, so that every
    web worker answers the same."""

    def collect(self) -> Iterable[Metric]:
        return selectors.metric_families(timezone.now())


# No describe() and no auto_describe: registering would otherwise query the database at import time.
registry = CollectorRegistry(auto_describe=False)
registry.register(DashboardCollector())


def render() -> bytes:
    return generate_latest(registry)
