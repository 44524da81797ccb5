"""The generator with ``--state-dir`` (issue 11, "the generator's writer uses the same spool"):
``kill -9`` of a generating process loses nothing it had spooled and doubles nothing.

The relation proved here (README, "The generator with a state directory"): a batch is written to
the events log only after the spool made it durable, and the log is flushed per batch. So after a
``kill -9`` and a restart on the same state directory, the counts equal the events log plus the
spool's last batch exactly when the kill fell between the spool's fsync and the log's write (the
``after-spool`` fault), and equal the log exactly when it fell anywhere else in the writer's thread
(the ``after-stage`` and ``after-write`` faults, which run between batches).

Real memcached, real subprocesses, the faults of ``EVENTDASH_FAULT`` (tui.service.faults) and a
plain ``kill -9`` under load.
"""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MemcachedServer, free_port, wait_until
from tests.oracle import read_log, recount, rows
from tests.proc import Eventdash, PtyDashboard
from tests.test_serve_process import now_event, post
from tui.clock import FakeClock
from tui.ingest.decode import hash_email
from tui.pipeline import Pipeline
from tui.service.spool import Spool
from tui.service.state import StateDir
from tui.service.wiring import spool_generator
from tui.settings import Settings
from tui.store import MemoryStore

RATE = "3000"  # events/s: a batch of ~150 every 50 ms, a flush a second
KILL_TIMEOUT = 30.0  # the fault fires within a few flushes; bounded all the same


def generate(state: Path, log: Path, memcached: MemcachedServer, prefix: str, *extra: str, fault: str | None = None) -> Eventdash:
    if fault is not None:
        os.environ["EVENTDASH_FAULT"] = fault
    try:
        return Eventdash(
            "--headless", "--backend", "memcached", "--memcached", memcached.address, "--key-prefix", prefix,
            "--state-dir", str(state), "--events-log", str(log), *extra,
        )  # fmt: skip
    finally:
        os.environ.pop("EVENTDASH_FAULT", None)


def restart_and_read(state: Path, log: Path, memcached: MemcachedServer, prefix: str) -> dict[str, Any]:
    """Run once more on the same state directory (which replays and flushes what was spooled) and
    return the final summary, read back from memcached."""
    again = generate(state, log, memcached, prefix, "--rate", "100", "--duration", "1", "--seed", "9")
    assert again.proc.wait(timeout=60) == 0, again.text("stderr")
    final = again.json_lines()[-1]
    assert final["store"]["unwritten_events"] == 0
    summary: dict[str, Any] = final["summary"]
    return summary


def last_spooled_batch(state: Path) -> list[tuple[int, str, str]]:
    """The events of the spool's newest record, as (ms, type, id), read with the spool itself."""
    spool = Spool(state / "spool")
    try:
        records = list(spool.records())
    finally:
        spool.close()
    assert records, "the spool holds nothing after the kill"
    return [(e.ts_ms, e.type, e.tracking_id) for e in records[-1].events]


@pytest.mark.parametrize("point", ["after-stage:2", "after-write:2"])
def test_a_kill_at_a_flush_then_a_restart_counts_exactly_the_events_log(tmp_path: Path, memcached: MemcachedServer, point: str) -> None:
    state, log = tmp_path / "state", tmp_path / "events.jsonl"
    proc = generate(state, log, memcached, "gk:", "--rate", RATE, "--seed", "1", fault=point)
    assert proc.proc.wait(timeout=KILL_TIMEOUT) == -signal.SIGKILL, proc.text("stderr")
    logged = rows(read_log(log))
    assert len(logged) > 1000  # it generated for more than a second before the fault
    summary = restart_and_read(state, log, memcached, "gk:")
    assert summary == recount(rows(read_log(log)))  # the restart's own events are logged too


def test_a_kill_between_the_spool_and_the_log_counts_the_log_plus_that_one_batch(tmp_path: Path, memcached: MemcachedServer) -> None:
    state, log = tmp_path / "state", tmp_path / "events.jsonl"
    proc = generate(state, log, memcached, "gs:", "--rate", RATE, "--seed", "2", fault="after-spool:30")
    assert proc.proc.wait(timeout=KILL_TIMEOUT) == -signal.SIGKILL, proc.text("stderr")
    logged = rows(read_log(log))
    unlogged = last_spooled_batch(state)  # durable, never logged: the process died right after its fsync
    assert logged and unlogged
    summary = restart_and_read(state, log, memcached, "gs:")
    assert summary == recount(rows(read_log(log)) + unlogged)


