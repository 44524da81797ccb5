"""Distinct visitors outside the dashboard (issue 13): the ``--headless`` JSON lines, ``eventdash
summary`` (table and ``--json``) and the per-type and per-shard summary keys.

The visitors are written by a real Store v2 writer into a real memcached (stamped now, on the system
clock), then read by the real ``eventdash`` in a subprocess, as a user runs it; a lost sketch value
must show as ``incomplete`` with its reason in every face, never as a silently low figure."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer
from tests.proc import REPO
from tui.clock import FakeClock, SystemClock
from tui.distinct.sketch import relative_error_bound
from tui.headless import headless_line
from tui.ingest.decode import IngestEvent
from tui.pipeline import Pipeline
from tui.settings import MemcachedSettings, Settings
from tui.store import MemcachedStore, MemoryStore
from tui.store.codec import decode_summary
from tui.store.publishing import summary_documents
from tui.store.sketches import sketch_key

TYPES = ("signup", "user-event", "review")
BIG, SMALL = "INF-big", "INF-small"


def eventdash(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "160", "XDG_CONFIG_HOME": str(cwd / "xdg")}
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60, check=False)


class Written:
    """What the writer put into memcached, and the exact distinct visitors of it."""

    def __init__(self, memcached: MemcachedServer, prefix: str, pipeline: Pipeline, events: list[IngestEvent]) -> None:
        self.memcached, self.prefix, self.pipeline, self.events = memcached, prefix, pipeline, events
        self.flags = ["--memcached", memcached.address, "--key-prefix", prefix]

    def exact(self, types: tuple[str, ...] = TYPES, tid: str | None = None) -> int:
        return len({e.visitor_id for e in self.events if e.type in types and (tid is None or e.tracking_id == tid)})


@pytest.fixture
def written(memcached: MemcachedServer) -> Iterator[Written]:
    prefix = "vf:"
    store = MemcachedStore([memcached.server], prefix)
    settings = Settings(backend="memcached", memcached=MemcachedSettings((memcached.server,), prefix))
    pipeline = Pipeline(settings, store, clock=SystemClock(), generate=False, writer_id="w1")
    rng = random.Random(5)
    now_ms = int(time.time() * 1000)
    events = []
    for _ in range(4_000):  # ~1,000 visitors of BIG, 8 of SMALL, over the last 2 minutes
        tid = BIG if rng.random() < 0.95 else SMALL
        pool = 1_000 if tid == BIG else 8
        events.append(IngestEvent(rng.choice(TYPES), tid, now_ms - rng.randrange(120_000), f"{tid}:{rng.randrange(pool)}", None, None))
    pipeline.writer.ingest(events)
    assert pipeline.writer.flush()
    yield Written(memcached, prefix, pipeline, events)
    store.close()


def near(figure: dict, truth: int) -> None:
    assert set(figure) == {"estimate", "lower", "upper"}
    assert figure["lower"] <= truth <= figure["upper"], (figure, truth)
    assert abs(figure["estimate"] - truth) <= max(1.0, truth * relative_error_bound()), (figure, truth)


def test_summary_json_gives_visitors_per_type_per_id_and_united_beside_the_unchanged_summary(written: Written, tmp_path: Path) -> None:
    result = eventdash("summary", "--json", *written.flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    for etype in TYPES:  # the brief's shape, exactly as before
        assert set(line["summary"][etype]) == {"totalEventsCaptured", "eventsCapturedByTrackingIds"}
    near(line["visitors"], written.exact())
    assert set(line["visitorsByTrackingId"]) == {BIG, SMALL}
    near(line["visitorsByTrackingId"][BIG], written.exact(tid=BIG))
    assert line["visitorsByTrackingId"][SMALL] == {"estimate": 8, "lower": 8, "upper": 8}
    for etype in TYPES:
        per_type = line["visitorsByType"][etype]
        near(per_type["visitors"], written.exact((etype,)))
        near(per_type["visitorsByTrackingId"][BIG], written.exact((etype,), BIG))
    assert line["visitors"]["estimate"] < sum(s["totalEventsCaptured"] for s in line["summary"].values())  # people, not events
    assert "visitorsIncomplete" not in line and "visitorsOmitted" not in line  # only when there are any
    assert "incomplete" not in result.stderr


def test_headless_lines_carry_the_same_visitors(written: Written, tmp_path: Path) -> None:
    result = eventdash("--headless", "--no-generate", "--duration", "1.2", "--refresh", "0.5", *written.flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(text) for text in result.stdout.splitlines()]
    assert len(lines) >= 2
    for line in lines:
        assert {"visitors", "visitorsByTrackingId", "visitorsByType"} <= set(line)
        near(line["visitors"], written.exact())
        assert line["visitorsByTrackingId"][SMALL]["estimate"] == 8


def test_the_summary_table_has_a_visitors_column_with_bounds(written: Written, tmp_path: Path) -> None:
    result = eventdash("summary", *written.flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "visitors" in result.stdout.splitlines()[1] + result.stdout.splitlines()[2]  # the header
    rows = [r for r in result.stdout.splitlines() if SMALL in r]
    assert len(rows) == 3 and all(r.rstrip(" │|").split()[-1].isdigit() for r in rows)  # exact: no "±"
    every = next(r for r in result.stdout.splitlines() if "every type" in r)
    assert "±" in every  # ~1,000 visitors: an estimate with its two-sigma bound
    assert "visitors incomplete" not in result.stdout


def test_the_summary_keys_carry_visitors_and_the_briefs_fields_unchanged(written: Written, tmp_path: Path) -> None:
    assert eventdash("summary", "--json", *written.flags, cwd=tmp_path).returncode == 0  # it publishes
    plain = Client(("127.0.0.1", written.memcached.port))
    layout = written.pipeline.reader.layout()
    now_ms = int(time.time() * 1000)
    for etype in TYPES:
        raw = plain.get(layout.summary_key(etype))
        doc = decode_summary(raw, now_ms, per_shard=False)
        counts = {tid: sum(1 for e in written.events if e.type == etype and e.tracking_id == tid) for tid in (BIG, SMALL)}
        assert doc["eventsCapturedByTrackingIds"] == counts and doc["totalEventsCaptured"] == sum(counts.values())
        visitors = doc["visitors"]
        assert set(visitors) == {"total", "lower", "upper", "byTrackingId", "omitted", "incomplete"}
        near({"estimate": visitors["total"], "lower": visitors["lower"], "upper": visitors["upper"]}, written.exact((etype,)))
        assert visitors["byTrackingId"][SMALL] == 8 and visitors["omitted"] == 0 and visitors["incomplete"] == []
        shard = decode_summary(plain.get(layout.shard_summary_key(etype, layout.shard(SMALL))), now_ms, per_shard=True)
        assert shard["visitors"]["byTrackingId"][SMALL] == 8 and shard["visitors"]["omitted"] == 0
        assert set(shard["visitors"]) == {"byTrackingId", "omitted", "incomplete"}


def test_a_lost_sketch_is_said_in_every_face_with_why(written: Written, tmp_path: Path) -> None:
    layout = written.pipeline.reader.layout()
    plain = Client(("127.0.0.1", written.memcached.port))
    newest = max(e.ts_ms for e in written.events if e.type == "review" and e.tracking_id == BIG) // 10_000
    key = sketch_key(layout, ("d", 1, newest, "review", layout.shard(BIG)))
    assert plain.delete(key, noreply=False)  # evicted, as memcached does under memory pressure
    as_json = eventdash("summary", "--json", *written.flags, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    line = json.loads(as_json.stdout)
    [gap] = [g for g in line["visitorsIncomplete"] if key in g["why"]]
    assert "missing" in gap["why"] and gap["buckets"][0] <= newest <= gap["buckets"][1]
    assert line["incomplete"] == []  # the counts are whole; only the visitors may be low
    assert f"incomplete: visitors of buckets {gap['from']} to {gap['to']} could not be read whole" in as_json.stderr
    assert key in as_json.stderr
    table = eventdash("summary", *written.flags, cwd=tmp_path)
    assert "visitors incomplete" in " ".join(table.stdout.split()) and key in table.stderr  # the title may wrap
    published = json.loads(plain.get(layout.summary_key("review")))
    assert any(key in g["why"] for g in published["visitors"]["incomplete"])


def test_ids_past_the_busiest_are_omitted_and_counted_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the MAX_VISITOR_IDS busiest ids are read (2 here, of 5): the others are said, not zero."""
    import tui.pipeline.reader as reader_module

    monkeypatch.setattr(reader_module, "MAX_VISITOR_IDS", 2)
    clock = FakeClock(1_700_000_000.0)
    store = MemoryStore(clock, key_prefix="o:")
    settings = Settings(backend="memory", memcached=MemcachedSettings(key_prefix="o:"))
    pipeline = Pipeline(settings, store, clock=clock, generate=False, writer_id="w1")
    now_ms = int(clock.time() * 1000)
    events = [IngestEvent("review", f"INF-{i}", now_ms - 1_000, f"v{j}", None, None) for i in range(5) for j in range(10 * (i + 1))]
    pipeline.writer.ingest(events)
    assert pipeline.writer.flush()
    view = pipeline.reader.refresh()
    line = headless_line(view, "memory", None, now=view.as_of, settings=settings)
    assert line["visitorsOmitted"] == 3
    assert line["visitorsByTrackingId"] == {"INF-3": {"estimate": 40, "lower": 40, "upper": 40}, "INF-4": {"estimate": 50, "lower": 50, "upper": 50}}
    assert line["visitors"]["estimate"] == 50  # the total still covers every id
    layout = pipeline.reader.layout()
    docs = summary_documents(view, layout)
    review = docs[layout.summary_key("review")]["visitors"]
    assert review["byTrackingId"] == {"INF-3": 40, "INF-4": 50} and review["omitted"] == 3 and review["total"] == 50
    assert docs[layout.summary_key("signup")]["visitors"] == {"total": 0, "lower": 0, "upper": 0, "byTrackingId": {}, "omitted": 0, "incomplete": []}
    shards = [docs[layout.shard_summary_key("review", k)]["visitors"] for k in range(layout.shards)]
    assert sum(s["omitted"] for s in shards) == 3 and sum(len(s["byTrackingId"]) for s in shards) == 2


