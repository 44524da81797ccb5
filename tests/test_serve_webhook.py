"""The alert webhook end to end: a real ``eventdash serve`` process over real memcached, events
posted to ``POST /visitors/events/``, and a real HTTP receiver on 127.0.0.1.

Buckets are 1 s and the anomaly settings are scaled to them (a 2 s warm-up, ``for`` 2 buckets,
``keep_firing_for`` 2), so a drop fires and resolves within seconds. The events of a whole scenario
are posted at once, stamped with their own times up to ~15 s ahead (serve accepts 60 s of clock
skew): what happens then is the server's own doing, and the test only waits for conditions.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from tests.conftest import MemcachedServer, wait_until
from tests.proc import Eventdash
from tests.test_anomaly_webhook import Receiver
from tests.test_serve_e2e import serve
from tests.test_serve_process import get, post

STEADY = 20  # signups per bucket of each id
#: Buckets of the scenario, from its first: steady (the warm-up and a baseline), INF-a at zero, steady
#: again (long enough that the scenario's end, when every series drops, comes well after the checks).
WARM, DROP, BACK = 6, 3, 12
ANOMALY = {"warmup_seconds": 2, "for_buckets": 2, "keep_firing_for_buckets": 2, "min_count": 5, "baseline_seconds": 60}


def settings_file(tmp_path: Path, **anomaly: object) -> str:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"bucket_seconds": 1, "window_minutes": 1, "anomaly": {**ANOMALY, **anomaly}}))
    return str(path)


def start(tmp_path: Path, memcached: MemcachedServer, prefix: str, webhook: str) -> tuple[Eventdash, str]:
    """serve with the scaled settings, once its first polls primed the (empty) past."""
    proc, url = serve(tmp_path / "state", memcached, prefix, "--settings", settings_file(tmp_path), "--webhook", webhook)
    wait_until(lambda: get(url, "/api/v1/alerts")["anomaly"]["priming"] is False, timeout=15, what="the watch to prime")  # type: ignore[index]
    return proc, url


def signup(tid: str, ms: int) -> dict[str, object]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    return {"path": "/visitors/events/", "value": {"trackingId": tid, "event": "formsubmit", "timestamp": stamp}}


def post_scenario(url: str) -> int:
    """INF-a and INF-b steady from two buckets ahead; INF-a drops to zero for :data:`DROP` buckets,
    then comes back. INF-b keeps the type's total from dropping by k. Returns the first bucket."""
    first = math.floor(time.time()) + 2
    docs = []
    for n in range(WARM + DROP + BACK):
        bucket = first + n
        ids = ["INF-b"] if WARM <= n < WARM + DROP else ["INF-a", "INF-b"]
        docs += [signup(tid, bucket * 1000 + 10 * i) for tid in ids for i in range(STEADY)]
    for at in range(0, len(docs), 500):
        status, answer = post(url, docs[at : at + 500])
        assert status == 202 and answer is not None and answer["rejected"] == [], answer
    return first


def alert_fields(body: dict[str, Any]) -> tuple[object, ...]:
    return (body["source"], body["type"], body["id"], body["direction"], body["state"])


def test_a_drop_posts_firing_then_resolved_to_the_receiver(tmp_path: Path, memcached: MemcachedServer) -> None:
    rx = Receiver([])
    proc, url = start(tmp_path, memcached, "hook-ok:", rx.url)
    try:
        first = post_scenario(url)
        wait_until(lambda: len(rx.bodies) >= 1, timeout=30, what="the firing alert at the receiver")
        firing = rx.bodies[0]
        assert alert_fields(firing) == ("eventdash", "signup", "INF-a", "drop", "firing")
        assert firing["sinceMs"] == (first + WARM) * 1000 and firing["observed"] == 0 and firing["expected"] >= STEADY * 0.8
        assert firing["firedAtMs"] == (first + WARM + ANOMALY["for_buckets"] - 1) * 1000 and firing["bucketSeconds"] == 1
        active = get(url, "/api/v1/alerts?tracking_id=INF-a")
        assert [(a["direction"], a["state"], a["sinceMs"]) for a in active["alerts"]] == [("drop", "firing", firing["sinceMs"])]  # type: ignore[index]
        wait_until(lambda: len(rx.bodies) >= 2, timeout=30, what="the resolved alert at the receiver")
        resolved = rx.bodies[1]  # nothing else came between: INF-b and the type never left their baselines
        assert alert_fields(resolved) == ("eventdash", "signup", "INF-a", "drop", "resolved")
        assert resolved["sinceMs"] == firing["sinceMs"] and resolved["resolvedAtMs"] == (first + WARM + DROP + ANOMALY["keep_firing_for_buckets"]) * 1000
        # (once the scenario's events end, every series drops to zero and alerts again: not looked at)
        after = get(url, "/api/v1/alerts?tracking_id=INF-a")
        assert not any(a["sinceMs"] == firing["sinceMs"] for a in after["alerts"])  # type: ignore[index]
        history = get(url, "/api/v1/alerts/history?tracking_id=INF-a")["history"]
        assert [(a["state"], a["sinceMs"]) for a in history[:2]] == [("firing", firing["sinceMs"]), ("resolved", firing["sinceMs"])]  # type: ignore[index]
        webhook = get(url, "/api/v1/alerts")["webhook"]
        assert webhook["sent"] >= 2 and webhook["failed"] == webhook["retries"] == webhook["dropped"] == 0 and webhook["lastError"] == ""  # type: ignore[index]
    finally:
        assert proc.stop() == 0
        rx.close()


