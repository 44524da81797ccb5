"""``eventdash --listen HOST:PORT``: serve's ingest and read API inside the dashboard's process,
feeding the dashboard's writer; the ingest panel; stopping cleanly; the flags' checks."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pymemcache.client.base import Client
from textual.app import App, ComposeResult

from tests.conftest import MemcachedServer, free_port, wait_until
from tests.proc import PtyDashboard
from tests.test_cli import run
from tests.test_serve_e2e import BRIEF, fresh
from tests.test_serve_process import post
from tui.clock import FakeClock
from tui.components.ingest_panel import IngestPanel
from tui.events import iso_ms
from tui.pipeline import Pipeline
from tui.service.embedded import EmbeddedServer, IngestReading
from tui.service.options import dashboard_serve_options
from tui.service.state import StateDir
from tui.settings import Settings
from tui.store import MemoryStore


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def published_total(memcached: MemcachedServer, key: str) -> int | None:
    value = Client(("127.0.0.1", memcached.port)).get(key)
    return None if value is None else int(json.loads(value)["totalEventsCaptured"])


def test_the_dashboard_counts_what_is_posted_to_its_listen_address(tmp_path: Path, memcached: MemcachedServer) -> None:
    """The real dashboard in a pseudo-terminal with --listen: the brief's samples posted with a plain
    HTTP client show in its ingest panel and its tables, are published to memcached, and q stops
    it with exit 0 and every count written."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    store = ("--memcached", memcached.address, "--key-prefix", "dl:")
    dashboard = PtyDashboard("--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "state"), *store, cwd=tmp_path, columns=120, lines=40)
    try:
        wait_until(lambda: answers(url) and b"listening" in dashboard.drain(), timeout=30, what="the dashboard to draw and listen")
        status, answer = post(url, [fresh(doc) for doc in BRIEF] * 3)
        assert status == 202 and answer == {"accepted": 6, "rejected": []}
        status, answer = post(url, BRIEF[:1])  # as given: 2019, older than the retention
        assert status == 202 and answer is not None and answer["accepted"] == 0
        wait_until(lambda: b"6 in all" in dashboard.drain(), timeout=10, what="the ingest panel to show the accepted events")
        assert b"late" in dashboard.screen  # the rejection, by reason
        # The dashboard's own read of the window, published to the brief's per-type keys.
        wait_until(lambda: published_total(memcached, "dl:signup") == 3 and published_total(memcached, "dl:user-event") == 3, timeout=40, what="the dashboard to read and publish the counts")
        assert b"generator off" in dashboard.screen  # --listen without --generate: only what is posted
        with urllib.request.urlopen(f"{url}/api/v1/summary/signup?tracking_id=INF-yj562hjojbtez", timeout=10) as reply:
            assert json.loads(reply.read())["count"] == 3  # the read API of the same process
        os.write(dashboard.primary, b"q")
        wait_until(dashboard.exited, timeout=30, what="the dashboard to exit on q")
        assert dashboard.proc.returncode == 0
        assert b"Traceback" not in dashboard.screen
    finally:
        dashboard.close()
    assert not answers(url)
    summary = json.loads(run("summary", "--json", *store, cwd=tmp_path).stdout.splitlines()[0])["summary"]
    assert summary["signup"]["eventsCapturedByTrackingIds"] == {"INF-yj562hjojbtez": 3}
    assert summary["user-event"]["eventsCapturedByTrackingIds"] == {"INF-yj562hjojbtez": 3}
    assert json.loads((tmp_path / "state" / "checkpoint.json").read_text())["state"]["pending"] == []


def test_the_in_process_server_feeds_the_pipelines_writer_and_reports_rates(tmp_path: Path) -> None:
    """EmbeddedServer on a real port over a real spool: what it accepts reaches the same writer as
    the generator's events; its reading gives accepted/s and rejected/s by reason (fake clock)."""
    clock = FakeClock()
    settings = Settings(backend="memory")
    state = StateDir(tmp_path / "state")
    pipeline = Pipeline(settings, MemoryStore(clock), clock=clock, generate=False, writer_id=state.writer_id)
    server = EmbeddedServer(pipeline, dashboard_serve_options(f"127.0.0.1:{free_port()}", str(tmp_path / "state"), settings), state, clock)
    server.start()
    try:
        url = server.options.listen.public_url
        assert server.reading().accepted_total == 0
        stamp = iso_ms(int(clock.time() * 1000))
        event = {"value": {"trackingId": "INF-a", "event": "formsubmit", "timestamp": stamp}}
        status, answer = post(url, [event] * 4 + [{"value": {"trackingId": "", "event": "click", "timestamp": stamp}}])
        assert status == 202 and answer is not None and answer["accepted"] == 4
        clock.advance(2.0)
        reading = server.reading()
        assert (reading.accepted_total, reading.rejected_total) == (4, 1)
        assert reading.accepted_per_second == 2.0 and list(reading.rejected_per_second.values()) == [0.5]
        assert reading.spool_depth == 4  # durable, not yet written
        assert pipeline.status().writing and not pipeline.status().generating
    finally:
        server.stop()
    assert post(url, [event])[0] == 0  # no request after the stop
    assert pipeline.stop()
    assert server.reading().spool_depth == 0  # written: released behind the write
    server.close()
    state.close()
    assert pipeline.reader.read_view().summary["signup"].by_tracking_id == {"INF-a": 4}


READING = IngestReading(
    url="http://127.0.0.1:8080", accepted_total=12_345, accepted_per_second=250.0,
    rejected_per_second={"late": 1.5, "invalid_id": 0.5}, rejected_total=42, spool_depth=317, spool_age=0.8,
)  # fmt: skip


class PanelApp(App[None]):
    def compose(self) -> ComposeResult:
        yield IngestPanel("", id="ingest")


def test_snapshot_ingest_panel(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def show(pilot) -> None:  # type: ignore[no-untyped-def]
        pilot.app.query_one(IngestPanel).show(READING, 3.0)
        await asyncio.sleep(0)

    assert snap_compare(PanelApp(), terminal_size=(60, 10), run_before=show)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--generate"], "--generate: only with --listen"),
        (["--state-dir", "x", "--no-generate"], "--state-dir: with --no-generate nothing is written here"),
        (["--listen", "127.0.0.1:8080", "--headless"], "--listen: the in-process server runs with the dashboard"),
        (["--listen", "127.0.0.1:8080", "--generate", "--no-generate"], "--generate: contradicts --no-generate"),
        (["--listen", "localhost"], "--listen: expected HOST:PORT"),
        (["--listen", "127.0.0.1:8080", "web"], "--listen: not available with web"),
    ],
)
def test_bad_listen_flags_end_in_one_line_and_exit_2(flags: list[str], says: str, tmp_path: Path) -> None:
    result = run(*flags, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and says in result.stderr, result.stderr


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "state"), "--backend", "memory", cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"eventdash: error: cannot listen on 127.0.0.1:{port}: ") and "in use" in line, line


def test_a_non_loopback_address_warns_as_serve_does(tmp_path: Path) -> None:
    dashboard = PtyDashboard("--listen", f"0.0.0.0:{free_port()}", "--state-dir", str(tmp_path / "state"), "--backend", "memory", cwd=tmp_path)
    try:
        wait_until(lambda: b"listening" in dashboard.drain(), timeout=30, what="the dashboard to draw")
        assert b"warning: listening on 0.0.0.0" in dashboard.screen and b"without a token" in dashboard.screen
        os.write(dashboard.primary, b"q")
        wait_until(dashboard.exited, timeout=30, what="the dashboard to exit on q")
        assert dashboard.proc.returncode == 0
    finally:
        dashboard.close()