def test_a_plain_kill_9_under_load_then_a_restart_loses_and_doubles_nothing(tmp_path: Path, memcached: MemcachedServer) -> None:
    state, log = tmp_path / "state", tmp_path / "events.jsonl"
    proc = generate(state, log, memcached, "g9:", "--rate", "20000", "--seed", "3")
    proc.wait_for(r'"generated": [1-9]\d{4,}', stream="stdout")  # 10,000 or more made and a flush or two done
    proc.proc.kill()
    assert proc.proc.wait(timeout=10) == -signal.SIGKILL
    last = last_spooled_batch(state)
    summary = restart_and_read(state, log, memcached, "g9:")
    after = rows(read_log(log))
    # Wherever the kill fell: the log exactly, or the log and the one batch spooled but not yet logged.
    assert summary in (recount(after), recount(after + last))


def test_a_second_process_on_the_same_state_dir_is_refused_naming_it(tmp_path: Path, memcached: MemcachedServer) -> None:
    state = tmp_path / "state"
    first = generate(state, tmp_path / "a.jsonl", memcached, "g2:", "--rate", "100")
    first.wait_for(r'"generated"', stream="stdout")  # running: it holds the directory
    second = generate(state, tmp_path / "b.jsonl", memcached, "g2:", "--rate", "100", "--duration", "1")
    assert second.proc.wait(timeout=30) == 2
    err = second.text("stderr").splitlines()
    assert err[-1] == f"eventdash: error: --state-dir: {state} is in use by another eventdash (pid {first.proc.pid}); give each process its own state directory"
    assert "Traceback" not in second.text("stderr")
    assert first.stop() == 0


def test_hostile_state_dirs_end_in_one_line_and_exit_2(tmp_path: Path, memcached: MemcachedServer) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (str(a_file), f"--state-dir: cannot use {a_file}: File exists"),
        (str(a_file / "under"), f"--state-dir: cannot use {a_file / 'under'}: Not a directory"),
        ("/proc/eventdash-state", "--state-dir: cannot use /proc/eventdash-state: No such file or directory"),  # not writable, even by root
        ("", "--state-dir: give a directory path"),
    ]
    for value, message in cases:
        proc = Eventdash("--headless", "--memcached", memcached.address, "--state-dir", value, "--duration", "1")
        assert proc.proc.wait(timeout=30) == 2, (value, proc.text("stderr"))
        stderr = proc.text("stderr")
        assert stderr.splitlines()[-1] == f"eventdash: error: {message}", (value, stderr)
        assert "Traceback" not in stderr


def test_state_dir_with_no_generate_is_a_usage_error(tmp_path: Path, memcached: MemcachedServer) -> None:
    proc = Eventdash("--headless", "--no-generate", "--memcached", memcached.address, "--state-dir", str(tmp_path / "s"), "--duration", "1")
    assert proc.proc.wait(timeout=30) == 2
    assert proc.text("stderr").splitlines()[-1] == "eventdash: error: --state-dir: with --no-generate nothing is written here, so there is nothing to spool"


def test_the_dashboard_face_spools_too_a_kill_at_a_flush_then_a_restart_counts_exactly_the_events_log(tmp_path: Path, memcached: MemcachedServer) -> None:
    """The real dashboard in a pseudo-terminal with --state-dir (no --listen): killed at its second
    checkpoint, then restarted headless on the same directory: the counts equal the events log."""
    state, log = tmp_path / "state", tmp_path / "events.jsonl"
    os.environ["EVENTDASH_FAULT"] = "after-stage:2"
    try:
        dashboard = PtyDashboard(
            "--memcached", memcached.address, "--key-prefix", "gd:", "--state-dir", str(state), "--events-log", str(log),
            "--rate", RATE, "--seed", "4", cwd=tmp_path,
        )  # fmt: skip
    finally:
        os.environ.pop("EVENTDASH_FAULT", None)
    try:
        wait_until(dashboard.exited, timeout=KILL_TIMEOUT, what="the dashboard to die at its fault")
        assert dashboard.proc.returncode == -signal.SIGKILL, dashboard.drain()[-2000:]
    finally:
        dashboard.close()
    assert len(read_log(log)) > 1000
    summary = restart_and_read(state, log, memcached, "gd:")
    assert summary == recount(rows(read_log(log)))


