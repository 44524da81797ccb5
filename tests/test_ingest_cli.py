"""``eventdash ingest`` as a real process: a file, stdin, and ``--follow`` on a growing file that
is truncated and rotated; every accepted event ends up in the spool, and SIGTERM loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.proc import REPO, Eventdash
from tui.ingest.decode import hash_email
from tui.service.spool import Spool


def line(tid: str, name: str = "click", stamp: str | None = None) -> str:
    stamp = stamp or time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return json.dumps({"path": "/visitors/events/", "value": {"trackingId": tid, "event": name, "timestamp": stamp}})


def spooled(state: Path) -> Counter[str]:
    spool = Spool(state / "spool")
    try:
        return Counter(e.tracking_id for r in spool.records() for e in r.events)
    finally:
        spool.close()


MIXED = "\n".join([line("INF-a"), "{not json", "", line("INF-b", "formsubmit"), line("", "click"), line("INF-c", "teleport"), line("INF-d", stamp="2019-12-08T06:42:57.289Z"), line("INF-e")])


def test_a_file_is_counted_with_one_result_per_line_and_a_summary(tmp_path: Path) -> None:
    source = tmp_path / "events.ndjson"
    source.write_text(MIXED)  # no newline after the last line: it still counts
    proc = Eventdash("ingest", str(source), "--state-dir", str(tmp_path / "state"), "--backend", "memory")
    assert proc.proc.wait(timeout=30) == 0
    proc.stop()
    report = json.loads(proc.text("stdout"))
    assert report == {"lines": 7, "accepted": 3, "rejected": 4, "rejected_by_reason": {"parse": 1, "invalid_id": 1, "unknown_event": 1, "late": 1}}
    err = proc.text("stderr")
    assert "line 2: invalid JSON" in err and "line 5: value.trackingId" in err and "line 6: value.event" in err and "line 7: value.timestamp" in err
    assert err.splitlines()[-1] == "eventdash ingest: accepted 3, rejected 4 (invalid_id: 1, late: 1, parse: 1, unknown_event: 1)"
    assert spooled(tmp_path / "state") == Counter({"INF-a": 1, "INF-b": 1, "INF-e": 1})


def test_the_settings_event_types_mapping_decides_each_events_type(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"event_types": {"purchase": "signup", "formsubmit": "review"}}))
    source = tmp_path / "events.ndjson"
    source.write_text("\n".join([line("INF-a", "purchase"), line("INF-b", "formsubmit"), line("INF-c", "click")]) + "\n")
    proc = Eventdash("ingest", str(source), "--settings", str(settings), "--state-dir", str(tmp_path / "state"), "--backend", "memory")
    assert proc.proc.wait(timeout=30) == 0
    proc.stop()
    assert json.loads(proc.text("stdout"))["rejected_by_reason"] == {"unknown_event": 1}  # the mapping replaces the defaults
    spool = Spool(tmp_path / "state" / "spool")
    try:
        assert sorted((e.tracking_id, e.type) for r in spool.records() for e in r.events) == [("INF-a", "signup"), ("INF-b", "review")]
    finally:
        spool.close()


def test_stdin_is_read_to_its_end(tmp_path: Path) -> None:
    lines = "\n".join(line(f"INF-{i % 7}") for i in range(2500)) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "tui", "ingest", "-", "--state-dir", str(tmp_path), "--backend", "memory"],
        check=False, input=lines.encode(), capture_output=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accepted"] == 2500
    assert sum(spooled(tmp_path).values()) == 2500


def test_a_missing_file_or_follow_on_stdin_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, says in (([str(tmp_path / "nope")], "cannot read"), (["-", "--follow"], "--follow: follows a file by name")):
        proc = Eventdash("ingest", *args, "--state-dir", str(tmp_path / "s"), "--backend", "memory")
        assert proc.proc.wait(timeout=30) == 2
        proc.stop()
        assert len(proc.text("stderr").splitlines()) == 1 and says in proc.text("stderr")


def test_follow_reads_a_growing_truncated_and_rotated_file_and_sigterm_loses_nothing(tmp_path: Path) -> None:
    source = tmp_path / "events.ndjson"
    source.write_text(line("INF-a") + "\n" + line("INF-a") + "\n")
    proc = Eventdash("ingest", str(source), "--follow", "--state-dir", str(tmp_path / "state"), "--backend", "memory")
    proc.wait_for(r"accepted 2, rejected 0")
    with source.open("a") as f:  # a line written in two parts is counted once, when it ends
        half = line("INF-b")
        f.write(half[:20])
        f.flush()
        f.write(half[20:] + "\n" + line("INF-b") + "\n")
    proc.wait_for(r"accepted 4, rejected 0")
    source.write_text(line("INF-c") + "\n")  # truncated, then written again
    proc.wait_for(r"accepted 5, rejected 0")
    source.rename(tmp_path / "events.ndjson.1")  # rotated: a new file under the name
    source.write_text("\n".join(line("INF-d") for _ in range(3)) + "\n{bad\n")
    proc.wait_for(r"accepted 8, rejected 1 \(parse: 1\)")
    with source.open("a") as f:
        f.write("\n".join(line("INF-e") for _ in range(200)) + "\n")
    assert proc.stop(signal.SIGTERM) == 0
    report = json.loads(proc.text("stdout"))
    stored = spooled(tmp_path / "state")
    assert report["accepted"] == sum(stored.values()), "what was reported accepted is exactly what is durable"
    assert stored["INF-a"] == 2 and stored["INF-b"] == 2 and stored["INF-c"] == 1 and stored["INF-d"] == 3
    assert stored["INF-e"] <= 200  # as far as it was read when the signal came: every line read is durable


def test_the_email_salt_from_the_environment_keys_the_hash_and_no_salt_hashes_nothing(tmp_path: Path) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    signup = json.dumps({"value": {"trackingId": "INF-a", "event": "formsubmit", "timestamp": stamp, "form": {"email": "Agency@Gmail.com"}}}) + "\n"
    for salt in ("pepper-of-this-deployment", ""):
        state = tmp_path / (salt or "none")
        result = subprocess.run(
            [sys.executable, "-m", "tui", "ingest", "-", "--state-dir", str(state), "--backend", "memory"],
            check=False, input=signup.encode(), capture_output=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO), "EVENTDASH_EMAIL_SALT": salt},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert b"pepper" not in result.stdout + result.stderr and b"Agency" not in result.stdout + result.stderr
        spool = Spool(state / "spool")
        try:
            hashes = [e.email_hash for r in spool.records() for e in r.events]
        finally:
            spool.close()
        assert hashes == [hash_email("agency@gmail.com", salt.encode()) if salt else None]
