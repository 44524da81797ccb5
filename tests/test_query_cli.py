"""``eventdash query`` as a user runs it (subprocess, real memcached) in every format, and any flags
through ``prepare()``: accepted, or refused in one line naming the flag with exit 2."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MemcachedServer
from tests.history_data import recount, seeded_events, write_events
from tests.test_hostile_input import outcome
from tui.events import iso_ms
from tui.history.aggregate import QueryResult, Row
from tui.history.export import to_csv, to_json
from tui.history.query import Query
from tui.settings import Server
from tui.store import MemcachedStore

REPO = Path(__file__).resolve().parent.parent
IDS = ("INF-yj562hjojbtez", "INF-3gbfcjjdsd6vhvo", "INF-ixpktk3itsk86", "SHOP-1")


def eventdash(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60, check=False)


def test_query_prints_the_same_recounted_numbers_in_every_format(memcached: MemcachedServer, tmp_path: Path) -> None:
    now = time.time()
    events = seeded_events(3, now, 3_000, IDS, 3 * 3_600)
    store = MemcachedStore([memcached.server], "eventdash:")
    write_events(store, events, now)
    store.close()
    start_ms = int(now * 1000) // 60_000 * 60_000 - 90 * 60_000
    end_ms = start_ms + 80 * 60_000  # 80 one-minute steps, all closed before now
    flags = [
        "query", "--memcached", memcached.address, "--from", iso_ms(start_ms), "--to", iso_ms(end_ms), "--step", "1m",
        "--type", "signup", "--type", "review", "--tracking-id", "INF-*", "--group-by", "type",
    ]
    expected = recount(events, start_ms, end_ms, 60_000, lambda t, i: t in ("signup", "review") and i.startswith("INF-"), lambda t, i: (t,))
    full = {(s, (t,)): expected.get((s, (t,)), 0) for s in range(start_ms, end_ms, 60_000) for t in ("review", "signup")}
    assert sum(full.values()) > 100  # the range holds events to count

    as_json = eventdash(*flags, "--format", "json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert {(r["bucketMs"], (r["type"],)): r["count"] for r in doc["rows"]} == full
    assert doc["incomplete"] == [] and (doc["fromMs"], doc["toMs"]) == (start_ms, end_ms)
    assert all(r["bucket"] == iso_ms(r["bucketMs"]) for r in doc["rows"])

    allezon = json.loads(eventdash(*flags, "--format", "allezon", cwd=tmp_path).stdout)
    assert allezon["columns"] == ["1m_bucket", "type", "count"]
    assert {(row[0], (row[1],)): row[2] for row in allezon["rows"]} == {(iso_ms(s), g): n for (s, g), n in full.items()}

    as_csv = eventdash(*flags, "--format", "csv", cwd=tmp_path)
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert as_csv.stdout.splitlines()[0] == "bucket,type,count,incomplete"
    assert {(r["bucket"], (r["type"],)): int(r["count"]) for r in table} == {(iso_ms(s), g): n for (s, g), n in full.items()}
    assert {r["incomplete"] for r in table} == {"false"}

    as_table = eventdash(*flags, cwd=tmp_path)
    assert as_table.returncode == 0, as_table.stderr
    shown = re.findall(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\s*│\s*(\S+)\s*│\s*([\d,]+)", as_table.stdout)
    assert {(b, (t,)): int(n.replace(",", "")) for b, t, n in shown} == {(iso_ms(s), g): n for (s, g), n in full.items()}


def test_a_tracking_id_a_spreadsheet_would_run_is_quoted_in_csv_not_in_json() -> None:
    """``serve`` counts any printable id anyone posts, and a report's CSV is a download: an id such
    as ``=HYPERLINK(…)`` must not become a formula (the dashboard's exports already quote it)."""
    hostile = '=HYPERLINK("http://x.example")'
    query = Query(0, 60_000, 60, (), (), ("tracking_id",))
    result = QueryResult(query, (Row(0, (hostile,), 1), Row(0, ("INF-a",), 2)), (), 10, 60.0)
    rows = list(csv.reader(io.StringIO(to_csv(result))))
    assert rows[1:] == [["1970-01-01T00:00:00.000Z", "'" + hostile, "1", "false"], ["1970-01-01T00:00:00.000Z", "INF-a", "2", "false"]]
    assert to_json(result)["rows"][0]["tracking_id"] == hostile


def test_the_readme_command_works_with_relative_times(memcached: MemcachedServer, tmp_path: Path) -> None:
    now = time.time()
    store = MemcachedStore([memcached.server], "eventdash:")
    write_events(store, [(int(now * 1000) - 1_000, "signup", "INF-a")], now)
    store.close()
    done = eventdash("query", "--memcached", memcached.address, "--from", "-1h", "--step", "1m", "--type", "signup", "--format", "csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 61 and sum(int(r["count"]) for r in rows) == 1  # 60 closed minutes and the current one


def test_no_memcached_is_one_line_and_exit_1(tmp_path: Path) -> None:
    from tests.conftest import free_port

    done = eventdash("query", "--memcached", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "unreachable (Connection refused): query reads the counts" in done.stderr


def test_a_too_fine_step_is_exit_2_naming_what_is_kept(tmp_path: Path) -> None:
    done = eventdash("query", "--from", "-2h", "--step", "10s", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "eventdash: error: --step 10s: 10 s buckets are kept for 1 h; --from -2h needs --step 1m or coarser\n"


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--step", "5s"], "--step: 5s is not a whole number of 10 s buckets"),
        (["--from", "tomorrow"], "--from: expected now, a relative time"),
        (["--to", "2999-01-01"], "--to: '2999-01-01' is in the future"),
        (["--type", "buy"], "--type: unknown event type 'buy'"),
        (["--tracking-id", ""], "--tracking-id: '' is empty"),
        (["--group-by", "type,site"], "--group-by: unknown column 'site'"),
        (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["--step", "999d"], "--step: 999d is longer than any level can be kept (400 days)"),
        (["--from", "-30d", "--step", "1h"], "--step 1h: 1 h blocks are kept for 7 d; --from -30d is older than anything kept"),
    ],
)
def test_bad_flags_are_one_line_naming_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], named: str) -> None:
    monkeypatch.chdir(tmp_path)
    plan, code, stderr = outcome(["query", *flags])
    assert plan is None and code == 2
    assert named in stderr


