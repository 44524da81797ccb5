"""History over HTTP against a real server on loopback and a real memcached: /api/v1/aggregates in
each format, a report's whole lifecycle (running, done, fetched as CSV and JSON, expired), the bounds
on running and kept reports, a failed report, and parameters refused naming them."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import MemcachedServer, wait_until
from tests.history_data import recount, seeded_events, write_events
from tests.serve_harness import LocalCounts, Response, RunningService
from tui.clock import FakeClock
from tui.events import iso_ms
from tui.history.aggregate import QueryResult
from tui.history.query import Query
from tui.history.reports import KEEP_SECONDS, MAX_KEPT, MAX_RUNNING, Reports, ReportsBusy
from tui.history.source import HistorySource
from tui.service.config import ServiceConfig
from tui.settings import MemcachedSettings, Settings
from tui.store import MemcachedStore

NOW = 1_700_001_234.5
IDS = ("INF-yj562hjojbtez", "INF-3gbfcjjdsd6vhvo", "INF-ixpktk3itsk86", "SHOP-1")
EVENTS = seeded_events(7, NOW, 2_000, IDS, 2 * 86_400)


class CountsWithHistory(LocalCounts):
    """The harness's reader, plus history from a real store (as the store-backed reader of serve has)."""

    def __init__(self, clock: FakeClock, history: HistorySource) -> None:
        super().__init__(clock, 10, 7 * 86_400)
        self.history = history