def test_a_summary_key_lists_twenty_visitor_gaps_and_one_for_the_rest() -> None:
    """Sketch values evicted one by one can leave thousands of gaps; every key would repeat them."""
    from tui.distinct.sketch import Estimate
    from tui.store.layout import Layout
    from tui.store.sketch_reads import DistinctRead
    from tui.window import MAX_VISITOR_GAPS, Gap, summarize

    now = 1_700_000_000.0
    view = summarize(now, 300, 10, {(1, 170_000_000 - 1): {"review": {"INF-a": 3}}})
    gaps = tuple(Gap(170_000_000 - 30 + i, 170_000_000 - 30 + i, f"visitors: k{i} is missing (evicted?)") for i in range(25))
    read = DistinctRead(Estimate(2, 2, 2), {"INF-a": Estimate(2, 2, 2)}, {"review": {"INF-a": Estimate(2, 2, 2)}}, {"review": Estimate(2, 2, 2)}, gaps)
    import dataclasses

    layout = Layout("eventdash:", 10, shards=4)
    docs = summary_documents(dataclasses.replace(view, visitors=read), layout)
    listed = docs[layout.summary_key("review")]["visitors"]["incomplete"]
    assert len(listed) == MAX_VISITOR_GAPS + 1 and listed[0]["why"] == "visitors: k0 is missing (evicted?)"
    assert listed[-1]["why"] == "and 5 more parts whose sketches were lost, corrupt or restored"
    assert listed[-1]["buckets"] == [170_000_000 - 10, 170_000_000 - 6]
    for etype in TYPES:
        decode_summary(json.dumps(docs[layout.summary_key(etype)]).encode(), int(now * 1000), per_shard=False)
        for k in range(4):
            shard = docs[layout.shard_summary_key(etype, k)]
            assert len(shard["visitors"]["incomplete"]) == MAX_VISITOR_GAPS + 1
            decode_summary(json.dumps(shard).encode(), int(now * 1000), per_shard=True)


def test_the_headless_line_lists_twenty_visitor_gaps_and_one_for_the_rest() -> None:
    """A line a second must not grow with every evicted sketch value: the same cap as the summary keys."""
    from tui.distinct.sketch import Estimate
    from tui.headless import visitors_json
    from tui.store.sketch_reads import DistinctRead
    from tui.window import MAX_VISITOR_GAPS, Gap

    gaps = tuple(Gap(170_000_000 + i, 170_000_000 + i, f"visitors: k{i} is missing (evicted?)") for i in range(300))
    read = DistinctRead(Estimate(2, 2, 2), {"INF-a": Estimate(2, 2, 2)}, {"review": {"INF-a": Estimate(2, 2, 2)}}, {"review": Estimate(2, 2, 2)}, gaps)
    listed = visitors_json(read, ["review"], 10)["visitorsIncomplete"]
    assert len(listed) == MAX_VISITOR_GAPS + 1 and listed[0]["why"] == "visitors: k0 is missing (evicted?)"
    assert listed[-1] == {**Gap(170_000_020, 170_000_299, "").to_json(10), "why": "and 280 more parts whose sketches were lost, corrupt or restored"}