QUERY_FLAGS = ["--from", "--to", "--step", "--type", "--tracking-id", "--group-by", "--format"]
values = st.text(max_size=20) | st.sampled_from([
    "-1h", "-90m", "-0s", "-7d", "-8d", "-999999999d", "now", "2023-11-14T22:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59",
    "10s", "1m", "10m", "1h", "0s", "7s", "1d", "99999999999h", "signup", "review", "INF-*", "[", "a b", "\x00", "INF-\u200bx",
    "type", "tracking_id", "type,tracking_id", ",", "csv", "json", "allezon", "table",
])
argvs = st.lists(st.tuples(st.sampled_from(QUERY_FLAGS), values), max_size=6).map(lambda pairs: ["query", *(t for p in pairs for t in p)])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argvs)
def test_any_query_flags_are_accepted_or_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    plan, code, stderr = outcome(argv)  # the one-line rule is asserted inside
    if plan is None:
        assert code == 2 and stderr.startswith("eventdash: error: ")
        return
    assert plan.command == "query" and plan.query is not None
    assert plan.query.query.start_ms < plan.query.query.end_ms


def test_several_servers_hash_the_same_prefix(memcached_factory: object, tmp_path: Path) -> None:
    """Two memcached servers: the query reads the same counts through the hash ring as it wrote."""
    servers = [memcached_factory(), memcached_factory()]  # type: ignore[operator]
    now = time.time()
    events = seeded_events(5, now, 500, IDS, 3_600)
    store = MemcachedStore([Server("127.0.0.1", s.port) for s in servers], "eventdash:")
    write_events(store, events, now)
    store.close()
    start_ms = int(now * 1000) // 600_000 * 600_000 - 1_800_000
    done = eventdash(
        "query", "--memcached", ",".join(s.address for s in servers), "--from", iso_ms(start_ms), "--to", iso_ms(start_ms + 1_800_000),
        "--step", "10m", "--format", "json", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    got = {r["bucketMs"]: r["count"] for r in json.loads(done.stdout)["rows"]}
    want = recount(events, start_ms, start_ms + 1_800_000, 600_000, lambda t, i: True, lambda t, i: ())
    assert got == {s: want.get((s, ()), 0) for s in range(start_ms, start_ms + 1_800_000, 600_000)}
