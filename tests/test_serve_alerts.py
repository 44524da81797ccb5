"""``GET /api/v1/alerts`` and ``/api/v1/alerts/history`` over HTTP, ``/metrics``' alert series, and
``serve``'s poller: the real application on 127.0.0.1, an :class:`AnomalyWatch` fed bucket by bucket
with a fake clock (tests/test_serve_webhook.py runs the real ``serve`` process end to end)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_until
from tests.serve_harness import RunningService
from tests.test_anomaly_webhook import Receiver
from tui.anomaly import AnomalySettings
from tui.anomaly.watch import SETTLE_SECONDS, AnomalyWatch
from tui.anomaly.webhook import WebhookSender
from tui.clock import FakeClock
from tui.service.anomalies import AlertSource, AnomalyPoller
from tui.service.config import ServiceConfig
from tui.store import StoreUnavailable

B = 10
NOW = 1_700_000_000.0
READ_TOKEN = "read-token-0123456789"
SETTINGS = AnomalySettings(warmup_seconds=60, for_buckets=2, keep_firing_for_buckets=2, min_count=5)
Counts = dict[int, dict[str, dict[str, int]]]


class Traffic:
    """What the store would hold: counts per closed bucket, set by the test as the clock moves."""

    def __init__(self) -> None:
        self.buckets: Counts = {}

    def read(self, due: range) -> tuple[Mapping[int, Mapping[str, Mapping[str, int]]], set[int]]:
        return {b: self.buckets[b] for b in due if b in self.buckets}, set()


def _advance(watch: AnomalyWatch, clock: FakeClock, traffic: Traffic, buckets: int, per_id: dict[str, int]) -> None:
    """``buckets`` buckets of signups with ``per_id`` counts, each polled once it settled."""
    for _ in range(buckets):
        traffic.buckets[int(clock.time() // B)] = {"signup": dict(per_id)}
        clock.advance(B)
        watch.poll()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW - NOW % B + SETTLE_SECONDS + 0.5)


@pytest.fixture
def alerted(clock: FakeClock) -> AlertSource:
    """INF-a dropped to zero and INF-b spiked tenfold, both firing; INF-c steady."""
    traffic = Traffic()
    watch = AnomalyWatch(SETTINGS, B, traffic.read, clock, kept_seconds=0)
    watch.poll()
    _advance(watch, clock, traffic, 20, {"INF-a": 50, "INF-b": 50, "INF-c": 50})
    _advance(watch, clock, traffic, 3, {"INF-b": 500, "INF-c": 50})
    return AlertSource(watch)


def _service(tmp_path: Path, clock: FakeClock, alerts: AlertSource | None, **config: object) -> RunningService:
    return RunningService(tmp_path / "spool", clock, ServiceConfig(3600, 60.0, **config), bucket_seconds=B, alerts=alerts)  # type: ignore[arg-type]


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock, alerted: AlertSource) -> Iterator[RunningService]:
    running = _service(tmp_path, clock, alerted)
    yield running
    running.stop()


def test_the_active_alerts_are_listed_with_how_detection_is_doing(service: RunningService) -> None:
    answer = service.get("/api/v1/alerts")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/json")
    doc = answer.json()
    seen = {(a["type"], a["id"], a["direction"], a["state"]) for a in doc["alerts"]}
    assert {("signup", "INF-a", "drop", "firing"), ("signup", "INF-b", "spike", "firing")} <= seen
    assert not any(a["id"] == "INF-c" for a in doc["alerts"])
    drop = next(a for a in doc["alerts"] if a["id"] == "INF-a")
    assert drop["observed"] == 0 and drop["expected"] == pytest.approx(50, rel=0.05) and drop["bucketSeconds"] == B
    assert set(doc["anomaly"]) == {"priming", "series", "untracked", "skippedBuckets", "judgedThroughMs"}
    assert doc["anomaly"]["priming"] is False and doc["anomaly"]["series"] == 4  # three ids and the type
    assert doc["webhook"] is None  # none configured


def test_alerts_filter_by_type_id_and_state(service: RunningService) -> None:
    def ids(query: str) -> list[str | None]:
        answer = service.get(f"/api/v1/alerts?{query}")
        assert answer.status == 200, answer.body
        return sorted(a["id"] or "*" for a in answer.json()["alerts"])

    assert ids("tracking_id=INF-a") == ["INF-a"]
    assert ids("type=review") == []
    assert "INF-b" in ids("type=signup&state=firing")
    assert ids("state=pending") == []
    assert ids("tracking_id=INF-c") == []


def test_the_history_holds_the_announced_transitions_oldest_first(service: RunningService) -> None:
    doc = service.get("/api/v1/alerts/history?tracking_id=INF-a").json()
    assert [(a["id"], a["state"]) for a in doc["history"]] == [("INF-a", "firing")]
    assert service.get("/api/v1/alerts/history?state=resolved").json()["history"] == []
    assert "anomaly" in doc and doc["webhook"] is None


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("/api/v1/alerts?type=signups", "type"),
        ("/api/v1/alerts?state=resolved", "state"),  # the active alerts are pending or firing
        ("/api/v1/alerts/history?state=pending", "state"),  # pending is never announced
        ("/api/v1/alerts?tracking_id=", "tracking_id"),
        ("/api/v1/alerts?tracking_id=a%20b", "tracking_id"),
        ("/api/v1/alerts?state=firing&state=pending", "state"),
        ("/api/v1/alerts?history=1", "history"),
        ("/api/v1/alerts?minutes=5", "minutes"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(service: RunningService, query: str, parameter: str) -> None:
    answer = service.get(query)
    assert answer.status == 400 and answer.json()["parameter"] == parameter
    assert answer.json()["error"].startswith(f"{parameter}: ")


def test_with_detection_off_the_route_says_so_with_a_404(tmp_path: Path, clock: FakeClock) -> None:
    running = _service(tmp_path, clock, AlertSource())
    try:
        answer = running.get("/api/v1/alerts")
        assert answer.status == 404 and "anomaly detection is off" in answer.json()["error"]
        assert running.get("/api/v1/alerts/history").status == 404
        assert running.get("/api/v1/alerts?state=nope").status == 400  # a bad parameter is still named
        families = {f.name: f for f in text_string_to_metric_families(running.get("/metrics").body.decode())}
        assert families["eventdash_alerts_active"].samples == []  # absent, not a reassuring zero
    finally:
        running.stop()


def test_the_alerts_need_the_read_token(tmp_path: Path, clock: FakeClock, alerted: AlertSource) -> None:
    running = _service(tmp_path, clock, alerted, read_token=READ_TOKEN)
    try:
        assert running.get("/api/v1/alerts").status == 401
        assert running.get("/api/v1/alerts/history").status == 401
        assert running.get("/api/v1/alerts", Authorization=f"Bearer {READ_TOKEN}").status == 200
    finally:
        running.stop()


def test_metrics_count_active_alerts_by_direction_and_webhook_deliveries(tmp_path: Path, clock: FakeClock, alerted: AlertSource) -> None:
    rx = Receiver([500])
    sender = WebhookSender(rx.url, timeout=2, backoff=0.01)
    assert alerted.watch is not None
    sender.send(alerted.watch.status().alerts[0])
    running = _service(tmp_path, clock, AlertSource(alerted.watch, sender))
    try:
        wait_until(lambda: sender.status().sent == 1, what="the delivery after one retry")

        def sample(name: str, **labels: str) -> float:
            for family in text_string_to_metric_families(running.get("/metrics").body.decode()):
                for s in family.samples:
                    if s.name == name and s.labels == labels:
                        return s.value
            raise AssertionError(f"no {name} {labels}")

        assert sample("eventdash_alerts_active", direction="drop", state="firing") >= 1
        assert sample("eventdash_alerts_active", direction="spike", state="firing") >= 1
        assert sample("eventdash_alerts_active", direction="spike", state="pending") == 0
        assert sample("eventdash_webhook_deliveries_total", outcome="sent") == 1
        assert sample("eventdash_webhook_deliveries_total", outcome="retried") == 1
        assert sample("eventdash_webhook_deliveries_total", outcome="failed") == 0
        assert running.get("/api/v1/alerts").json()["webhook"] == {"sent": 1, "failed": 0, "dropped": 0, "retries": 1, "pending": 0, "lastError": f"HTTP 500 from {rx.url}"}
    finally:
        running.stop()
        sender.close()
        rx.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(["/api/v1/alerts", "/api/v1/alerts/history"]),
    query=st.lists(st.tuples(st.sampled_from(["type", "tracking_id", "state", "history", "x"]), st.text(max_size=30)), max_size=4),
)
def test_any_query_gets_a_json_2xx_or_4xx_never_a_500(service: RunningService, route: str, query: list[tuple[str, str]]) -> None:
    answer = service.get(f"{route}?{urlencode(query)}")
    assert 200 <= answer.status < 500, answer.body[:300]
    assert isinstance(answer.json(), dict)


# ------------------------------------------------------------------------------------------------
# The poller: serve's tick


class _Gate:
    """A read that blocks until released, counting the polls that reached it."""

    def __init__(self) -> None:
        self.entered = 0
        self.release = threading.Event()

    def read(self, due: range) -> tuple[Mapping[int, Mapping[str, Mapping[str, int]]], set[int]]:
        self.entered += 1
        self.release.wait(10)
        return {}, set()


def test_a_tick_while_the_last_poll_still_runs_is_skipped(clock: FakeClock) -> None:
    gate = _Gate()
    watch = AnomalyWatch(SETTINGS, B, gate.read, clock, kept_seconds=3600, budget_seconds=0)  # priming: a poll reads one slice
    poller = AnomalyPoller(AlertSource(watch))
    poller.tick()
    wait_until(lambda: gate.entered == 1, what="the first poll to read")
    for _ in range(5):
        poller.tick()  # the tick returns at once, and starts no second poll
    gate.release.set()
    poller.close()
    assert gate.entered == 1
    poller.tick()  # closed: no poll after the store is gone
    assert gate.entered == 1


def test_an_outage_is_skipped_and_a_bug_stops_detection_with_a_503_not_counting(tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    failure: list[Exception] = [StoreUnavailable("memcached is down")]

    def read(due: range) -> tuple[Mapping[int, Mapping[str, Mapping[str, int]]], set[int]]:
        raise failure[0]

    source = AlertSource(AnomalyWatch(SETTINGS, B, read, clock, kept_seconds=3600))
    poller = AnomalyPoller(source)
    poller.tick()
    poller.close()
    assert source.error is None and capsys.readouterr().err == ""  # the writer reports outages
    failure[0] = RuntimeError("a bug")
    poller = AnomalyPoller(source)
    poller.tick()
    poller.close()
    assert source.error is not None and "anomaly detection stopped: RuntimeError: a bug" in source.error
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "counting goes on without alerts" in err and "Traceback" not in err
    running = _service(tmp_path, clock, source)
    try:
        answer = running.get("/api/v1/alerts")
        assert answer.status == 503 and "RuntimeError: a bug" in answer.json()["error"]
    finally:
        running.stop()