def test_listen_and_generate_share_one_spool_a_kill_9_loses_neither_source(tmp_path: Path, memcached: MemcachedServer) -> None:
    """``--listen --generate --state-dir``: generated batches and posted ones go through the one
    spool, handed to the writer in spool order. A plain ``kill -9`` of the dashboard while both flow,
    then a restart on the same directory: every posted event that got a 202 counts once, and the
    generated ones equal the events log (or the log and the one batch spooled but not yet logged)."""
    state, log = tmp_path / "state", tmp_path / "events.jsonl"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    dashboard = PtyDashboard(
        "--memcached", memcached.address, "--key-prefix", "gl:", "--state-dir", str(state), "--events-log", str(log),
        "--listen", f"127.0.0.1:{port}", "--generate", "--rate", RATE, "--seed", "5", cwd=tmp_path,
    )  # fmt: skip
    accepted: list[tuple[int, str, str]] = []
    try:
        wait_until(lambda: post(url, [])[0] == 202, timeout=KILL_TIMEOUT, what="the dashboard's server to answer")
        for i in range(40):  # one id a post, so each 202 is checked on its own
            tid = f"INF-post{i:04d}"
            status, answer = post(url, [now_event(tid, "formsubmit")])
            assert status == 202 and answer == {"accepted": 1, "rejected": []}, (status, answer)
            accepted.append((0, "signup", tid))
        # complete lines only: the dashboard is writing the log, and its last line may be half written
        wait_until(lambda: log.exists() and log.read_bytes().count(b"\n") > 3000, timeout=KILL_TIMEOUT, what="a second of generated events")
        dashboard.proc.kill()
        dashboard.proc.wait(timeout=10)
    finally:
        dashboard.close()
    last = [e for e in last_spooled_batch(state) if not e[2].startswith("INF-post")]
    summary = restart_and_read(state, log, memcached, "gl:")
    logged = rows(read_log(log))
    assert summary in (recount(logged + accepted), recount(logged + accepted + last))


def test_a_generated_event_comes_back_from_the_spool_with_its_visitor_and_email_hash(tmp_path: Path) -> None:
    """What the distinct counts take from a generated event survives the spool, so that a restart
    that replays it counts the same visitors and signups; the e-mail itself is only in the log."""
    clock = FakeClock()
    settings = Settings(backend="memory", events_per_second=2000, email_salt="spool salt")
    state = StateDir(tmp_path / "state")
    log = io.StringIO()
    pipeline = Pipeline(settings, MemoryStore(clock), clock=clock, seed=4, events_log=log, writer_id=state.writer_id)
    spool = spool_generator(pipeline, state, 64 << 20)
    assert pipeline.generator is not None and pipeline.spool_generated is not None
    try:
        pipeline.generator.start(clock.monotonic())
        clock.advance(1.0)
        made, _ = pipeline.generator.make(clock.monotonic())
        pipeline.spool_generated(made)  # as the writer's thread hands a batch over
        pipeline.generator.log(made, flush=True)
    finally:
        spool.close()
        state.close()
    signups = [e for e in made if e.type == "signup"]
    assert len(made) == 2000 and signups and all(e.email_hash is not None for e in signups)
    reopened = Spool(tmp_path / "state" / "spool")
    try:
        spooled = [e for r in reopened.records() for e in r.events]
    finally:
        reopened.close()
    assert [(e.type, e.tracking_id, e.ts_ms, e.visitor_id, e.email_hash) for e in spooled] == [
        (e.type, e.tracking_id, e.ts_ms, e.visitor_id, e.email_hash) for e in made
    ]
    logged = [json.loads(line)["value"] for line in log.getvalue().splitlines()]
    assert [v["visitorId"] for v in logged] == [e.visitor_id for e in spooled]
    assert [hash_email(v["form"]["email"], b"spool salt") for v in logged if "form" in v] == [e.email_hash for e in spooled if e.type == "signup"]
    segments = b"".join(p.read_bytes() for p in (tmp_path / "state" / "spool").rglob("*") if p.is_file())
    assert segments and b"@example.com" not in segments  # no address in the spool
