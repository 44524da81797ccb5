"""``eventdash serve`` as a real process: start, stop on a signal, ``kill -9`` and restart exact,
one process per state directory, and the warning off loopback."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer, free_port, wait_until
from tests.proc import Eventdash


def now_event(tid: str, name: str = "click") -> dict[str, object]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {"path": "/visitors/events/", "value": {"trackingId": tid, "event": name, "timestamp": stamp}}


def post(url: str, docs: list[dict[str, object]]) -> tuple[int, dict[str, object] | None]:
    request = urllib.request.Request(f"{url}/visitors/events/", data=json.dumps(docs).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None


def get(url: str, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}{path}", timeout=10) as answer:
        return json.loads(answer.read())


def start(state: Path, *extra: str) -> tuple[Eventdash, str]:
    port = free_port()
    proc = Eventdash("serve", "--listen", f"127.0.0.1:{port}", "--state-dir", str(state), "--backend", "memory", *extra)
    proc.wait_for("serve: listening on")
    return proc, f"http://127.0.0.1:{port}"


def total(url: str) -> int:
    summary = get(url, "/api/v1/summary")["summary"]
    assert isinstance(summary, dict)
    return sum(t["totalEventsCaptured"] for t in summary.values())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_ends_serve_cleanly_with_exit_0(tmp_path: Path, signum: int) -> None:
    proc, url = start(tmp_path)
    assert post(url, [now_event("INF-a")] * 3)[0] == 202
    assert proc.stop(signum) == 0
    assert "stopped; 0 events held in the spool" in proc.text("stderr")  # flushed to the store, released
    assert "Traceback" not in proc.text("stderr")


def test_kill_9_after_202s_loses_nothing_and_doubles_nothing(tmp_path: Path, memcached: MemcachedServer) -> None:
    """Three kill -9s under load, each right after a 202 and at any point of the writer's flushes:
    the counts in memcached equal exactly the events that got a 202."""
    store = ("--backend", "memcached", "--memcached", memcached.address, "--key-prefix", "k9:")
    accepted = 0
    for round_ in range(3):
        proc, url = start(tmp_path, *store)
        for i in range(20):
            status, answer = post(url, [now_event(f"INF-{(round_ + i) % 4}") for _ in range(25)])
            assert status == 202 and answer is not None
            accepted += int(answer["accepted"])  # type: ignore[call-overload]
        proc.proc.kill()
        proc.proc.wait()
    again, url = start(tmp_path, *store)
    try:
        wait_until(lambda: total(url) >= accepted, timeout=20, what="the restarted writer to flush what the spool held")
        assert total(url) == accepted == 1500
    finally:
        assert again.stop() == 0
    after, url = start(tmp_path, *store)  # a clean restart adds nothing twice
    try:
        assert total(url) == 1500
    finally:
        assert after.stop() == 0


def test_a_second_serve_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    first, _ = start(tmp_path)
    try:
        second = Eventdash("serve", "--listen", f"127.0.0.1:{free_port()}", "--state-dir", str(tmp_path), "--backend", "memory")
        assert second.proc.wait(timeout=20) == 2
        second.stop()
        lines = second.text("stderr").splitlines()
        assert len(lines) == 1 and "is in use by another eventdash (pid" in lines[0]
    finally:
        first.stop()


def test_a_non_loopback_address_warns(tmp_path: Path) -> None:
    proc, _ = start(tmp_path, "--listen", f"0.0.0.0:{free_port()}")
    try:
        assert "warning: listening on 0.0.0.0" in proc.text("stderr")
        assert "without a token" in proc.text("stderr")
    finally:
        proc.stop()


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    first, url = start(tmp_path / "a")
    try:
        port = url.rsplit(":", 1)[1]
        second = Eventdash("serve", "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "b"), "--backend", "memory")
        assert second.proc.wait(timeout=20) == 1
        second.stop()
        assert f"cannot listen on 127.0.0.1:{port}" in second.text("stderr")
        assert "Traceback" not in second.text("stderr")
    finally:
        first.stop()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--listen", "localhost"], "--listen: expected HOST:PORT"),
        (["--listen", "127.0.0.1:７０"], "--listen: expected a port number"),
        (["--listen", "::1:80"], "--listen: write an IPv6 address in brackets"),
        (["--cors-origin", "https://a.example/path"], "--cors-origin: expected an origin"),
        (["--ingest-token", "short"], "--ingest-token: a token is 16 to 512"),
        (["--max-body-bytes", "0"], "--max-body-bytes: must be from 1"),
        (["--spool-mb", "0"], "--spool-mb: must be from 1"),
        (["--state-dir", ""], "--state-dir: give a directory path"),
    ],
)
def test_bad_serve_flags_end_in_one_line_and_exit_2(flags: list[str], says: str) -> None:
    proc = Eventdash("serve", *flags)
    assert proc.proc.wait(timeout=20) == 2
    proc.stop()
    lines = proc.text("stderr").splitlines()
    assert len(lines) == 1 and says in lines[0], lines


def test_the_serve_process_counts_what_it_accepted(tmp_path: Path) -> None:
    proc, url = start(tmp_path)
    try:
        post(url, [now_event("INF-a", "formsubmit"), now_event("INF-b", "review"), now_event("INF-a")])
        wait_until(lambda: total(url) == 3, what="the posted events in the summary")
        one = get(url, "/api/v1/summary/signup?tracking_id=INF-a&minutes=5")
        assert one["count"] == 1 and one["incomplete"] is False
    finally:
        proc.stop()


def test_the_settings_event_types_mapping_decides_each_posted_events_type(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"event_types": {"purchase": "signup", "click": "review"}}))
    proc, url = start(tmp_path / "state", "--settings", str(settings))
    try:
        status, answer = post(url, [now_event("INF-a", "purchase"), now_event("INF-a"), now_event("INF-a", "formsubmit")])
        assert status == 202 and answer is not None and answer["accepted"] == 2
        assert [r["code"] for r in answer["rejected"]] == ["unknown_event"]  # type: ignore[union-attr]  # the mapping replaces the defaults
        wait_until(lambda: total(url) == 2, what="the posted events in the summary")
        for etype in ("signup", "review"):
            assert get(url, f"/api/v1/summary/{etype}?tracking_id=INF-a")["count"] == 1
    finally:
        proc.stop()


def _publishers(serve: Eventdash) -> list[psutil.Process]:
    """serve's publisher processes still running (not the resource tracker multiprocessing adds)."""
    found = []
    for child in psutil.Process(serve.proc.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # gone between the listing and the look
            pass
    return found


def test_with_memcached_a_publisher_process_keeps_the_summary_keys_and_dies_with_serve(tmp_path: Path, memcached: MemcachedServer) -> None:
    """Publishing reads and re-encodes the whole window: in serve's own process it held the GIL
    while requests waited, so with memcached it runs in a child, which must not outlive serve."""
    proc, url = start(tmp_path, "--backend", "memcached", "--memcached", memcached.address, "--key-prefix", "pub:")
    assert post(url, [now_event("INF-a")] * 7)[0] == 202
    plain = Client(("127.0.0.1", memcached.port))

    def published() -> bool:
        raw = plain.get("pub:user-event")
        return raw is not None and json.loads(raw)["eventsCapturedByTrackingIds"] == {"INF-a": 7}

    wait_until(published, timeout=20, what="the summary key with the 7 events")
    [child] = _publishers(proc)
    proc.proc.kill()
    proc.proc.wait()
    wait_until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, timeout=10, what="the publisher to exit after its serve")


def test_a_publisher_that_dies_is_started_again(tmp_path: Path, memcached: MemcachedServer) -> None:
    proc, url = start(tmp_path, "--backend", "memcached", "--memcached", memcached.address, "--key-prefix", "pub:")
    try:
        wait_until(lambda: len(_publishers(proc)) == 1, timeout=20, what="the publisher process")
        [first] = _publishers(proc)
        first.kill()
        wait_until(lambda: [p.pid for p in _publishers(proc)] not in ([], [first.pid]), timeout=20, what="a new publisher")
        assert post(url, [now_event("INF-b", "review")] * 3)[0] == 202
        plain = Client(("127.0.0.1", memcached.port))
        wait_until(lambda: (raw := plain.get("pub:review")) is not None and json.loads(raw)["totalEventsCaptured"] == 3, timeout=20, what="the new publisher's keys")
    finally:
        assert proc.stop() == 0
