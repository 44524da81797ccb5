"""Distinct visitors in the read API (issue 13): ``/api/v1/summary/{type}?distinct=…`` and
``/api/v1/live``, against a real aiohttp server on 127.0.0.1 whose reader reads a real memcached
that a real Store v2 writer filled, and against ``eventdash serve`` itself, fed over HTTP.

Hostile query strings (hypothesis) get a 4xx naming the parameter, never a 500."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer, wait_until
from tests.serve_harness import RunningService
from tests.test_serve_e2e import BRIEF, fresh, serve
from tests.test_serve_process import get, post
from tui.clock import FakeClock
from tui.distinct.batch import SIGNUPS
from tui.ingest.decode import IngestEvent
from tui.pipeline import Pipeline
from tui.service.config import ServiceConfig, retention_seconds
from tui.service.store_ports import StoreReader
from tui.settings import MemcachedSettings, Settings
from tui.store import MemcachedStore
from tui.store.sketches import sketch_key

NOW = 1_700_000_000.0
SITE, QUIET, NONE = "INF-yj562hjojbtez", "INF-quiet", "INF-never"
TYPES = ("signup", "user-event", "review")


class Served:
    """A writer that put known visitors into memcached, and the read API over them."""

    def __init__(self, service: RunningService, pipeline: Pipeline, clock: FakeClock, truth: dict[tuple[str, str], set[object]], memcached: MemcachedServer) -> None:
        self.service, self.pipeline, self.clock, self.truth, self.memcached = service, pipeline, clock, truth, memcached

    def get(self, path: str, **params: object) -> tuple[int, dict]:
        answer = self.service.get(f"{path}?{urlencode(params)}" if params else path)
        return answer.status, answer.json()

    def exact(self, keys: set[tuple[str, str]]) -> int:
        return len(set().union(*(self.truth.get(k, set()) for k in keys)))


def visits(rng: random.Random, now_ms: int, n: int, span_ms: int) -> list[IngestEvent]:
    """Sessions at two sites: SITE has many visitors, QUIET a handful; signups carry e-mail hashes."""
    out = []
    for _ in range(n):
        tid = SITE if rng.random() < 0.9 else QUIET
        pool = 300 if tid == SITE else 6
        etype = rng.choice(TYPES)
        email = rng.randrange(pool // 2) if etype == "signup" else None
        out.append(IngestEvent(etype, tid, now_ms - rng.randrange(span_ms), f"{tid}/v{rng.randrange(pool)}", None, email))
    return out


@pytest.fixture
def served(memcached: MemcachedServer, tmp_path: Path) -> Iterator[Served]:
    clock = FakeClock(NOW)
    store = MemcachedStore([memcached.server], "va:", timeout=3.0)
    config = Settings(backend="memcached", memcached=MemcachedSettings((memcached.server,), "va:"), window_minutes=30)
    pipeline = Pipeline(config, store, clock=clock, generate=False, writer_id="w1")
    rng = random.Random(13)
    now_ms = int(NOW * 1000)
    recent = visits(rng, now_ms, 3_000, 270_000)  # the last 4.5 min: within 5 min and the live window (7 min)
    older = visits(rng, now_ms - 10 * 60_000, 2_000, 10 * 60_000)  # 10-20 min ago: in 30 min, not live
    truth: dict[tuple[str, str], set[object]] = {}
    for name, events in (("recent", recent), ("older", older)):
        for e in events:
            truth.setdefault((name, e.type, e.tracking_id), set()).add(e.visitor_id)  # type: ignore[arg-type]
            if e.email_hash is not None:
                truth.setdefault((name, SIGNUPS, e.tracking_id), set()).add(e.email_hash)  # type: ignore[arg-type]
    pipeline.writer.ingest(older + recent)
    assert pipeline.writer.flush(everything=True)
    reader = StoreReader(pipeline.reader, retention_seconds(config))
    service = RunningService(tmp_path / "spool", clock, ServiceConfig(retention_seconds(config), 30), reader=reader)
    flat: dict[tuple[str, str], set[object]] = {}
    for (when, series, tid), seen in truth.items():
        flat.setdefault((f"{when}:{series}", tid), set()).update(seen)
    yield Served(service, pipeline, clock, flat, memcached)
    service.stop()
    store.close()


def within(figure: dict, truth: int) -> None:
    """The estimate is near the exact count and its bounds hold it (two standard deviations)."""
    assert set(figure) == {"estimate", "lower", "upper"}
    assert figure["lower"] <= truth <= figure["upper"], (figure, truth)
    assert abs(figure["estimate"] - truth) <= max(1, 0.03 * truth), (figure, truth)


def test_one_ids_distinct_visitors_and_signups_with_bounds(served: Served) -> None:
    for etype in TYPES:
        status, doc = served.get(f"/api/v1/summary/{etype}", tracking_id=SITE, distinct="visitors", minutes=30)
        assert status == 200, doc
        assert (doc["type"], doc["trackingId"], doc["incomplete"]) == (etype, SITE, False)
        assert doc["window"] == {"minutes": 30, "bucketSeconds": 10, "bound": "±10 s"} and "incompleteParts" not in doc
        within(doc["visitors"], served.exact({(f"{w}:{etype}", SITE) for w in ("recent", "older")}))
    status, doc = served.get("/api/v1/summary/signup", tracking_id=SITE, distinct="signups", minutes=30)
    assert status == 200 and "visitors" not in doc
    assert "no email_salt" in doc["note"]  # this serve has none: a 0 would not pass as exact
    within(doc["signups"], served.exact({(f"{w}:{SIGNUPS}", SITE) for w in ("recent", "older")}))
    assert doc["signups"]["estimate"] < doc["signups"]["upper"] or doc["signups"]["estimate"] < 300  # fewer people than events
    status, doc = served.get("/api/v1/summary/review", tracking_id=NONE, distinct="visitors")
    assert status == 200 and doc["visitors"] == {"estimate": 0, "lower": 0, "upper": 0}
    status, doc = served.get("/api/v1/summary/review", tracking_id=SITE, distinct="visitors", minutes=5)
    within(doc["visitors"], served.exact({("recent:review", SITE)}))  # 5 min: only the recent visits


def test_live_counts_the_last_seven_minutes_every_type_united_per_id_and_over_all(served: Served) -> None:
    status, doc = served.get("/api/v1/live", tracking_id=QUIET)
    assert status == 200, doc
    assert doc["window"]["minutes"] == 7 and doc["incomplete"] is False and doc["trackingId"] == QUIET
    within(doc["visitors"], served.exact({(f"recent:{t}", QUIET) for t in TYPES}))
    status, doc = served.get("/api/v1/live", tracking_id=SITE)
    within(doc["visitors"], served.exact({(f"recent:{t}", SITE) for t in TYPES}))
    assert doc["visitors"]["estimate"] < 3_000  # people, not events
    status, doc = served.get("/api/v1/live")
    assert status == 200 and doc["trackingId"] is None
    within(doc["visitors"], served.exact({(f"recent:{t}", tid) for t in TYPES for tid in (SITE, QUIET)}))
    # The same lag as a count read says (from the same heads): how old the newest counted bucket is.
    counted = served.get("/api/v1/summary/review", tracking_id=SITE, minutes=7)[1]
    assert counted["lagSeconds"] is not None and doc["lagSeconds"] == counted["lagSeconds"]
    assert served.get("/api/v1/summary/review", tracking_id=SITE, distinct="visitors", minutes=7)[1]["lagSeconds"] == counted["lagSeconds"]
    served.clock.advance(30 * 60)  # everything is older than 7 minutes now
    doc = served.get("/api/v1/live", tracking_id=SITE)[1]
    assert doc["visitors"]["estimate"] == 0 and doc["lagSeconds"] is None  # no bucket of the window holds events


def test_a_lost_sketch_makes_the_distinct_read_incomplete_and_says_why(served: Served) -> None:
    layout = served.pipeline.reader.layout()
    bucket = int(NOW) // 10 - 3
    plain = Client(("127.0.0.1", served.memcached.port))
    lost = []
    for span, index in ((1, bucket), (6, bucket // 6)):  # whichever of them the window's plan reads
        key = sketch_key(layout, ("d", span, index, "review", layout.shard(SITE)))
        if plain.get(key) is not None:
            plain.delete(key, noreply=False)
            lost.append(key)
    assert lost
    status, doc = served.get("/api/v1/summary/review", tracking_id=SITE, distinct="visitors", minutes=30)
    assert status == 200 and doc["incomplete"] is True
    parts = doc["incompleteParts"]
    assert parts and any(key in part["why"] and "missing" in part["why"] for part in parts for key in lost)
    assert {"buckets", "from", "to", "why"} <= set(parts[0])
    live = served.get("/api/v1/live", tracking_id=SITE)[1]
    assert live["incomplete"] is True and live["incompleteParts"]


@pytest.mark.parametrize(
    ("path", "parameter", "says"),
    [
        ("/api/v1/summary/signup?tracking_id=INF-a&distinct=people", "distinct", "expected one of visitors, signups, got 'people'"),
        ("/api/v1/summary/signup?tracking_id=INF-a&distinct=", "distinct", "expected one of visitors, signups"),
        ("/api/v1/summary/review?tracking_id=INF-a&distinct=signups", "distinct", "signups are counted for type signup only"),
        ("/api/v1/summary/signup?tracking_id=INF-a&distinct=visitors&distinct=signups", "distinct", "given more than once"),
        ("/api/v1/summary/signup?distinct=visitors", "tracking_id", "missing"),
        ("/api/v1/live?tracking_id=", "tracking_id", "is empty"),
        ("/api/v1/live?tracking_id=a%20b", "tracking_id", ""),
        ("/api/v1/live?minutes=5", "minutes", "unknown parameter; this route takes tracking_id"),
        ("/api/v1/summary/signup?tracking_id=INF-a&distinct=visitors&minutes=0", "minutes", ""),
    ],
)
def test_bad_distinct_and_live_parameters_are_400_naming_them(served: Served, path: str, parameter: str, says: str) -> None:
    answer = served.service.get(path)
    assert answer.status == 400, answer.body
    doc = answer.json()
    assert doc["parameter"] == parameter and doc["error"].startswith(f"{parameter}: ") and says in doc["error"]


query_text = st.text(max_size=40) | st.sampled_from(["visitors", "signups", "VISITORS", "visitors ", "\x00", "%", "INF-a", "é" * 200])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(["/api/v1/summary/signup", "/api/v1/summary/review", "/api/v1/live"]),
    query=st.lists(st.tuples(st.sampled_from(["distinct", "tracking_id"]), query_text), min_size=1, max_size=3),
)
def test_any_distinct_or_tracking_id_gets_an_answer_or_a_4xx_naming_the_parameter(served: Served, route: str, query: list[tuple[str, str]]) -> None:
    answer = served.service.get(f"{route}?{urlencode(query)}")
    assert answer.status < 500, answer.body[:300]
    doc = answer.json()
    if answer.status == 200:
        if "count" not in doc:  # without distinct: the id's count of events, as before
            figure = doc["signups"] if "signups" in doc else doc["visitors"]
            assert figure["lower"] <= figure["estimate"] <= figure["upper"]
        return
    assert 400 <= answer.status < 500
    named = doc["parameter"]
    given_names = {name for name, _ in query}
    assert named in given_names or (named == "tracking_id" and route != "/api/v1/live"), doc
    assert doc["error"].startswith(f"{named[:40]}: ") and "Traceback" not in doc["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=1, max_size=60))
def test_any_bytes_as_distinct_or_tracking_id_never_give_a_500(served: Served, raw: bytes) -> None:
    """Percent-encoded bytes that are not UTF-8 (aiohttp decodes them with replacement), controls, NUL."""
    encoded = quote(raw, safe="")
    for path in (f"/api/v1/summary/signup?tracking_id=INF-a&distinct={encoded}", f"/api/v1/summary/signup?distinct=signups&tracking_id={encoded}", f"/api/v1/live?tracking_id={encoded}"):
        answer = served.service.get(path)
        assert answer.status < 500, (path, answer.body[:300])
        if answer.status != 200:
            assert answer.json()["parameter"] in ("distinct", "tracking_id")


def test_the_new_routes_are_timed_by_template_in_metrics(served: Served) -> None:
    served.get("/api/v1/live", tracking_id=SITE)
    served.get("/api/v1/summary/signup", tracking_id=SITE, distinct="signups")
    page = served.service.get("/metrics").body.decode()
    assert 'eventdash_read_seconds_count{route="/api/v1/live"} 1.0' in page
    assert 'eventdash_http_requests_total{route="/api/v1/summary/{type}",status="200"} 1.0' in page


# ------------------------------------------------------------------------------------------------
# eventdash serve, end to end


def test_serve_answers_live_and_distinct_reads_of_posted_events_and_publishes_visitors(tmp_path: Path, memcached: MemcachedServer) -> None:
    """The brief's samples posted by five visitors (each twice), two of them signing up with the
    same e-mail: 5 live visitors, 2 distinct sign-up e-mails (hashed with the salt; without one no
    e-mail is hashed), and the summary keys say so."""
    proc, url = serve(tmp_path, memcached, "live:", "--email-salt", "a-test-salt")
    try:
        docs = []
        for i in range(5):
            for sample in BRIEF:
                doc = fresh(sample)
                doc["value"]["visitorId"] = f"visitor-{i}"  # type: ignore[index]
                if "form" in doc["value"]:  # type: ignore[operator]
                    doc["value"]["form"]["email"] = "a@example.com" if i < 3 else "b@example.com"  # type: ignore[index]
                docs.append(doc)
        status, answer = post(url, docs + docs)
        assert status == 202 and answer is not None and answer["accepted"] == 20
        wait_until(lambda: get(url, "/api/v1/summary")["summary"]["user-event"]["totalEventsCaptured"] == 10, timeout=10, what="the posts to be counted")  # type: ignore[index]
        live = get(url, f"/api/v1/live?tracking_id={SITE}")
        assert live["visitors"] == {"estimate": 5, "lower": 5, "upper": 5} and live["window"]["minutes"] == 7  # type: ignore[index]
        assert get(url, "/api/v1/live")["visitors"]["estimate"] == 5  # type: ignore[index]
        signups = get(url, f"/api/v1/summary/signup?tracking_id={SITE}&distinct=signups")
        assert signups["signups"]["estimate"] == 2 and signups["incomplete"] is False  # type: ignore[index]
        assert get(url, f"/api/v1/summary/user-event?tracking_id={SITE}&distinct=visitors")["visitors"]["estimate"] == 5  # type: ignore[index]
        plain = Client(("127.0.0.1", memcached.port))

        def published() -> bool:
            raw = plain.get("live:signup")
            return raw is not None and json.loads(raw).get("visitors", {}).get("byTrackingId") == {SITE: 5}

        wait_until(published, timeout=15, what="the summary key's visitors")
        doc = json.loads(plain.get("live:signup"))
        assert doc["visitors"]["total"] == 5 and doc["visitors"]["omitted"] == 0 and doc["visitors"]["incomplete"] == []
        assert doc["eventsCapturedByTrackingIds"] == {SITE: 10}  # the brief's fields as they were
    finally:
        assert proc.stop() == 0