def test_a_failing_receiver_gets_the_alert_after_retries(tmp_path: Path, memcached: MemcachedServer) -> None:
    rx = Receiver([500, 503, 500])  # then 200
    proc, url = start(tmp_path, memcached, "hook-retry:", rx.url)
    try:
        post_scenario(url)
        wait_until(lambda: len(rx.bodies) >= 4, timeout=40, what="three failed attempts and the delivery")
        assert all(body == rx.bodies[0] for body in rx.bodies[:4])  # the same alert, retried
        assert alert_fields(rx.bodies[0]) == ("eventdash", "signup", "INF-a", "drop", "firing")
        wait_until(lambda: get(url, "/api/v1/alerts")["webhook"]["sent"] >= 1, what="the delivery counted")  # type: ignore[index]
        webhook = get(url, "/api/v1/alerts")["webhook"]
        assert webhook["retries"] == 3 and webhook["failed"] == 0 and webhook["lastError"] == f"HTTP 500 from {rx.url}"  # type: ignore[index]
        metrics = urllib_text(f"{url}/metrics")
        assert 'eventdash_webhook_deliveries_total{outcome="retried"} 3.0' in metrics
    finally:
        assert proc.stop() == 0
        rx.close()


def test_a_receiver_that_hangs_never_slows_ingest(tmp_path: Path, memcached: MemcachedServer) -> None:
    rx = Receiver([None, None])  # each held (10 s) until released: longer than the webhook's timeout
    proc, url = serve(
        tmp_path / "state", memcached, "hook-hang:", "--settings", settings_file(tmp_path, webhook_timeout_seconds=2, webhook_retries=1), "--webhook", rx.url,
    )
    try:
        wait_until(lambda: get(url, "/api/v1/alerts")["anomaly"]["priming"] is False, timeout=15, what="the watch to prime")  # type: ignore[index]
        post_scenario(url)
        wait_until(lambda: len(rx.bodies) >= 1, timeout=30, what="the firing alert to reach the hanging receiver")
        posted, slowest = 0, 0.0
        while len(rx.bodies) < 2:  # posting goes on through both attempts the sender makes
            started = time.monotonic()
            status, answer = post(url, [signup("INF-z", int(time.time() * 1000))] * 50)
            slowest = max(slowest, time.monotonic() - started)
            assert status == 202 and answer is not None and answer["accepted"] == 50
            posted += 50
            assert posted < 200_000, "the sender never retried"
        assert slowest < 2.0  # an attempt hangs for the webhook's 2 s timeout; no post waits for one
        wait_until(lambda: get(url, "/api/v1/summary/signup?tracking_id=INF-z")["count"] == posted, what="every event posted, counted exactly")
        wait_until(lambda: get(url, "/api/v1/alerts")["webhook"]["failed"] == 1, what="the held alert given up after its retries")  # type: ignore[index]
        webhook = get(url, "/api/v1/alerts")["webhook"]
        # (later alerts, e.g. INF-z's own drop when the posting stops, are delivered: not counted here)
        assert webhook["retries"] >= 1 and "timed out" in webhook["lastError"], webhook  # type: ignore[index]
    finally:
        rx.release.set()
        assert proc.stop() == 0
        rx.close()


def urllib_text(address: str) -> str:
    import urllib.request

    with urllib.request.urlopen(address, timeout=10) as answer:
        return answer.read().decode()