class Served:
    def __init__(self, service: RunningService, memcached: MemcachedServer, clock: FakeClock) -> None:
        self.service, self.memcached, self.clock = service, memcached, clock

    def get(self, path: str, **params: object) -> Response:
        return self.service.get(f"{path}?{urlencode(params, doseq=True)}" if params else path)

    def post_report(self, body: object) -> Response:
        return self.service.request("POST", "/api/v1/reports", json.dumps(body).encode(), {"Content-Type": "application/json"})

    def freeze(self) -> None:
        """Stop memcached (SIGSTOP): reads wait on it, so a report stays running until :meth:`thaw`."""
        assert self.memcached.process is not None
        os.kill(self.memcached.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.memcached.process is not None
        os.kill(self.memcached.process.pid, signal.SIGCONT)


@pytest.fixture
def served(memcached: MemcachedServer, tmp_path: Path) -> Iterator[Served]:
    clock = FakeClock(NOW)
    store = MemcachedStore([memcached.server], "eventdash:", timeout=3.0)
    write_events(store, EVENTS, NOW)
    settings = Settings(backend="memcached", memcached=MemcachedSettings((memcached.server,), "eventdash:"))
    reader = CountsWithHistory(clock, HistorySource(store, settings))
    service = RunningService(tmp_path / "spool", clock, ServiceConfig(7 * 86_400, 5), reader=reader)
    running = Served(service, memcached, clock)
    yield running
    running.thaw()
    service.stop()
    store.close()


RANGE = {"from": iso_ms(1_699_990_200_000), "to": iso_ms(1_699_999_200_000), "step": "10m"}  # 15 closed steps, 2.5 h


def expected_by_type() -> dict[tuple[int, tuple[str, ...]], int]:
    start, end = 1_699_990_200_000, 1_699_999_200_000
    counts = recount(EVENTS, start, end, 600_000, lambda t, i: i.startswith("INF-"), lambda t, i: (t,))
    return {(s, (t,)): counts.get((s, (t,)), 0) for s in range(start, end, 600_000) for t in ("review", "signup", "user-event")}


def test_aggregates_answer_the_recount_in_json_allezon_and_csv(served: Served) -> None:
    want = expected_by_type()
    assert sum(want.values()) > 50
    params = {**RANGE, "tracking_id": "INF-*", "group_by": "type"}
    doc = served.get("/api/v1/aggregates", **params)
    assert doc.status == 200, doc.body
    assert {(r["bucketMs"], (r["type"],)): r["count"] for r in doc.json()["rows"]} == want
    allezon = served.get("/api/v1/aggregates", **params, format="allezon").json()
    assert allezon["columns"] == ["10m_bucket", "type", "count"]
    assert {(r[0], (r[1],)): r[2] for r in allezon["rows"]} == {(iso_ms(s), g): n for (s, g), n in want.items()}
    as_csv = served.get("/api/v1/aggregates", **params, format="csv")
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert {(r["bucket"], (r["type"],)): int(r["count"]) for r in csv.DictReader(io.StringIO(as_csv.body.decode()))} == {
        (iso_ms(s), g): n for (s, g), n in want.items()
    }


@pytest.mark.parametrize(
    ("params", "parameter", "error"),
    [
        ({"from": "-2h", "step": "10s"}, "step", "step 10s: 10 s buckets are kept for 1 h; from -2h needs step 1m or coarser"),
        ({"from": "-9d", "step": "1h"}, "from", "step 1h: 1 h blocks are kept for 7 d; from -9d is older than anything kept: the longest retention is 7 d"),
        ({"step": "7s"}, "step", "step: 7s is not a whole number of 10 s buckets"),
        ({"type": "buy"}, "type", "type: unknown event type 'buy'; use one of signup, user-event, review"),
        ({"group_by": "site"}, "group_by", "group_by: unknown column 'site'; use type, tracking_id or type,tracking_id"),
        ({"minutes": "5"}, "minutes", "'minutes': unknown parameter; use from, to, step, type, tracking_id, group_by"),
        ({"step": ["1m", "1h"]}, "step", "step: given more than once"),
        ({"format": "xml"}, "format", "format: expected one of json, allezon, csv, got 'xml'"),
        ({"format": ["csv", "json"]}, "format", "format: given more than once"),
    ],
)
def test_bad_parameters_are_400_naming_them(served: Served, params: dict[str, object], parameter: str, error: str) -> None:
    answer = served.get("/api/v1/aggregates", **params)
    assert answer.status == 400
    assert answer.json() == {"error": error, "parameter": parameter}


def test_a_report_runs_in_the_background_then_gives_the_csv_and_json_and_expires(served: Served) -> None:
    query = {**RANGE, "tracking_id": ["INF-*"], "group_by": "type"}
    direct = served.get("/api/v1/aggregates", **query, format="csv").body  # also agrees the layout, before the freeze
    served.freeze()
    started = served.post_report(query)
    assert started.status == 202, started.body
    report_id = started.json()["report_id"]
    assert started.headers["Location"] == f"/api/v1/reports/{report_id}"
    running = served.get(f"/api/v1/reports/{report_id}")
    assert running.status == 202 and running.json() == {"report_id": report_id, "status": "running", "progress": 0.0}
    served.thaw()
    wait_until(lambda: served.get(f"/api/v1/reports/{report_id}").status == 200, what="the report to finish")
    done = served.get(f"/api/v1/reports/{report_id}")
    assert done.headers["Content-Type"].startswith("text/csv") and done.body == direct
    assert f'filename="eventdash-report-{report_id}.csv"' in done.headers["Content-Disposition"]
    as_json = served.service.get(f"/api/v1/reports/{report_id}", Accept="application/json").json()
    assert as_json["status"] == "done" and {(r["bucketMs"], (r["type"],)): r["count"] for r in as_json["rows"]} == expected_by_type()
    served.clock.advance(KEEP_SECONDS - 1)
    assert served.get(f"/api/v1/reports/{report_id}").status == 200
    served.clock.advance(1)
    gone = served.get(f"/api/v1/reports/{report_id}")
    assert gone.status == 404 and "kept 60 min after it ends" in gone.json()["error"]
    assert served.get("/api/v1/reports/no-such-report").status == 404


def test_at_most_four_reports_run_at_once_then_429(served: Served) -> None:
    served.get("/api/v1/aggregates", **RANGE)
    served.freeze()
    ids = [served.post_report(RANGE).json()["report_id"] for _ in range(MAX_RUNNING)]
    busy = served.post_report(RANGE)
    assert busy.status == 429 and busy.headers["Retry-After"] == "1"
    assert busy.json()["error"] == "4 reports are running, the most at once; retry when one is done"
    served.thaw()
    wait_until(lambda: all(served.get(f"/api/v1/reports/{i}").status == 200 for i in ids), what="every report to finish")
    assert served.post_report(RANGE).status == 202


def test_a_report_the_store_cannot_answer_fails_saying_why(served: Served) -> None:
    served.get("/api/v1/aggregates", **RANGE)
    served.freeze()  # longer than the client's 3 s timeout
    report_id = served.post_report(RANGE).json()["report_id"]
    wait_until(lambda: served.get(f"/api/v1/reports/{report_id}").status != 202, timeout=20, what="the report to give up")
    failed = served.get(f"/api/v1/reports/{report_id}")
    assert failed.status == 503
    assert failed.json()["status"] == "failed" and "reading buckets failed" in failed.json()["error"]


def test_at_most_max_kept_reports_are_held_until_the_oldest_expires() -> None:
    """Finished reports count against the bound until they expire, so a client polling nothing cannot
    make the server hold ever more results; the 429's Retry-After says when the oldest goes."""
    clock = FakeClock(NOW)
    reports = Reports(clock)
    empty = QueryResult(Query(0, 60_000, 60), (), (), 10, NOW)

    def job(progress: Callable[[float], None]) -> QueryResult:
        return empty

    ids: list[str] = []
    for _ in range(MAX_KEPT):
        ids.append(reports.start(job, ValueError))
        wait_until(lambda: getattr(reports.get(ids[-1]), "status", None) == "done", what="the report to finish")
        clock.advance(10)
    with pytest.raises(ReportsBusy, match=f"^{MAX_KEPT} reports are kept, the most at once") as busy:
        reports.start(job, ValueError)
    assert busy.value.retry_after == KEEP_SECONDS - MAX_KEPT * 10
    clock.advance(busy.value.retry_after)
    assert reports.get(ids[0]) is None and reports.get(ids[1]) is not None
    assert reports.start(job, ValueError)


@pytest.mark.parametrize(
    ("body", "status", "parameter"),
    [
        (b"[1, 2]", 400, "body"),
        (b"{not json", 400, "body"),
        (json.dumps({"step": 60}).encode(), 400, "step"),
        (json.dumps({"type": ["signup", 3]}).encode(), 400, "type"),
        (json.dumps({"from": "-9d", "step": "1h"}).encode(), 400, "from"),
        (b" " * 70_000, 413, "body"),
    ],
)
def test_a_bad_report_body_is_refused_naming_the_parameter(served: Served, body: bytes, status: int, parameter: str) -> None:
    answer = served.service.request("POST", "/api/v1/reports", body, {"Content-Type": "application/json"})
    assert answer.status == status and answer.json()["parameter"] == parameter
