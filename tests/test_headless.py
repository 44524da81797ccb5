"""Headless and summary say the truth, and every way a run can end flushes what it counted.

Each test runs the real ``eventdash`` as a subprocess against real memcached servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MemcachedServer, free_port
from tests.oracle import read_log, recount, rows
from tests.proc import REPO, Eventdash
from tui.clock import FakeClock
from tui.headless import BehindWatch
from tui.pipeline import MAX_BATCH, Pipeline
from tui.settings import Settings
from tui.shutdown import Wakeup
from tui.store import MemoryStore

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=ENV)


def total(summary: dict) -> int:
    return sum(s["totalEventsCaptured"] for s in summary.values())


def test_headless_prints_a_line_every_refresh_while_memcached_is_down_and_the_last_says_what_was_not_written(tmp_path: Path) -> None:
    port = free_port()
    result = run("--headless", "--backend", "memcached", "--memcached", f"127.0.0.1:{port}", "--duration", "2", "--refresh", "0.5", "--rate", "100", cwd=tmp_path)
    assert result.returncode == 1
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) >= 4  # one per refresh although nothing could be read, and the final line
    for line in out:
        assert line["summary"] is None
        assert line["store"]["reachable"] is False and f"127.0.0.1:{port}" in line["store"]["error"]
    assert out[-1]["final"] is True
    assert out[-1]["store"]["unwritten_events"] == out[-1]["generated"] == 200
    assert "200 counted events are missing from the store" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_auto_without_memcached_says_memcached_is_unreachable_not_that_memory_is_down(tmp_path: Path) -> None:
    port = free_port()
    result = run("--headless", "--memcached", f"127.0.0.1:{port}", "--duration", "0.5", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr.splitlines()[0] == f"eventdash: memcached 127.0.0.1:{port} unreachable (Connection refused): counting in the embedded store"


@pytest.mark.parametrize("command", [["summary"], ["summary", "--json"], ["--headless", "--no-generate", "--duration", "1"]])
def test_readers_without_memcached_say_the_embedded_store_cannot_be_read_and_exit_1(command: list[str], tmp_path: Path) -> None:
    port = free_port()
    result = run(*command, "--memcached", f"127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert f"memcached 127.0.0.1:{port} unreachable (Connection refused)" in line
    assert "embedded store lives only inside a running eventdash process" in line


def test_summary_with_the_embedded_store_chosen_is_a_usage_error(tmp_path: Path) -> None:
    result = run("summary", "--backend", "memory", cwd=tmp_path)
    assert result.returncode == 2
    assert "use --backend memcached or auto" in result.stderr and result.stdout == ""


def test_summary_json_leaves_out_generated(tmp_path: Path, memcached: MemcachedServer) -> None:
    result = run("summary", "--json", "--memcached", memcached.address, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert "generated" not in line and set(line["summary"]) == {"signup", "user-event", "review"}


def test_an_events_log_on_a_full_disk_stops_the_run_with_one_line_and_flushes_what_was_counted(tmp_path: Path, memcached: MemcachedServer) -> None:
    result = run("--headless", "--rate", "20000", "--duration", "30", "--events-log", "/dev/full", "--memcached", memcached.address, "--key-prefix", "full:", cwd=tmp_path)
    assert result.returncode == 1  # not 30 s of lines with "generated" frozen
    last = result.stderr.splitlines()[-1]
    assert last.startswith("eventdash: error: the writer stopped: events log /dev/full: No space left on device")
    assert "Traceback" not in result.stderr
    final = json.loads(result.stdout.splitlines()[-1])
    assert final["final"] is True and final["store"]["unwritten_events"] == 0
    stored = run("summary", "--json", "--memcached", memcached.address, "--key-prefix", "full:", cwd=tmp_path)
    assert total(json.loads(stored.stdout)["summary"]) == total(final["summary"])


def test_headless_piped_into_head_stores_every_logged_event_and_exits_0(tmp_path: Path, memcached: MemcachedServer) -> None:
    log = tmp_path / "ev.jsonl"
    command = [sys.executable, "-m", "tui", "--headless", "--rate", "5000", "--events-log", str(log), "--memcached", memcached.address, "--key-prefix", "pipe:"]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=tmp_path)
    assert writer.stdout is not None
    writer.stdout.readline()  # what `head -1` does: one line, then the pipe closes
    writer.stdout.close()
    _, stderr = writer.communicate(timeout=30)
    assert writer.returncode == 0, stderr
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr
    stored = run("summary", "--json", "--memcached", memcached.address, "--key-prefix", "pipe:", cwd=tmp_path)
    assert json.loads(stored.stdout)["summary"] == recount(rows(read_log(log)))


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1])
def test_every_stop_signal_flushes_every_count_and_the_whole_log(signum: int, tmp_path: Path, memcached: MemcachedServer) -> None:
    log = tmp_path / "ev.jsonl"
    prefix = f"sig{int(signum)}:"
    writer = Eventdash("--headless", "--rate", "3000", "--events-log", str(log), "--memcached", memcached.address, "--key-prefix", prefix)
    writer.wait_for('"backend": "memcached"', stream="stdout")
    assert writer.stop(signum) == 0, writer.text("stderr")
    docs = read_log(log)  # every line whole: read_log parses each one
    assert writer.json_lines()[-1]["summary"] == recount(rows(docs))
    stored = run("summary", "--json", "--memcached", memcached.address, "--key-prefix", prefix, cwd=tmp_path)
    assert json.loads(stored.stdout)["summary"] == recount(rows(docs))


def test_the_engine_says_it_is_behind_when_more_is_due_than_it_can_make() -> None:
    clock = FakeClock()
    pipeline = Pipeline(Settings(events_per_second=200_000, backend="memory"), MemoryStore(clock), clock=clock, seed=1)
    pipeline.step()
    assert pipeline.status().behind is False
    clock.advance(1.0)  # 200,000 due at once; one step makes MAX_BATCH
    pipeline.step()
    status = pipeline.status()
    assert status.behind is True and status.generated == MAX_BATCH
    assert pipeline.stop(at=clock.monotonic()) is True
    assert pipeline.missed_events == 200_000 - MAX_BATCH


def test_the_behind_notice_names_both_rates_once_and_says_when_it_caught_up() -> None:
    clock = FakeClock()
    pipeline = Pipeline(Settings(events_per_second=20_000, backend="memory"), MemoryStore(clock), clock=clock, seed=1)
    watch = BehindWatch()
    for _ in range(12):
        clock.advance(0.25)
        pipeline.step()  # 5,000 due each time: on time
    assert watch.observe(pipeline.status()) is None
    clock.advance(3.0)
    pipeline.step()  # 60,000 due, 10,000 made
    text = watch.observe(pipeline.status())
    assert text is not None and text.startswith("behind: producing ") and "of the configured 20,000/s" in text
    assert watch.observe(pipeline.status()) is None  # said once
    for _ in range(8):
        pipeline.step()  # the backlog is made up
    assert (watch.observe(pipeline.status()) or "").startswith("caught up")


def test_a_dashboard_whose_writer_fails_closes_flushes_and_names_the_failure(tmp_path: Path, memcached: MemcachedServer) -> None:
    from tests.conftest import wait_until
    from tests.proc import PtyDashboard

    dashboard = PtyDashboard("--rate", "20000", "--events-log", "/dev/full", "--memcached", memcached.address, "--key-prefix", "dfull:", cwd=tmp_path)
    try:
        wait_until(dashboard.exited, timeout=30, what="the dashboard to stop on its own")
    finally:
        dashboard.close()
    screen = bytes(dashboard.screen)
    assert dashboard.proc.returncode == 1
    assert b"eventdash: error: the writer stopped: events log /dev/full: No space left on device" in screen
    assert b"Traceback" not in screen


def test_an_unexpected_failure_in_the_writer_thread_is_one_line_with_the_traceback_in_the_crash_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from tui.shutdown import crash_log_path

    class BrokenStore(MemoryStore):
        """A store whose writes fail in a way nothing expects (a bug, not an outage)."""

        def write(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    failed = threading.Event()
    reasons: list[str] = []
    pipeline = Pipeline(Settings(events_per_second=100, backend="memory"), BrokenStore(), seed=1, flush_interval=0.05)
    pipeline.on_fatal = lambda reason: (reasons.append(reason), failed.set())
    pipeline.start()
    assert failed.wait(10), "the writer thread never reported its failure"
    pipeline.stop(flush_timeout=0.1)
    [reason] = reasons
    assert reason == f"the writer stopped: RuntimeError: boom (details in {crash_log_path()})"
    assert "\n" not in reason
    log = crash_log_path().read_text()
    assert "Traceback (most recent call last)" in log and "RuntimeError: boom" in log


async def test_a_dashboard_that_fails_inside_names_the_failure_in_one_line_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tui.app import EventDashApp
    from tui.shutdown import crash_log_path

    class BrokenReads(MemoryStore):
        """A store whose reads fail in a way nothing expects (a bug, not an outage)."""

        def read(self, *args: object, **kwargs: object) -> Any:
            raise RuntimeError("bad read")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    clock = FakeClock()
    pipeline = Pipeline(Settings(backend="memory"), BrokenReads(clock), clock=clock, seed=1)
    app = EventDashApp(pipeline, clock=clock, live=False)
    with pytest.raises(RuntimeError, match="bad read"):  # run_test re-raises it for the test
        async with app.run_test() as pilot:
            app.call_later(app.refresh_now)
            await pilot.pause()
    assert app.failure == f"the dashboard stopped: RuntimeError: bad read (details in {crash_log_path()})"
    assert app.return_code == 1
    assert app._exit_renderables == []  # nothing left for Textual to print as a traceback
    assert "RuntimeError: bad read" in crash_log_path().read_text()


def test_ids_past_the_cap_are_said_once_on_stderr_and_counted_under_other(tmp_path: Path, memcached: MemcachedServer) -> None:
    settings = tmp_path / "cap.json"
    settings.write_text(json.dumps({"max_tracking_ids": 3}))
    result = run("--headless", "--settings", str(settings), "--tracking-ids", "50", "--rate", "500", "--duration", "2",
                 "--memcached", memcached.address, "--key-prefix", "cap:", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "under the id (other)" in line]
    assert len(notices) == 1 and "max_tracking_ids (3)" in notices[0]
    final = json.loads(result.stdout.splitlines()[-1])
    assert final["generated"] == sum(s["totalEventsCaptured"] for s in final["summary"].values()) == 1000
    for summary in final["summary"].values():
        assert len(summary["eventsCapturedByTrackingIds"]) <= 4 and "(other)" in summary["eventsCapturedByTrackingIds"]


def test_the_summary_table_shows_the_top_ids_and_says_how_many_more(tmp_path: Path, memcached: MemcachedServer) -> None:
    common = ["--memcached", memcached.address, "--key-prefix", "top:"]
    assert run("--headless", "--tracking-ids", "200", "--rate", "2000", "--duration", "1.5", *common, cwd=tmp_path).returncode == 0
    table = run("summary", "--top", "5", *common, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("INF-") == 15  # five per type
    assert "more (--top 0 for all)" in table.stdout and "last 5 min ±10 s" in table.stdout
    assert run("summary", "--top", "-1", *common, cwd=tmp_path).returncode == 2


def test_a_wakeup_set_by_a_signal_handler_wakes_the_main_thread_whenever_the_signal_lands() -> None:
    """A stop signal's handler sets the headless run's :class:`~tui.shutdown.Wakeup` (a byte into a
    pipe, no lock): before the main thread waits or while it does, its wait returns at once. (A
    ``threading.Event`` set from the handler could deadlock on the lock the main thread held in its
    own ``wait()``, and a signalled run then never exited.)"""
    wake = Wakeup()
    previous = signal.signal(signal.SIGUSR2, lambda *_: wake.set())
    try:
        for _ in range(20):
            sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGUSR2))
            sender.start()
            assert wake.wait(20.0), "the signal's wake-up was lost"
            sender.join()
            assert not wake.wait(0.0), "a wake-up is cleared by the wait that saw it"
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_wakeup_set_any_number_of_times_never_blocks_and_wakes_one_wait() -> None:
    """Writers' store changes and failures set it from other threads as often as they happen: past
    the pipe's capacity a set is a no-op, never a blocked thread, and one wait takes them all."""
    wake = Wakeup()
    for _ in range(200_000):  # far more bytes than a pipe holds
        wake.set()
    assert wake.wait(0.0) and not wake.wait(0.0)
    threading.Thread(target=wake.set).start()
    assert wake.wait(20.0)
