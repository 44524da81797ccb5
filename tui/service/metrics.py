"""The service's Prometheus metrics, in one registry per application (tests run several at once).

The lead's writer observes into :attr:`Metrics.flush_seconds` and counts into
:attr:`Metrics.store_errors`; the HTTP layer does the rest. Rejection reasons and store error kinds
are pre-registered, so a dashboard (or an alert on ``increase``) sees a zero before the first one
instead of no series at all.

The alerts' gauges and the webhook's counters are read from the pipeline's watch and sender at each
scrape (:meth:`Metrics.watch_alerts`), so they are exact whoever polls (``serve``'s tick, or the
dashboard with ``--listen``). With detection off (or no webhook) they have no samples: absent, not a
zero that would read as "nothing is wrong".
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tui.anomaly.alerts import DROP, FIRING, PENDING, SPIKE
from tui.ingest.decode import REASONS
from tui.service.anomalies import AlertSource

#: Latency buckets in seconds: reads aim at ≤ 5 ms p99, flushes at tens of ms.
_FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: ``store_errors`` kinds: the writer's flushes, read API answers, spool appends, unexpected failures.
ERROR_KINDS = ("store", "read", "spool", "internal")


class Metrics:
    """Every metric of ``serve``; ``registry`` is what ``GET /metrics`` exposes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.accepted = Counter("eventdash_events_accepted", "Events accepted (durable in the spool)", registry=r)
        self.rejected = Counter("eventdash_events_rejected", "Events rejected, by reason code", ["reason"], registry=r)
        for reason in REASONS:
            self.rejected.labels(reason)
        self.spool_depth = Gauge("eventdash_spool_depth_events", "Events accepted but not yet in the store", registry=r)
        self.spool_age = Gauge("eventdash_spool_age_seconds", "Age of the oldest event not yet in the store", registry=r)
        self.flush_seconds = Histogram("eventdash_flush_seconds", "Latency of one flush to the store", buckets=_FAST, registry=r)
        self.store_errors = Counter("eventdash_store_errors", "Failed store or spool operations, by kind", ["kind"], registry=r)
        for kind in ERROR_KINDS:
            self.store_errors.labels(kind)
        self.read_seconds = Histogram("eventdash_read_seconds", "Latency of read API answers, by route", ["route"], buckets=_FAST, registry=r)
        self.requests = Counter("eventdash_http_requests", "HTTP requests, by route and status", ["route", "status"], registry=r)

    def watch(self, depth: Callable[[], float], age: Callable[[], float]) -> None:
        """Read the spool gauges from the sink at every scrape."""
        self.spool_depth.set_function(depth)
        self.spool_age.set_function(age)

    def watch_alerts(self, source: AlertSource) -> None:
        """Expose ``source``'s active alerts and webhook deliveries at every scrape."""
        self.registry.register(_AlertsCollector(source))


class _AlertsCollector(Collector):
    """``eventdash_alerts_active{direction, state}`` and ``eventdash_webhook_deliveries_total{outcome}``."""

    def __init__(self, source: AlertSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "eventdash_alerts_active", "Active alerts (series whose traffic left its baseline), by direction and state", labels=["direction", "state"]
        )
        status = self._source.anomaly()
        if status is not None:
            counts = Tally((a.direction, a.state) for a in status.alerts)
            for direction in (SPIKE, DROP):
                for state in (PENDING, FIRING):
                    active.add_metric([direction, state], counts[direction, state])
        yield active
        deliveries = CounterMetricFamily(
            "eventdash_webhook_deliveries",
            "Alert webhook POSTs by outcome: sent, failed (given up), retried (a failed attempt retried), dropped (queue full)",
            labels=["outcome"],
        )
        webhook = self._source.webhook_status()
        if webhook is not None:
            for outcome, value in (("sent", webhook.sent), ("failed", webhook.failed), ("retried", webhook.retries), ("dropped", webhook.dropped)):
                deliveries.add_metric([outcome], value)
        yield deliveries
