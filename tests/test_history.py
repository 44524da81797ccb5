"""Aggregate queries (issue 12) against a real memcached: the oracle over random ranges, steps,
filters and groupings, the refusal of a step finer than is kept, and incomplete steps said."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fnmatch import fnmatchcase

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer, _require_memcached
from tests.history_data import recount, seeded_events, write_events
from tui import EVENT_TYPES
from tui.history import QueryError, QueryParams, parse_query, run_query
from tui.store import MemcachedStore
from tui.store.layout import Layout

NOW = 1_700_001_234.5  # mid-bucket, mid-hour: the newest steps need finer blocks than their level
IDS = tuple(f"INF-{c}{i}" for c in "ab" for i in range(10)) + tuple(f"SHOP-{i}" for i in range(5))
EVENTS = seeded_events(12, NOW, 4_000, IDS, 7 * 86_400 - 3_600)
PATTERNS = ["INF-a1", "INF-b7", "SHOP-3", "NOPE-1", "INF-a*", "SHOP-?", "*", "INF-[ab]1", "*-3"]
#: How far back each step may start: its level's retention (1 h, 1 d, 1 d, 7 d) less a step and a margin.
REACH = {"10s": 3_600, "1m": 86_400, "10m": 86_400, "1h": 7 * 86_400}
STEP_SECONDS = {"10s": 10, "1m": 60, "10m": 600, "1h": 3_600}


class History:
    def __init__(self, store: MemcachedStore, layout: Layout, server: MemcachedServer) -> None:
        self.store, self.layout, self.server = store, layout, server


@pytest.fixture(scope="module")
def history() -> Iterator[History]:
    """One real memcached holding the seeded week, written once for every example."""
    _require_memcached()
    server = MemcachedServer(memory_mb=256)
    server.start()
    store = MemcachedStore([server.server], "h:")
    layout = write_events(store, EVENTS, NOW)
    yield History(store, layout, server)
    store.close()
    server.stop()


def ask(history: History, **params: object) -> object:
    query = parse_query(QueryParams(**params), NOW, 10)  # type: ignore[arg-type]
    return run_query(history.store, history.layout, query, NOW, typed_from=str(params.get("start", "-1h")))


@hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    step=st.sampled_from(sorted(REACH)),
    back=st.floats(0.0, 1.0),
    length=st.floats(0.0, 1.0),
    to_now=st.booleans(),
    types=st.lists(st.sampled_from(EVENT_TYPES), max_size=2),
    ids=st.lists(st.sampled_from(PATTERNS), max_size=3),
    group_by=st.sampled_from([None, "type", "tracking_id", "type,tracking_id", "tracking_id,type"]),
)
def test_every_aggregate_equals_a_recount_of_the_events(
    history: History, step: str, back: float, length: float, to_now: bool, types: list[str], ids: list[str], group_by: str | None
) -> None:
    step_s = STEP_SECONDS[step]
    reach = REACH[step] - step_s - 60
    back_s = max(step_s, int(back * reach))
    span_s = max(1, int(length * back_s))
    start_ms = int(NOW * 1000) - back_s * 1000
    end_ms = int(NOW * 1000) if to_now else start_ms + span_s * 1000
    to = "now" if to_now else f"-{back_s - span_s}s" if back_s > span_s else "now"
    result = ask(history, start=f"-{back_s}s", end=to, step=step, types=types, tracking_ids=ids, group_by=group_by)
    step_ms = step_s * 1000
    first = start_ms - start_ms % step_ms
    last = -(-end_ms // step_ms) * step_ms
    columns = [c for c in ("type", "tracking_id") if group_by and c in group_by.split(",")]

    def keep(etype: str, tid: str) -> bool:
        return (not types or etype in types) and (not ids or any(fnmatchcase(tid, p) for p in ids))

    def group(etype: str, tid: str) -> tuple[str, ...]:
        return tuple({"type": etype, "tracking_id": tid}[c] for c in columns)

    expected = recount(EVENTS, first, last, step_ms, keep, group)
    assert result.columns == ("bucket", *columns, "count")  # type: ignore[attr-defined]
    got = {(r.start_ms, r.group): r.count for r in result.rows}  # type: ignore[attr-defined]
    assert {k: v for k, v in got.items() if v} == expected
    starts = sorted({s for s, _ in got})
    groups = {g for _, g in got}
    if groups:  # grouped by id with no id named and none with events: no group, so no row at all
        assert starts == list(range(first, last, step_ms))  # every step, an empty one too
    assert len(got) == len(starts) * len(groups)  # every group has a row (0 if empty) in every step
    named = {group(t, i) for t in (types or EVENT_TYPES) for i in ids if not any(c in i for c in "*?[")} if ids else set()
    if "tracking_id" in columns:
        assert named <= groups  # an id named exactly is shown even without events
    if columns == ["type"]:
        assert groups == {(t,) for t in (types or EVENT_TYPES)}
    assert result.incomplete == ()  # type: ignore[attr-defined]


def test_a_step_finer_than_what_is_kept_is_refused_saying_what_is_kept(history: History) -> None:
    with pytest.raises(QueryError, match=r"^--step 10s: 10 s buckets are kept for 1 h; --from -2h needs --step 1m or coarser$") as caught:
        ask(history, start="-2h", step="10s")
    assert caught.value.param == "step"
    with pytest.raises(QueryError, match=r"^--step 1m: 1 min blocks are kept for 1 d; --from -2d needs --step 1h or coarser$"):
        ask(history, start="-2d", step="1m")
    with pytest.raises(QueryError, match=r"; --from -8d is older than anything kept: the longest retention is 7 d$"):
        ask(history, start="-8d", step="1h")
    assert len(ask(history, start="-50m", step="10s").rows) == 301  # type: ignore[attr-defined]


def test_a_one_id_query_reads_only_that_ids_shard(history: History) -> None:
    keys: list[str] = []
    real = history.store.get_many

    def spy(wanted: list[str]) -> dict[str, bytes]:
        keys.extend(wanted)
        return real(wanted)

    history.store.get_many = spy  # type: ignore[method-assign]
    try:
        result = ask(history, start="-24h", step="1h", types=["signup"], tracking_ids=["INF-a1"])
    finally:
        del history.store.get_many
    shard = history.layout.shard("INF-a1")
    shard_keys = [k for k in keys if k.startswith("h:s")]
    assert shard_keys and all(k.endswith(f":signup:{shard}") for k in shard_keys)
    assert sum(r.count for r in result.rows) == sum(  # type: ignore[attr-defined]
        1 for ts, t, i in EVENTS if t == "signup" and i == "INF-a1" and result.query.start_ms <= ts  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("path", ["every shard", "one id's shard", "heads only"])
def test_a_lost_value_marks_its_steps_incomplete_with_why(memcached: MemcachedServer, path: str) -> None:
    """Each way of reading (grouped by id: every shard; one id: its shard; totals: the heads) says
    which step lost a value and why, instead of a silently low count."""
    store = MemcachedStore([memcached.server], "i:")
    layout = write_events(store, EVENTS, NOW)
    window = QueryParams(start="-3h", end="-1h", step="1m", types=["review"], group_by="tracking_id")
    before = run_query(store, layout, parse_query(window, NOW, 10), NOW)
    busy = max({r.start_ms for r in before.rows if r.count}, key=lambda s: sum(r.count for r in before.rows if r.start_ms == s))
    block = (6, busy // 60_000)
    shard = _listed(store, layout, block)[0]
    key = layout.shard_key(block, "review", shard)
    tid = next(iter(json.loads(store.get_many([key])[key])["c"]))
    params = {
        "every shard": window,
        "one id's shard": QueryParams(start="-3h", end="-1h", step="1m", types=["review"], tracking_ids=[tid]),
        "heads only": QueryParams(start="-3h", end="-1h", step="1m", types=["review"]),
    }[path]
    query = parse_query(params, NOW, 10)
    assert run_query(store, layout, query, NOW).incomplete == ()
    if path == "heads only":
        key = layout.head_key(block)
        why = f"lost: {key} is missing but 60-block {busy // 600_000} lists it"
    else:
        why = f"lost: {key} is missing but the head lists it"
    # noreply=False: pymemcache's default sends the delete and returns, and the query on another
    # connection could be served first (CI read the window whole once, with the head still there).
    assert Client(("127.0.0.1", memcached.port)).delete(key, noreply=False)
    after = run_query(store, layout, query, NOW)
    assert [g.why for g in after.incomplete] == [why]
    assert {r.start_ms for r in after.rows if r.incomplete} == {busy}
    store.close()


def _listed(store: MemcachedStore, layout: Layout, block: tuple[int, int]) -> list[int]:
    from tui.store.codec import decode_head

    raw = store.get_many([layout.head_key(block)])[layout.head_key(block)]
    return decode_head(raw, layout.shards, block[0]).shards["review"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"step": "7s"}, "--step: 7s is not a whole number of 10 s buckets"),
        ({"step": "fast"}, "--step: expected a duration such as 10s, 1m, 10m or 1h, got 'fast'"),
        ({"start": "yesterday"}, "--from: expected now, a relative time such as -2h or -90m, or an ISO-8601 time, got 'yesterday'"),
        ({"end": "+1h"}, "--to: expected now, a relative time such as -2h or -90m, or an ISO-8601 time, got '+1h'"),
        ({"end": "2030-01-01T00:00:00Z"}, "--to: '2030-01-01T00:00:00Z' is in the future; the latest is the end of the current step"),
        ({"start": "-1h", "end": "-2h"}, "--from: '-1h' is not before --to '-2h'"),
        ({"types": ["signups"]}, "--type: unknown event type 'signups'; use one of signup, user-event, review"),
        ({"tracking_ids": ["a b"]}, "--tracking-id: 'a b' contains whitespace"),
        ({"group_by": "site"}, "--group-by: unknown column 'site'; use type, tracking_id or type,tracking_id"),
        ({"start": "-7d", "step": "10s"}, "--step: 10s over that range is 60,481 steps; at most 10,000 (use a coarser step or a shorter range)"),
    ],
)
def test_bad_parameters_are_refused_naming_the_flag(params: dict[str, object], message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(QueryParams(**params), NOW, 10)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_iso_times_are_utc_unless_an_offset_is_given() -> None:
    plain = parse_query(QueryParams(start="2023-11-14T22:00:00", end="2023-11-14T23:00:00", step="1h"), NOW, 10)
    offset = parse_query(QueryParams(start="2023-11-14T23:00:00+01:00", end="2023-11-14T23:00:00Z", step="1h"), NOW, 10)
    assert plain.start_ms == offset.start_ms == 1_699_999_200_000
    assert list(plain.steps) == [1_699_999_200_000]


def test_a_value_that_changes_is_read_anew_not_from_the_decode_cache(memcached: MemcachedServer) -> None:
    """Decoded values are remembered by their bytes: a block written again must give the new count."""
    store = MemcachedStore([memcached.server], "c:")
    stamp = int(NOW * 1000) - 7_200_000
    layout = write_events(store, [(stamp, "signup", "INF-a1")], NOW, writer="w1")
    query = parse_query(QueryParams(start="-3h", step="1h", types=["signup"], tracking_ids=["INF-a1"]), NOW, 10)
    assert sum(r.count for r in run_query(store, layout, query, NOW).rows) == 1
    write_events(store, [(stamp, "signup", "INF-a1")] * 2, NOW, writer="w2")
    assert sum(r.count for r in run_query(store, layout, query, NOW).rows) == 3
    store.close()


def test_an_answer_over_the_row_limit_is_refused_naming_group_by(history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tui.history.aggregate.MAX_ROWS", 1_000)
    with pytest.raises(QueryError, match=r"^--group-by: the answer would be at least \d+ groups x 301 steps; at most 1,000 rows") as caught:
        ask(history, start="-50m", step="10s", group_by="type,tracking_id")
    assert caught.value.param == "group_by"
