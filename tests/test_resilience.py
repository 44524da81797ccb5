"""Outages, restarts and clusters, against real memcached processes that the tests kill and restart.

After every scenario the writers are stopped and ``eventdash summary --json`` must equal the
recount of the writers' own events logs: nothing lost, nothing counted twice.

The writers use 1 s buckets, so buckets close (and are not written again) during a run of a few
seconds: what a restarted server gets back is then the writers' write-back of every bucket they
hold, not the rewrite of a still-open bucket that would happen anyway.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer, wait_until
from tests.oracle import read_log, recount, rows
from tests.proc import REPO, Eventdash

OUTAGE_DETECTED_WITHIN = 2.0  # seconds, from the kill to the stderr line
RECONNECTED_WITHIN = 2.0  # seconds, from the restart to "reachable again"
SHORT_BUCKETS = ("--bucket-seconds", "1", "--window-minutes", "1")  # a run of seconds closes buckets
CLOSED_BUCKETS = 3  # single-bucket keys on a server before it is killed


def summary_json(servers: str, prefix: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tui", "summary", "--json", "--backend", "memcached", "--memcached", servers,
         "--key-prefix", prefix, *SHORT_BUCKETS],
        check=False, capture_output=True, text=True, cwd=REPO, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["summary"]


def start_writers(count: int, servers: str, prefix: str, tmp_path: Path, rate: int = 800) -> tuple[list[Eventdash], list[Path]]:
    logs = [tmp_path / f"w{i}.jsonl" for i in range(count)]
    writers = [
        Eventdash("--headless", "--backend", "memcached", "--memcached", servers, "--key-prefix", prefix,
                  "--rate", str(rate), "--seed", str(i), "--events-log", str(log), *SHORT_BUCKETS)
        for i, log in enumerate(logs)
    ]
    return writers, logs


def single_buckets(server: MemcachedServer, prefix: str) -> dict[int, dict[str, object]]:
    """The single-bucket heads on ``server`` by bucket index: ``{index: {writer_id: sequence}}``, the
    writers whose counts the bucket holds (README, "How the counts live in Memcached")."""
    marker = f"{prefix}h1:"
    return {
        int(key[len(marker):]): json.loads(value)["w"]
        for key, value in server.stored().items()
        if key.startswith(marker)
    }


def each_reports(writers: list[Eventdash], pattern: str, since: float, within: float, what: str) -> None:
    """Every writer prints a stderr line matching ``pattern`` less than ``within`` s after ``since``."""
    for writer in writers:
        took = writer.wait_for(pattern, after=since) - since
        print(f"{what} after {took:.2f} s")
        assert took < within


def stop_all(writers: list[Eventdash], signum: int = signal.SIGTERM) -> None:
    for writer in writers:
        assert writer.stop(signum) == 0, writer.text("stderr")
        assert "Traceback" not in writer.text("stderr")


def test_auto_without_memcached_runs_embedded_and_names_the_address_and_error(tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    writer = Eventdash("--headless", "--memcached", f"127.0.0.1:{port}", "--duration", "1.5")
    assert writer.proc.wait(timeout=30) == 0
    writer.wait_for(f"memcached 127.0.0.1:{port} unreachable \\(Connection refused\\): counting in the embedded store")
    assert writer.json_lines()[-1]["backend"] == "memory"


def test_memcached_backend_buffers_while_unreachable_and_flushes_when_it_answers(tmp_path: Path) -> None:
    server = MemcachedServer()  # chosen port, not started yet
    [writer], logs = start_writers(1, server.address, "late:", tmp_path)
    try:
        writer.wait_for(f"127.0.0.1:{server.port}.*Connection refused.*counting locally and retrying")
        time.sleep(1.5)  # let events pile up locally while nothing answers (a scenario, not a sync)
        started = time.monotonic()
        server.start()
        back = writer.wait_for("reachable again", after=started)
        assert back - started < RECONNECTED_WITHIN
        writer.wait_for('"backend": "memcached"', stream="stdout", after=back)
        stop_all([writer])
        assert summary_json(server.address, "late:") == recount(rows(read_log(*logs)))
    finally:
        server.stop()


@pytest.mark.parametrize("writer_count", [1, 3])
def test_kill_and_restart_mid_run_loses_nothing_and_counts_nothing_twice(
    writer_count: int, memcached: MemcachedServer, tmp_path: Path
) -> None:
    prefix = f"kr{writer_count}:"
    writers, logs = start_writers(writer_count, memcached.address, prefix, tmp_path)
    for writer in writers:
        writer.wait_for('"backend": "memcached"', stream="stdout")
    # Buckets that closed and were flushed before the kill: only the write-back restores them.
    wait_until(lambda: len(single_buckets(memcached, prefix)) >= CLOSED_BUCKETS, what=f"{CLOSED_BUCKETS} buckets stored")
    before_kill = summary_json(memcached.address, prefix)
    killed = time.monotonic()
    memcached.stop()
    each_reports(writers, "counting locally and retrying", killed, OUTAGE_DETECTED_WITHIN, "outage detected")
    time.sleep(1.0)  # an outage of a while (a whole 1 s bucket), counted only locally: a scenario, not a sync
    restarted = time.monotonic()
    memcached.start()
    each_reports(writers, "reachable again", restarted, RECONNECTED_WITHIN, "reconnected")
    stop_all(writers)
    after = summary_json(memcached.address, prefix)
    assert after == recount(rows(read_log(*logs)))
    assert sum(s["totalEventsCaptured"] for s in after.values()) > sum(s["totalEventsCaptured"] for s in before_kill.values())


def test_two_servers_three_writers_give_exact_totals(memcached_factory: Callable[[], MemcachedServer], tmp_path: Path) -> None:
    a, b = memcached_factory(), memcached_factory()
    servers = f"{a.address},{b.address}"
    writers, logs = start_writers(3, servers, "cl:", tmp_path, rate=1500)
    for writer in writers:
        writer.wait_for('"backend": "memcached"', stream="stdout")
        writer.wait_for('"backend": "memcached"', stream="stdout", after=time.monotonic())
    stop_all(writers)
    assert summary_json(servers, "cl:") == recount(rows(read_log(*logs)))
    # the keys really are spread over both servers
    assert Client(("127.0.0.1", a.port)).stats()[b"curr_items"] > 1
    assert Client(("127.0.0.1", b.port)).stats()[b"curr_items"] > 1


def test_one_server_of_two_down_is_named_and_its_counts_come_back(
    memcached_factory: Callable[[], MemcachedServer], tmp_path: Path
) -> None:
    a, b = memcached_factory(), memcached_factory()
    servers = f"{a.address},{b.address}"
    writers, logs = start_writers(2, servers, "half:", tmp_path)
    for writer in writers:
        writer.wait_for('"backend": "memcached"', stream="stdout")
    # Enough closed buckets that some hash to b (each does with even odds): with only a few, all of
    # them can land on a, and then nothing is ever written back to b for the check below to see.
    wait_until(lambda: len(single_buckets(a, "half:")) + len(single_buckets(b, "half:")) >= 10, what="10 buckets stored")
    killed = time.monotonic()
    b.stop()
    # every flush touches keys of both servers (heads and shards spread over them), so it fails at once
    down = f"memcached {b.address}: "
    each_reports(writers, re.escape(down), killed, OUTAGE_DETECTED_WITHIN, "down server named")
    for writer in writers:  # the line naming the down server does not name the live one
        assert a.address not in writer.text("stderr").split(down)[1].splitlines()[0]
    time.sleep(1.0)  # an outage of a while (a whole 1 s bucket): a scenario, not a sync
    b.start()
    returned_at = int(time.time()) - 1  # this bucket and the ones before it closed while b was gone
    for writer in writers:
        writer.wait_for("reachable again", after=killed)

    def every_writer_wrote_back_to_b() -> bool:
        """Each writer's entry is on b in a bucket that closed before b returned: it wrote back what
        it held, not just the current bucket."""
        held = single_buckets(b, "half:")
        return len({writer for index, entries in held.items() if index < returned_at for writer in entries}) == len(writers)

    # generous: each writer writes back at its next flush (b's marker changed), and otherwise
    # verifies and restores what it wrote every 5 s; on a loaded CI machine that took 15 s once
    wait_until(every_writer_wrote_back_to_b, timeout=45, what="every writer writing its buckets back to the returned server")
    stop_all(writers, signal.SIGINT)
    assert summary_json(servers, "half:") == recount(rows(read_log(*logs)))


def test_rising_evictions_are_reported_with_sizing_advice(tmp_path: Path) -> None:
    server = MemcachedServer(memory_mb=8)
    server.start()
    try:
        writer = Eventdash("--headless", "--backend", "memcached", "--memcached", server.address, "--key-prefix", "ev:", "--rate", "50")
        writer.wait_for('"backend": "memcached"', stream="stdout")
        filler = Client(("127.0.0.1", server.port))
        blob = b"x" * 500_000
        for i in range(80):  # 40 MB into an 8 MB cache: memcached must evict
            filler.set(f"filler:{i}", blob, noreply=False)
        assert int(filler.stats()[b"evictions"]) > 0
        writer.wait_for("evictions rose to .*memcached -m MB")
        assert writer.stop() == 0
    finally:
        server.stop()
