"""The real ``eventdash`` command as a subprocess: output shape, exact logs, summary, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer, free_port
from tests.oracle import read_log, recount, rows
from tests.proc import Eventdash
from tui import EVENT_TYPES

EVENTDASH = [sys.executable, "-m", "tui"]


def run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVENTDASH, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_headless_prints_one_json_object_per_refresh_in_the_documented_shape(tmp_path: Path) -> None:
    result = run("--headless", "--backend", "memory", "--duration", "2.5", "--refresh", "0.5", "--rate", "200", "--seed", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = lines(result.stdout)
    assert 5 <= len(out) <= 7  # one per refresh, and the final state
    for line in out:
        assert set(line) == {"as_of", "window_minutes", "bucket_seconds", "backend", "generated", "summary", "approximation_seconds", "incomplete"}
        assert line["incomplete"] == [] and line["approximation_seconds"] == line["bucket_seconds"]
        assert line["as_of"].endswith("Z") and line["window_minutes"] == 5 and line["bucket_seconds"] == 10
        assert line["backend"] == "memory"
        assert set(line["summary"]) == set(EVENT_TYPES)
        for summary in line["summary"].values():
            assert set(summary) == {"totalEventsCaptured", "eventsCapturedByTrackingIds"}
            assert summary["totalEventsCaptured"] == sum(summary["eventsCapturedByTrackingIds"].values())
    final = out[-1]
    assert final["generated"] == 500  # 2.5 s at 200/s, exactly
    assert sum(s["totalEventsCaptured"] for s in final["summary"].values()) == 500
    assert "backend memory" in result.stderr


def test_events_log_recount_equals_the_final_summary_and_the_memcached_keys(tmp_path: Path, memcached: MemcachedServer) -> None:
    log = tmp_path / "ev.jsonl"
    result = run(
        "--headless", "--duration", "3", "--rate", "2000", "--events-log", str(log),
        "--memcached", memcached.address, "--key-prefix", "cli:", "--seed", "5", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    final = lines(result.stdout)[-1]
    assert final["backend"] == "memcached"
    docs = read_log(log)
    assert len(docs) == final["generated"] == 6000
    assert final["summary"] == recount(rows(docs))
    plain = Client(("127.0.0.1", memcached.port))
    for etype in EVENT_TYPES:
        stored = json.loads(plain.get(f"cli:{etype}"))
        assert {k: stored[k] for k in ("totalEventsCaptured", "eventsCapturedByTrackingIds")} == final["summary"][etype]

    summary = run("summary", "--json", "--memcached", memcached.address, "--key-prefix", "cli:", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    assert lines(summary.stdout)[0]["summary"] == final["summary"]
    table = run("summary", "--memcached", memcached.address, "--key-prefix", "cli:", cwd=tmp_path)
    assert table.returncode == 0 and "signup" in table.stdout and f"{final['summary']['review']['totalEventsCaptured']:,}" in table.stdout


def test_two_writers_and_a_read_only_follower_share_one_exact_view(tmp_path: Path, memcached: MemcachedServer) -> None:
    common = ["--memcached", memcached.address, "--key-prefix", "two:", "--rate", "1500", "--duration", "3"]
    writers = [Eventdash("--headless", *common, "--seed", str(i), "--events-log", str(tmp_path / f"w{i}.jsonl")) for i in range(2)]
    for writer in writers:
        assert writer.proc.wait(timeout=60) == 0
    follower = run("--headless", "--no-generate", "--memcached", memcached.address, "--key-prefix", "two:", "--duration", "0.5", cwd=tmp_path)
    final = lines(follower.stdout)[-1]
    assert final["generated"] == 0
    assert final["summary"] == recount(rows(read_log(tmp_path / "w0.jsonl", tmp_path / "w1.jsonl")))


def test_sigterm_stops_flushes_and_exits_zero(tmp_path: Path, memcached: MemcachedServer) -> None:
    log = tmp_path / "ev.jsonl"
    writer = Eventdash("--headless", "--rate", "3000", "--events-log", str(log), "--memcached", memcached.address, "--key-prefix", "sig:")
    writer.wait_for('"backend": "memcached"', stream="stdout")  # running and counting
    assert writer.stop(signal.SIGTERM) == 0, writer.text("stderr")
    assert "Traceback" not in writer.text("stderr")
    assert writer.json_lines()[-1]["summary"] == recount(rows(read_log(log)))


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--settings", "bad.json"], '{"events_per_second": 100,,}', "bad.json: not valid JSON: Expecting property name enclosed in double quotes at line 1, column 27"),
        (["--settings", "bad.json"], '{"window_minutes": -1}', "bad.json: window_minutes: must be more than 0 minutes"),
        (["--settings", "bad.json"], '{"rate": 100}', "bad.json: unknown key 'rate'"),
        (["--settings", "missing.json"], None, "missing.json: no such settings file"),
        (["--rate", "abc"], None, "argument --rate: expected a number, got 'abc'"),
        (["--rate", "0"], None, "--rate: must be more than 0"),
        (["--window-minutes", "0.01"], None, "--window-minutes: 0.01 min is shorter than one bucket"),
        (["--memcached", "localhost:99999"], None, "--memcached[0]: port 99999"),
        (["--key-prefix", "a b"], None, "--key-prefix: \"a b\" contains whitespace"),
        (["--events-log", "."], None, "--events-log: . is a directory"),
        (["--events-log", "no/such/dir/ev.jsonl"], None, "--events-log: cannot open no/such/dir/ev.jsonl for appending: No such file or directory"),
        (["--seed", "1.5"], None, "argument --seed: expected a whole number, got '1.5'"),
        (["--duration", "-1"], None, "--duration: must be more than 0"),
        (["--backend", "redis"], None, "argument --backend: invalid choice: 'redis'"),
    ],
)
def test_bad_input_gives_a_clear_message_and_exit_2(tmp_path: Path, args: list[str], content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "bad.json").write_text(content)
    result = run("--headless", "--duration", "1", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_summary_exits_1_when_the_required_memcached_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    result = run("summary", "--backend", "memcached", "--memcached", f"127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"memcached 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_version_and_help(tmp_path: Path) -> None:
    from tui import __version__

    assert run("--version", cwd=tmp_path).stdout.strip() == f"eventdash {__version__}"
    help_text = run("--help", cwd=tmp_path).stdout
    for flag in ("--headless", "--rate", "--window-minutes", "--bucket-seconds", "--backend", "--memcached", "--key-prefix", "--seed", "--duration", "--events-log", "--no-generate"):
        assert flag in help_text


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_dashboard_flushes_everything_on_a_signal(signum: int, tmp_path: Path, memcached: MemcachedServer) -> None:
    """The real dashboard in a pseudo-terminal: a signal stops it like q, and nothing is lost."""
    import pty

    from tests.conftest import wait_until

    log = tmp_path / "ev.jsonl"
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*EVENTDASH, "--rate", "1000", "--events-log", str(log), "--memcached", memcached.address, "--key-prefix", "pty:"],
        stdin=secondary, stdout=secondary, stderr=secondary, cwd=tmp_path,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    os.close(secondary)
    screen = bytearray()

    def drawn() -> bool:  # keep the terminal drained, and wait until the dashboard is up and counting
        import select

        while select.select([primary], [], [], 0.05)[0]:
            try:
                screen.extend(os.read(primary, 65536))
            except OSError:
                break
        return b"generated" in screen and log.exists() and log.stat().st_size > 0

    try:
        wait_until(drawn, timeout=30, what="the dashboard to draw and generate")
        proc.send_signal(signum)
        wait_until(lambda: drawn() is not None and proc.poll() is not None, timeout=30, what="the dashboard to exit")
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    assert b"Traceback" not in screen
    summary = run("summary", "--json", "--memcached", memcached.address, "--key-prefix", "pty:", cwd=tmp_path)
    assert lines(summary.stdout)[0]["summary"] == recount(rows(read_log(log)))
