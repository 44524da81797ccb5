"""``make_app``: every route and response code over real HTTP on 127.0.0.1, with a real spool.

The server runs in a background loop (tests/serve_harness.py); the client is urllib, a plain HTTP
client, as the brief's tracker would be to us. The clock is fixed just after the brief's samples.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.serve_harness import RunningService
from tui.clock import FakeClock
from tui.ingest.decode import IngestLimits
from tui.service.config import ServiceConfig

BRIEF = Path(__file__).parent / "fixtures" / "brief_events.json"
#: 2019-12-08T07:11:00Z: the samples (06:42:57 and 07:10:30) are within the last hour.
NOW = 1575789060.0
INGEST_TOKEN, READ_TOKEN = "ingest-token-0123456789", "read-token-0123456789"


def config(**changes: object) -> ServiceConfig:
    base = {"retention_seconds": 3600, "default_minutes": 60.0, "limits": IngestLimits(body_bytes=20_000, events_per_request=50)}
    return ServiceConfig(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[RunningService]:
    running = RunningService(tmp_path / "spool", clock, config(cors_origins=("https://shop.example",)))
    yield running
    running.stop()


def event(tid: str = "INF-yj562hjojbtez", name: str = "click", ts: str = "2019-12-08T07:10:30.485Z", **extra: object) -> dict[str, object]:
    return {"path": "/visitors/events/", "value": {"trackingId": tid, "event": name, "timestamp": ts, **extra}}


def body(*docs: object) -> bytes:
    return json.dumps(list(docs)).encode()


# ------------------------------------------------------------------------------------------------
# Ingest


def test_the_briefs_samples_posted_with_a_plain_client_are_accepted_durably_and_read_back(service: RunningService) -> None:
    samples = json.loads(BRIEF.read_text())
    for sample in samples:  # each exactly as the brief shows it, one request each
        answer = service.post(json.dumps(sample).encode())
        assert answer.status == 202 and answer.json() == {"accepted": 1, "rejected": []}
    on_disk = [e for r in service.spool.records() for e in r.events]
    assert [(e.type, e.tracking_id) for e in on_disk] == [("signup", "INF-yj562hjojbtez"), ("user-event", "INF-yj562hjojbtez")]
    summary = service.get("/api/v1/summary?minutes=60").json()
    assert summary["summary"]["signup"] == {"totalEventsCaptured": 1, "eventsCapturedByTrackingIds": {"INF-yj562hjojbtez": 1}}
    assert summary["summary"]["user-event"]["totalEventsCaptured"] == 1
    assert summary["summary"]["review"] == {"totalEventsCaptured": 0, "eventsCapturedByTrackingIds": {}}


def test_the_settings_salt_keys_the_email_hash_and_without_one_no_email_is_hashed(service: RunningService, tmp_path: Path, clock: FakeClock) -> None:
    from tui.ingest.decode import hash_email

    samples = BRIEF.read_bytes()
    assert service.post(samples).json()["accepted"] == 2
    assert [e.email_hash for r in service.spool.records() for e in r.events] == [None, None]  # no salt: nothing to count by
    salted = RunningService(tmp_path / "salted", clock, config(email_salt="salt of this deployment"))
    try:
        assert salted.post(samples).json()["accepted"] == 2
        signup, click = [e for r in salted.spool.records() for e in r.events]
        assert signup.email_hash == hash_email("agency@gmail.com", b"salt of this deployment") and click.email_hash is None
        assert "salt of this deployment" not in repr(config(email_salt="salt of this deployment"))
    finally:
        salted.stop()


def test_a_mixed_batch_gets_a_result_for_every_event(service: RunningService) -> None:
    answer = service.post(body(event(), event(tid=""), event(name="teleport"), event(ts="2019-12-08T05:00:00Z"), event(ts="2019-12-08T08:00:00Z"), 7))
    assert answer.status == 202
    result = answer.json()
    assert result["accepted"] == 1
    assert [(r["index"], r["field"], r["code"]) for r in result["rejected"]] == [
        (1, "value.trackingId", "invalid_id"),
        (2, "value.event", "unknown_event"),
        (3, "value.timestamp", "late"),
        (4, "value.timestamp", "future"),
        (5, "", "not_an_object"),
    ]
    assert all(r["reason"] for r in result["rejected"])


def test_ndjson_and_gzip_bodies_are_accepted(service: RunningService) -> None:
    ndjson = b"\n".join(json.dumps(event()).encode() for _ in range(3))
    assert service.post(ndjson, "application/x-ndjson").json()["accepted"] == 3
    assert service.post(gzip.compress(body(event(), event())), Content_Encoding="gzip").json()["accepted"] == 2


@pytest.mark.parametrize(
    ("payload", "headers", "status", "says"),
    [
        (b'[{"value": {"trackingId": "INF-a",}}]', {}, 400, "line 1, column"),
        (b'[\n{"value": 1},\n{oops}]', {}, 400, "line 3, column 2"),
        (b"[" + b"[" * 40 + b"]" * 40 + b"]", {}, 400, "nests"),
        (b"x" * 20_001, {}, 413, "20,000"),
        (gzip.compress(b" " * 200_000), {"Content-Encoding": "gzip"}, 413, "inflates"),
        (json.dumps([event()] * 51).encode(), {}, 413, "more than 50 events"),
        (b"{}", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "Content-Type"),
        (b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
        (b"\x1f\x8b not gzip", {"Content-Encoding": "gzip"}, 400, "gzip"),
    ],
)
def test_bodies_refused_as_a_whole_say_why_in_json(service: RunningService, payload: bytes, headers: dict[str, str], status: int, says: str) -> None:
    answer = service.request("POST", "/visitors/events/", payload, {"Content-Type": "application/json", **headers})
    assert answer.status == status
    assert says in answer.json()["error"]
    assert not list(service.spool.records()), "nothing of a refused body counts"


def test_a_parse_error_gives_line_and_column_fields(service: RunningService) -> None:
    answer = service.post(b'{"value":\n  {"a": tru}}', "application/json")
    assert answer.status == 400
    assert (answer.json()["line"], answer.json()["column"]) == (2, 9)


def test_a_full_spool_answers_429_with_retry_after_and_counts_nothing(tmp_path: Path, clock: FakeClock) -> None:
    running = RunningService(tmp_path, clock, config(retry_after_seconds=3), spool_bytes=400)
    try:
        codes = [running.post(body(event(), event())).status for _ in range(10)]
        assert codes[0] == 202 and codes[-1] == 429
        refused = running.post(body(event()))
        assert refused.status == 429 and refused.headers["Retry-After"] == "3" and "spool" in refused.json()["error"]
        accepted = sum(c == 202 for c in codes) * 2
        assert running.get("/api/v1/summary").json()["summary"]["user-event"]["totalEventsCaptured"] == accepted
        ready = running.get("/readyz")
        assert ready.status == 503 and "spool is full" in ready.json()["problems"]["sink"]
    finally:
        running.stop()


def test_while_shutting_down_every_request_gets_503(service: RunningService) -> None:
    assert service.get("/readyz").status == 200
    service.begin_shutdown()
    answer = service.post(body(event()))
    assert answer.status == 503 and answer.headers["Retry-After"] == "1"
    assert service.get("/api/v1/summary").status == 503
    assert service.get("/readyz").status == 503
    assert not list(service.spool.records())


def test_unknown_paths_and_methods_answer_json(service: RunningService) -> None:
    missing = service.get("/nope")
    assert missing.status == 404 and missing.json() == {"error": "Not Found"}
    wrong = service.request("PUT", "/visitors/events/", b"{}")
    assert wrong.status == 405 and "POST" in wrong.headers["Allow"]


# ------------------------------------------------------------------------------------------------
# Tokens and CORS


def test_tokens_guard_ingest_and_reads_when_set(tmp_path: Path, clock: FakeClock) -> None:
    running = RunningService(tmp_path, clock, config(ingest_token=INGEST_TOKEN, read_token=READ_TOKEN))
    try:
        assert running.post(body(event())).status == 401
        assert running.post(body(event()), Authorization="Bearer wrong-token-000000000").status == 401
        assert running.post(body(event()), Authorization=f"Bearer {INGEST_TOKEN}").status == 202
        assert running.post(body(event()), X_Eventdash_Token=INGEST_TOKEN).status == 202
        assert running.post(body(event()), Authorization=f"Bearer {READ_TOKEN}").status == 401
        refused = running.get("/api/v1/summary")
        assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert running.get("/metrics").status == 401
        assert running.get("/api/v1/summary", Authorization=f"Bearer {READ_TOKEN}").json()["summary"]["user-event"]["totalEventsCaptured"] == 2
        assert running.get("/metrics", X_Eventdash_Token=READ_TOKEN).status == 200
        assert running.get("/healthz").status == 200 and running.get("/readyz").status == 200
    finally:
        running.stop()


def test_cors_preflight_and_headers_only_for_listed_origins(service: RunningService) -> None:
    preflight = service.request("OPTIONS", "/visitors/events/", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    denied = service.request("OPTIONS", "/visitors/events/", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert denied.status == 403 and "Access-Control-Allow-Origin" not in denied.headers
    allowed = service.post(body(event()), "text/plain", Origin="https://shop.example")
    assert allowed.status == 202 and allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert allowed.headers["Vary"] == "Origin"
    other = service.post(body(event()), "text/plain", Origin="https://evil.example")
    assert other.status == 202 and "Access-Control-Allow-Origin" not in other.headers


def test_a_star_origin_allows_any(tmp_path: Path, clock: FakeClock) -> None:
    running = RunningService(tmp_path, clock, config(cors_origins=("*",)))
    try:
        answer = running.get("/api/v1/summary", Origin="https://anyone.example")
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        running.stop()


# ------------------------------------------------------------------------------------------------
# Reads


def test_reads_carry_as_of_window_bound_incomplete_and_lag(service: RunningService, clock: FakeClock) -> None:
    service.post(body(event(ts="2019-12-08T07:10:50.000Z"), event(tid="INF-other", ts="2019-12-08T07:10:55.000Z"), event(name="review", ts="2019-12-08T07:10:40Z")))
    summary = service.get("/api/v1/summary?minutes=5").json()
    assert summary["asOf"] == "2019-12-08T07:11:00.000Z"
    assert summary["window"] == {"minutes": 5, "bucketSeconds": 10, "bound": "±10 s"}
    assert summary["incomplete"] is False and summary["lagSeconds"] == 5.0
    assert summary["summary"]["user-event"]["eventsCapturedByTrackingIds"] == {"INF-other": 1, "INF-yj562hjojbtez": 1}
    one = service.get("/api/v1/summary/user-event?tracking_id=INF-other&minutes=1").json()
    assert (one["type"], one["trackingId"], one["count"], one["window"]["minutes"]) == ("user-event", "INF-other", 1, 1)
    assert service.get("/api/v1/summary/signup?tracking_id=INF-other").json()["count"] == 0
    series = service.get("/api/v1/series?type=user-event&minutes=1&step=10s").json()
    assert [p["count"] for p in series["points"]] == [0, 0, 0, 0, 0, 2, 0]
    assert series["points"][-2]["start"] == "2019-12-08T07:10:50.000Z"
    hourly = service.get("/api/v1/series?type=review&tracking_id=INF-yj562hjojbtez&minutes=60&step=1m").json()
    assert sum(p["count"] for p in hourly["points"]) == 1 and hourly["stepSeconds"] == 60
    clock.advance(400)
    assert service.get("/api/v1/summary?minutes=5").json()["summary"]["user-event"]["totalEventsCaptured"] == 0


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/summary?minutes=abc", "minutes"),
        ("/api/v1/summary?minutes=-5", "minutes"),
        ("/api/v1/summary?minutes=nan", "minutes"),
        ("/api/v1/summary?minutes=0.1", "minutes"),  # not a whole number of 10 s buckets
        ("/api/v1/summary?minutes=61", "minutes"),  # past the retention
        ("/api/v1/summary?minutes=5&minutes=6", "minutes"),
        ("/api/v1/summary?minute=5", "minute"),
        ("/api/v1/summary/pageview?tracking_id=INF-a", "type"),
        ("/api/v1/summary/signup", "tracking_id"),
        ("/api/v1/summary/signup?tracking_id=INF%E2%80%8Ba", "tracking_id"),
        ("/api/v1/summary/signup?tracking_id=", "tracking_id"),
        ("/api/v1/series?type=signup&step=5m", "step"),
        ("/api/v1/series?type=signup", "step"),
        ("/api/v1/series?step=1m", "type"),
    ],
)
def test_bad_query_parameters_answer_400_naming_the_parameter(service: RunningService, path: str, parameter: str) -> None:
    answer = service.get(path)
    assert answer.status == 400
    assert answer.json()["parameter"] == parameter and answer.json()["error"].startswith(f"{parameter}: ")


def test_a_step_finer_than_the_bucket_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    running = RunningService(tmp_path, clock, config(), bucket_seconds=60)
    try:
        answer = running.get("/api/v1/series?type=signup&step=10s&minutes=5")
        assert answer.status == 400 and answer.json()["parameter"] == "step"
    finally:
        running.stop()


def test_a_restart_on_the_same_spool_answers_the_same(tmp_path: Path, clock: FakeClock) -> None:
    first = RunningService(tmp_path, clock, config())
    first.post(body(event(), event(tid="INF-b"), event(name="formsubmit")))
    before = first.get("/api/v1/summary").json()
    first.stop()
    second = RunningService(tmp_path, clock, config())
    try:
        assert second.get("/api/v1/summary").json() == before
    finally:
        second.stop()


# ------------------------------------------------------------------------------------------------
# Metrics


def test_metrics_parse_and_count_accepted_rejected_requests_and_reads(service: RunningService) -> None:
    service.post(body(event(), event(tid=""), event(name="nope")))
    service.post(b"{", "application/json")
    service.get("/api/v1/summary")
    service.get("/no/such/path/123")
    page = service.get("/metrics")
    assert page.headers["Content-Type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(page.body.decode()) for s in f.samples}
    assert samples[("eventdash_events_accepted_total", ())] == 1
    assert samples[("eventdash_events_rejected_total", (("reason", "invalid_id"),))] == 1
    assert samples[("eventdash_events_rejected_total", (("reason", "unknown_event"),))] == 1
    assert samples[("eventdash_events_rejected_total", (("reason", "late"),))] == 0
    assert samples[("eventdash_http_requests_total", (("route", "/visitors/events/"), ("status", "202")))] == 1
    assert samples[("eventdash_http_requests_total", (("route", "/visitors/events/"), ("status", "400")))] == 1
    assert samples[("eventdash_http_requests_total", (("route", "unmatched"), ("status", "404")))] == 1
    assert samples[("eventdash_read_seconds_count", (("route", "/api/v1/summary"),))] == 1
    assert samples[("eventdash_spool_depth_events", ())] == 1
    assert ("eventdash_flush_seconds_count", ()) in samples
    assert ("eventdash_spool_age_seconds", ()) in samples
    assert samples[("eventdash_store_errors_total", (("kind", "store"),))] == 0  # a zero before the first error


# ------------------------------------------------------------------------------------------------
# Hostile input


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode) | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(["value", "trackingId", "event", "timestamp", "path", "x"]), inner, max_size=5),
        max_leaves=30,
    ).map(lambda doc: json.dumps(doc).encode()),
    content_type=st.sampled_from(["application/json", "application/x-ndjson", "text/plain", "application/json; charset=latin-1"]) | header_text,
    encoding=st.sampled_from(["", "gzip", "identity"]) | header_text,
    gzip_it=st.booleans(),
)
def test_any_body_and_headers_get_a_json_2xx_or_4xx_never_a_500(service: RunningService, payload: bytes, content_type: str, encoding: str, gzip_it: bool) -> None:
    sent = gzip.compress(payload) if gzip_it else payload
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    answer = service.request("POST", "/visitors/events/", sent, headers)
    assert 200 <= answer.status < 500, answer.body[:300]
    result = answer.json()
    if answer.status == 202:
        assert set(result) == {"accepted", "rejected"}
    else:
        assert isinstance(result["error"], str) and "Traceback" not in result["error"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(["/api/v1/summary", "/api/v1/summary/signup", "/api/v1/summary/%ZZ", "/api/v1/series"]),
    query=st.lists(st.tuples(st.sampled_from(["minutes", "tracking_id", "type", "step", "x"]), st.text(max_size=30)), max_size=4),
)
def test_any_query_gets_a_json_2xx_or_4xx_never_a_500(service: RunningService, route: str, query: list[tuple[str, str]]) -> None:
    from urllib.parse import urlencode

    answer = service.get(f"{route}?{urlencode(query)}")
    assert 200 <= answer.status < 500, answer.body[:300]
    assert isinstance(answer.json(), dict)
