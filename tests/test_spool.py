"""The spool (tui.service.spool) and the state directory (tui.service.state), on real files.

Crash tests kill a real subprocess with SIGKILL; the disk-full test runs one under RLIMIT_FSIZE.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MemcachedServer
from tui import EVENT_TYPES
from tui.clock import FakeClock
from tui.ingest.decode import IngestEvent
from tui.pipeline import Pipeline
from tui.service import records
from tui.service.spool import Position, Spool, SpoolError, SpoolFull
from tui.service.state import StateDir, StateDirError
from tui.service.store_ports import take_up
from tui.settings import Settings
from tui.store import MemcachedStore, MemoryStore

REPO = Path(__file__).resolve().parent.parent


def events(n: int, tid: str = "INF-a", ts: int = 1_700_000_000_000) -> list[IngestEvent]:
    return [IngestEvent(EVENT_TYPES[i % 3], tid, ts + i, f"v{i}" if i % 2 else None, None, i if i % 3 else None) for i in range(n)]


def read_all(directory: Path) -> list[IngestEvent]:
    spool = Spool(directory)
    try:
        return [e for record in spool.records() for e in record.events]
    finally:
        spool.close()


# ------------------------------------------------------------------------------------------------
# Round trip


texts = st.text(min_size=1, max_size=40)  # any code point, lone surrogates included
ingest_events = st.builds(
    IngestEvent,
    st.sampled_from(EVENT_TYPES),
    texts,
    st.integers(0, 2**53),
    st.none() | texts,
    st.none(),
    st.none() | st.integers(0, 2**64 - 1),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(ingest_events, max_size=30), max_size=8), segment_bytes=st.sampled_from([64, 4096, 1 << 20]))
def test_any_sequence_of_appends_reads_back_exactly_in_order_after_reopening(tmp_path_factory: pytest.TempPathFactory, batches: list[list[IngestEvent]], segment_bytes: int) -> None:
    directory = tmp_path_factory.mktemp("spool")
    spool = Spool(directory, segment_bytes=segment_bytes)
    ends = [spool.submit(batch).result(timeout=10) for batch in batches]
    spool.close()
    assert ends == sorted(ends)
    reopened = Spool(directory, segment_bytes=segment_bytes)
    try:
        got = [r.events for r in reopened.records()]
        assert got == [b for b in batches if b]
        assert reopened.depth() == sum(map(len, batches))
        seqs = [r.stamp.first_seq for r in reopened.records()]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    finally:
        reopened.close()


def test_an_event_type_outside_the_three_is_refused_before_it_reaches_the_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    try:
        with pytest.raises(ValueError, match="'pageview' is not one of signup, user-event, review"):
            spool.submit([IngestEvent("pageview", "INF-a", 0)])
    finally:
        spool.close()


# ------------------------------------------------------------------------------------------------
# Group commit


def test_one_fsync_covers_many_concurrent_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """200 appends from 8 threads within the linger time: every append resolves, and the real
    fdatasync calls (counted by wrapping os.fdatasync) are far fewer than the appends."""
    calls = Counter[str]()
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls["fdatasync"] += 1
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    spool = Spool(tmp_path, linger_seconds=1.0)
    futures = []
    lock = threading.Lock()

    def append() -> None:
        for i in range(25):
            future = spool.submit(events(3, tid=f"INF-{threading.get_ident()}-{i}"))
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=append) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ends = [f.result(timeout=10) for f in futures]
    spool.close()
    assert len(set(ends)) == 200
    assert calls["fdatasync"] == spool.stats.fsyncs
    assert 1 <= spool.stats.fsyncs <= 3, spool.stats
    assert spool.stats.appends == 200
    assert len(read_all(tmp_path)) == 600


def test_pending_bytes_over_group_bytes_commit_without_waiting_for_the_linger(tmp_path: Path) -> None:
    spool = Spool(tmp_path, linger_seconds=60.0, group_bytes=1)
    try:
        started = time.monotonic()
        spool.submit(events(5)).result(timeout=10)
        assert time.monotonic() - started < 10
    finally:
        spool.close()


def test_an_idle_spool_commits_a_lone_append_at_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path)  # linger 0: the default
    try:
        started = time.monotonic()
        for _ in range(20):
            spool.submit(events(1)).result(timeout=10)
        assert spool.stats.fsyncs == 20
        assert time.monotonic() - started < 5
    finally:
        spool.close()


def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    spool = Spool(tmp_path, linger_seconds=60.0)
    future = spool.submit(events(4))
    spool.close()
    assert future.result(timeout=0) == Position(1, spool.stats.bytes_written)
    assert len(read_all(tmp_path)) == 4
    with pytest.raises(SpoolError, match="closed"):
        spool.submit(events(1))


# ------------------------------------------------------------------------------------------------
# Torn and damaged records


@pytest.mark.parametrize("cut", [1, 7, 8, 9, 30])
def test_a_torn_last_record_is_cut_off_and_the_ones_before_it_are_kept(tmp_path: Path, cut: int) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.submit(events(10, tid=f"INF-{i}")).result()
    spool.close()
    segment = tmp_path / "0000000000000001.seg"
    size = segment.stat().st_size
    os.truncate(segment, size - cut)
    reopened = Spool(tmp_path)
    try:
        assert [r.events[0].tracking_id for r in reopened.records()] == ["INF-0", "INF-1"]
        assert reopened.torn_bytes == (size - cut) - (size * 2 // 3)
        reopened.submit(events(2, tid="INF-after")).result()
    finally:
        reopened.close()
    assert [e.tracking_id for e in read_all(tmp_path)] == ["INF-0"] * 10 + ["INF-1"] * 10 + ["INF-after"] * 2


@pytest.mark.parametrize("tail", [b"\0" * 64, b"\xff" * 5, os.urandom(200)])
def test_garbage_or_zeros_after_the_last_record_are_never_read_as_events(tmp_path: Path, tail: bytes) -> None:
    spool = Spool(tmp_path)
    spool.submit(events(10)).result()
    spool.close()
    with open(tmp_path / "0000000000000001.seg", "ab") as f:
        f.write(tail)
    assert read_all(tmp_path) == [e._replace(session_id=None) for e in events(10)]


def test_damage_in_an_older_segment_is_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)
    for i in range(6):
        spool.submit(events(5, tid=f"INF-{i}")).result()
    spool.close()
    first = tmp_path / "0000000000000001.seg"
    data = bytearray(first.read_bytes())
    data[-3] ^= 0xFF
    first.write_bytes(bytes(data))
    reopened = Spool(tmp_path, segment_bytes=200)
    try:
        assert len(reopened.damage) == 1 and "0000000000000001.seg" in reopened.damage[0]
        ids = [r.events[0].tracking_id for r in reopened.records()]
    finally:
        reopened.close()
    assert "INF-0" in ids and "INF-5" in ids and len(ids) == 5  # the damaged record alone is skipped


def test_a_record_whose_crc_matches_but_does_not_parse_is_a_clear_error(tmp_path: Path) -> None:
    frame = records.encode(events(3))
    records.stamp(frame, 0, 0.0)
    payload = bytearray(frame[records.FRAME.size :])
    payload[-1:] = b""  # one byte short, then a matching CRC
    with pytest.raises(records.CorruptRecord):
        records.decode(memoryview(bytes(payload)))


# ------------------------------------------------------------------------------------------------
# kill -9 and a full disk, in real subprocesses


def start_appender(directory: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.spool_proc", str(directory), "4", "20", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


@pytest.mark.parametrize("run", range(3))
def test_kill_9_keeps_every_append_that_resolved_and_no_torn_one(tmp_path: Path, run: int) -> None:
    proc = start_appender(tmp_path)
    assert proc.stdout is not None
    resolved: list[str] = []
    deadline = time.monotonic() + 30
    while len(resolved) < 300 + 100 * run and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        resolved.append(line.split()[1])
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)  # lines already written before the kill also resolved
    resolved += [line.split()[1] for line in rest.splitlines() if line.startswith("ok ")]
    assert len(resolved) >= 300, "the appender did not get going"
    batches = Counter(e.tracking_id for e in read_all(tmp_path))
    missing = set(resolved) - set(batches)
    assert not missing, f"{len(missing)} resolved batches lost"
    assert all(count == 20 for count in batches.values()), "a batch was torn or doubled"
    # the lock died with the process: the directory can be used again at once
    StateDir(tmp_path / "state").close()


def test_a_full_disk_fails_the_append_with_a_clear_error_and_keeps_what_was_written(tmp_path: Path) -> None:
    proc = start_appender(tmp_path, str(64 * 1024))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    errors = [line for line in out.splitlines() if line.startswith("error ")]
    assert errors and "cannot write the spool" in errors[0] and "File too large" in errors[0]
    resolved = [line.split()[1] for line in out.splitlines() if line.startswith("ok ")]
    spool = Spool(tmp_path)
    try:
        assert spool.torn_bytes == 0, "the partial write was not cut back"
        batches = Counter(e.tracking_id for r in spool.records() for e in r.events)
    finally:
        spool.close()
    assert set(batches) == set(resolved)
    assert all(count == 20 for count in batches.values())


# ------------------------------------------------------------------------------------------------
# Capacity, segments, release, depth and age


def test_a_full_spool_raises_spoolfull_until_the_consumer_releases(tmp_path: Path) -> None:
    frame = len(records.encode(events(10)))
    spool = Spool(tmp_path, capacity_bytes=frame * 4, segment_bytes=frame * 2)
    try:
        ends = [spool.submit(events(10)).result() for _ in range(4)]
        with pytest.raises(SpoolFull, match="holds"):
            spool.submit(events(10))
        assert spool.full
        assert spool.release(ends[1]) == 1  # the first segment is wholly behind
        assert not spool.full
        spool.submit(events(10)).result()
    finally:
        spool.close()


def test_a_spool_smaller_than_a_segment_takes_appends_again_once_everything_is_released(tmp_path: Path) -> None:
    # serve --spool-mb 1 with 16 MB segments: the current segment is never deleted, so a spool that
    # had filled once stayed full (429 for ever) after the store had taken every event.
    frame = len(records.encode(events(10)))
    spool = Spool(tmp_path, capacity_bytes=frame * 4)
    try:
        ends = [spool.submit(events(10)).result() for _ in range(4)]
        with pytest.raises(SpoolFull):
            spool.submit(events(10))
        spool.release(ends[-1])
        assert spool.depth() == 0 and not spool.full
        spool.submit(events(10)).result()
    finally:
        spool.close()


def test_a_drained_spool_takes_appends_even_when_its_current_segment_fills_the_capacity(tmp_path: Path) -> None:
    # a burst committed as one group (or a spool reopened with a smaller --spool-mb) can leave one
    # current segment as large as the capacity; once released, it must not keep the spool full
    frame = len(records.encode(events(10)))
    spool = Spool(tmp_path, capacity_bytes=frame * 100)
    end = [spool.submit(events(10)).result() for _ in range(4)][-1]
    spool.close()
    spool = Spool(tmp_path, capacity_bytes=frame * 4)
    try:
        with pytest.raises(SpoolFull):
            spool.submit(events(10))
        spool.release(end)
        assert not spool.full
        spool.submit(events(10)).result()
    finally:
        spool.close()


def test_release_deletes_only_whole_segments_behind_and_depth_and_age_follow(tmp_path: Path) -> None:
    frame = len(records.encode(events(10)))
    spool = Spool(tmp_path, segment_bytes=frame * 3)
    try:
        ends = [spool.submit(events(10)).result() for _ in range(7)]  # segments of 3, 3, 1 records
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{n:016d}.seg" for n in (1, 2, 3)]
        assert spool.depth() == 70
        assert spool.age(time.time() + 5) >= 5
        assert spool.release(ends[3]) == 1
        assert spool.depth() == 30
        assert [r.start for r in spool.records()] == [ends[3], ends[4], Position(3, 0)]
        assert spool.release(ends[5]) == 1  # segment 2 ends there
        assert sorted(p.name for p in tmp_path.iterdir()) == ["0000000000000003.seg"]
        assert spool.release(ends[6]) == 0  # the current segment is never deleted
        assert spool.depth() == 0 and spool.age(time.time() + 5) == 0
    finally:
        spool.close()


def test_release_older_than_drops_segments_appended_before_a_time(tmp_path: Path) -> None:
    frame = len(records.encode(events(10)))
    spool = Spool(tmp_path, segment_bytes=frame)
    try:
        for _ in range(3):
            spool.submit(events(10)).result()
        cut = time.time() + 1
        assert spool.release_older_than(cut) == 2
        assert spool.release_older_than(cut) == 0
    finally:
        spool.close()


# ------------------------------------------------------------------------------------------------
# The state directory


def test_state_dir_keeps_the_writer_id_and_checkpoint_across_opens(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "s")
    writer_id = state.writer_id
    assert state.load_checkpoint() is None
    state.save_checkpoint({"spool": [3, 120]})
    state.close()
    again = StateDir(tmp_path / "s")
    try:
        assert again.writer_id == writer_id and len(writer_id) == 12
        assert again.load_checkpoint() == {"spool": [3, 120]}
        assert not list((tmp_path / "s").glob(".*.tmp"))
    finally:
        again.close()
    assert StateDir(tmp_path / "t").writer_id != writer_id


def test_a_second_user_of_a_state_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    try:
        with pytest.raises(StateDirError, match=rf"--state-dir: {tmp_path} is in use by another eventdash \(pid {os.getpid()}\)"):
            StateDir(tmp_path)
    finally:
        state.close()
    StateDir(tmp_path).close()


@pytest.mark.parametrize("content", [b"{not json", b'{"writer_id": ""}', b"[]", b'{"writer_id": "a b"}'])
def test_a_damaged_writer_file_is_an_error_not_a_new_identity(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "writer.json").write_bytes(content)
    with pytest.raises(StateDirError, match="writer.json"):
        StateDir(tmp_path)
    assert (tmp_path / "writer.json").read_bytes() == content
    (tmp_path / "writer.json").unlink()
    StateDir(tmp_path).close()  # and the lock was released by the failed open


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StateDirError, match="--state-dir: cannot use"):
        StateDir(tmp_path / "f")


def test_a_restart_whose_checkpoint_covers_a_full_spool_releases_it_at_its_first_write(tmp_path: Path) -> None:
    # The run before stopped between its checkpoint and its release (kill -9, or a write that
    # failed): nothing is replayed after the checkpoint, so no new event reached the writer to
    # release the spool, and a full spool answered 429 for good.
    clock = FakeClock(1_700_000_000.0)
    store = MemoryStore(clock)
    frame = len(records.encode(events(10, ts=1_700_000_000_000)))

    def started() -> tuple[StateDir, Spool, Pipeline]:
        state = StateDir(tmp_path / "state")
        pipeline = Pipeline(Settings(backend="memory"), store, clock=clock, generate=False, writer_id=state.writer_id)
        spool = Spool(state.spool_path, capacity_bytes=frame * 4)
        take_up(pipeline.writer, spool, state)
        return state, spool, pipeline

    state, spool, pipeline = started()
    for _ in range(4):
        batch = events(10, ts=1_700_000_000_000)
        pipeline.writer.submit(batch, spool.submit(batch).result())
    pipeline.writer.on_written = None  # the checkpoint is saved, the release never happens
    assert pipeline.writer.flush(everything=True)
    spool.close()
    state.close()

    state, spool, pipeline = started()
    try:
        assert spool.full
        assert pipeline.writer.flush(everything=True)
        assert not spool.full and spool.depth() == 0
        spool.submit(events(10)).result()
        view = pipeline.reader.read_view()
        assert sum(view.summary[t].total for t in EVENT_TYPES) == 40  # each event once
    finally:
        spool.close()
        state.close()


def test_an_idle_flush_saves_no_checkpoint_and_an_unreleased_position_is_released_after_an_outage(tmp_path: Path, memcached: MemcachedServer) -> None:
    """An idle serve flushes every second: re-encoding and fsyncing its whole state each time held the
    GIL while reads waited. But a write that failed must still release its position once one succeeds."""
    clock = FakeClock(1_700_000_000.0)
    store = MemcachedStore([memcached.server], "idle:")
    state = StateDir(tmp_path / "state")
    pipeline = Pipeline(Settings(backend="memcached"), store, clock=clock, generate=False, writer_id=state.writer_id)
    spool = Spool(state.spool_path)
    take_up(pipeline.writer, spool, state)
    saved: list[object] = []
    released: list[object] = []
    checkpoint, release = pipeline.writer.on_staged, pipeline.writer.on_written
    assert checkpoint is not None and release is not None
    stop_before_the_write: list[MemcachedServer] = []

    def staged(position: object) -> None:
        saved.append(position)
        checkpoint(position)
        while stop_before_the_write:
            stop_before_the_write.pop().stop()

    pipeline.writer.on_staged = staged
    pipeline.writer.on_written = lambda position: (released.append(position), release(position))
    try:
        batch = events(10, ts=1_700_000_000_000)
        end = spool.submit(batch).result()
        pipeline.writer.submit(batch, end)
        assert pipeline.writer.flush()
        assert saved == [end] and released == [end]
        assert pipeline.writer.flush()  # saves the sequence numbers the write itself took (heads listing shards)
        for _ in range(3):
            assert pipeline.writer.flush()  # nothing new: no checkpoint, nothing to release
        assert saved == [end, end] and released == [end]

        batch = events(10, tid="INF-b", ts=1_700_000_000_000)
        later = spool.submit(batch).result()
        pipeline.writer.submit(batch, later)
        stop_before_the_write.append(memcached)
        assert not pipeline.writer.flush()
        assert saved == [end, end, later] and released == [end]  # saved before the write, which failed
        memcached.start()
        assert pipeline.writer.flush()
        assert saved[-1] == later and released == [end, later]
        assert spool.depth() == 0
    finally:
        spool.close()
        state.close()
        store.close()
