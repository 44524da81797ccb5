"""``eventdash serve`` end to end: the real server in a subprocess, real memcached, plain HTTP.

What a user does: post the brief's sample events, read them back from the API and with one
memcached ``get``; memcached going away while events keep coming; ``send`` against ``serve``.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

from pymemcache.client.base import Client

from tests.conftest import MemcachedServer, free_port, wait_until
from tests.proc import REPO, Eventdash
from tests.test_serve_process import get, post

BRIEF = json.loads((Path(__file__).parent / "fixtures" / "brief_events.json").read_text())


def serve(state: Path, memcached: MemcachedServer, prefix: str, *extra: str) -> tuple[Eventdash, str]:
    port = free_port()
    proc = Eventdash(
        "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", str(state),
        "--backend", "memcached", "--memcached", memcached.address, "--key-prefix", prefix, *extra,
    )
    proc.wait_for("serve: listening on")
    return proc, f"http://127.0.0.1:{port}"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def fresh(doc: dict) -> dict:
    """The sample exactly, stamped now (the brief's 2019 stamps are older than any retention)."""
    doc = copy.deepcopy(doc)
    doc["value"]["timestamp"] = now_iso()
    return doc


def test_the_briefs_samples_are_counted_and_read_back_from_the_api_and_with_one_get(tmp_path: Path, memcached: MemcachedServer) -> None:
    proc, url = serve(tmp_path, memcached, "brief:")
    try:
        status, answer = post(url, [fresh(doc) for doc in BRIEF] * 3)
        assert status == 202 and answer == {"accepted": 6, "rejected": []}
        status, answer = post(url, BRIEF[:1])  # as given: stamped 2019-12-08, far older than the retention
        assert status == 202 and answer is not None and answer["accepted"] == 0
        [rejected] = answer["rejected"]  # type: ignore[misc]
        assert rejected["index"] == 0 and rejected["field"] == "value.timestamp" and "older than the retention" in rejected["reason"]

        def counted() -> bool:
            summary = get(url, "/api/v1/summary")["summary"]
            return summary["signup"]["totalEventsCaptured"] == 3 and summary["user-event"]["totalEventsCaptured"] == 3  # type: ignore[index]

        wait_until(counted, timeout=10, what="the accepted samples to be counted in memcached")
        one = get(url, "/api/v1/summary/signup?tracking_id=INF-yj562hjojbtez")
        assert one["count"] == 3 and one["incomplete"] is False and one["window"]["bound"] == "±10 s"  # type: ignore[index]
        assert isinstance(one["lagSeconds"], float) and 0 <= one["lagSeconds"] < 60  # the widget's answer says how fresh it is
        plain = Client(("127.0.0.1", memcached.port))

        def published() -> bool:
            raw = plain.get("brief:signup")
            return raw is not None and json.loads(raw)["eventsCapturedByTrackingIds"] == {"INF-yj562hjojbtez": 3}

        wait_until(published, timeout=10, what="the per-type summary key in the brief's shape")
    finally:
        assert proc.stop() == 0


def test_memcached_down_the_202s_go_on_into_the_spool_and_are_counted_exactly_once_it_is_back(tmp_path: Path, memcached: MemcachedServer) -> None:
    proc, url = serve(tmp_path, memcached, "down:")
    try:
        assert post(url, [fresh(BRIEF[1])] * 10)[0] == 202
        memcached.stop()
        for _ in range(5):  # accepted while nothing answers: durable in the spool, 202 all the same
            status, answer = post(url, [fresh(BRIEF[0])] * 20)
            assert status == 202 and answer is not None and answer["accepted"] == 20
        memcached.start()  # empty: the restarted server lost the first 10 too; the writer restores them

        def exact() -> bool:
            try:
                summary = get(url, "/api/v1/summary")["summary"]
            except OSError:
                return False
            return summary["signup"]["totalEventsCaptured"] == 100 and summary["user-event"]["totalEventsCaptured"] == 10  # type: ignore[index]

        wait_until(exact, timeout=20, what="every accepted event counted once memcached is back")
    finally:
        assert proc.stop() == 0


def test_a_full_spool_answers_429_with_retry_after_while_memcached_is_down(tmp_path: Path, memcached: MemcachedServer) -> None:
    import urllib.error
    import urllib.request

    memcached.stop()
    proc, url = serve(tmp_path, memcached, "full:", "--spool-mb", "1")
    body = json.dumps([fresh(BRIEF[0])] * 200).encode()
    try:
        accepted = 0
        for _ in range(2_000):  # bounded: 1 MB holds a few thousand sample events
            request = urllib.request.Request(f"{url}/visitors/events/", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    accepted += json.loads(answer.read())["accepted"]
            except urllib.error.HTTPError as refused:
                assert refused.code == 429 and int(refused.headers["Retry-After"]) >= 1
                break
        else:
            raise AssertionError("the spool never filled")
        assert accepted > 0
        memcached.start()  # back: the spool drains into the store, exactly what got a 202

        def drained() -> bool:
            summary = get(url, "/api/v1/summary")["summary"]
            return summary["signup"]["totalEventsCaptured"] == accepted  # type: ignore[index]

        wait_until(drained, timeout=30, what="the spool to drain into memcached")

        def ready() -> bool:
            try:
                return get(url, "/readyz")["ready"] is True
            except urllib.error.HTTPError:
                return False

        wait_until(ready, timeout=10, what="/readyz to say ready once the spool has drained")  # not full for ever
        status, answer = post(url, [fresh(BRIEF[0])])
        assert status == 202 and answer == {"accepted": 1, "rejected": []}
    finally:
        assert proc.stop() == 0


def test_send_against_serve_gives_the_same_totals_on_both_sides(tmp_path: Path, memcached: MemcachedServer) -> None:
    proc, url = serve(tmp_path, memcached, "send:")
    try:
        sent = subprocess.run(
            [sys.executable, "-m", "tui", "send", "--url", f"{url}/visitors/events/", "--rate", "2000", "--duration", "2", "--batch", "50", "--seed", "3"],
            capture_output=True, text=True, cwd=REPO, timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        report = json.loads(sent.stdout)
        assert report["sent_events"] == report["accepted"] == 4000

        def total() -> int:
            summary = get(url, "/api/v1/summary")["summary"]
            return sum(t["totalEventsCaptured"] for t in summary.values())  # type: ignore[union-attr]

        wait_until(lambda: total() >= 4000, timeout=15, what="serve to count what send sent")
        assert total() == 4000
    finally:
        assert proc.stop() == 0
