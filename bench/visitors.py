"""Distinct visitors through the store (issue 13): accuracy, ingest cost, reads, merge and bytes of
the HLL sketches, each on the real path (Writer -> memcached -> Reader) and against a baseline
from the same run; the ingest cost also through a real ``eventdash serve`` (HTTP, spool, decoding,
writer), with sketches and without. Run by ``bench/run.py`` (section ``visitors``, rows 16-20) or alone:

    python bench/visitors.py            # quick: about 20 minutes on 2 cores
    python bench/visitors.py --smoke    # tiny sizes, seconds: checks the bench runs and is right

It starts its own memcached on a free loopback port (tests.conftest.MemcachedServer) and stops it.
Every load loop is bounded by a count of events (and a deadline); nothing leaves 127.0.0.1. ``bench/sketch.py``
measures the sketch alone, in process (lg_k trade-off, sizes); this file reuses its ``lg_k_choice``
and ``sizes`` rows.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import cProfile
import gc
import importlib.metadata
import io
import json
import multiprocessing as mp
import os
import pstats
import random
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
from bench.http_load import closed_loop, post_request  # noqa: E402
from bench.stats import pct, summary  # noqa: E402



from bench.sketch import sizes, window_error  # noqa: E402
from tests.conftest import MemcachedServer, all_keys, free_port  # noqa: E402
from tests.proc import Eventdash  # noqa: E402
from tui import EVENT_TYPES  # noqa: E402
from tui.clock import Clock, FakeClock  # noqa: E402
from tui.distinct import sketch as sk  # noqa: E402
from tui.distinct.batch import SIGNUPS  # noqa: E402
from tui.events import TYPE_WEIGHTS, generated_ids, iso_ms, zipf_cdf  # noqa: E402
from tui.ingest.decode import Decoder, IngestEvent, hash_email  # noqa: E402
from tui.service.app import INGEST_PATH as INGEST  # noqa: E402
from tui.pipeline.prefix import PrefixLayout  # noqa: E402
from tui.pipeline.reader import Reader  # noqa: E402
from tui.pipeline.writer import Writer  # noqa: E402
from tui.settings import MemcachedSettings, Server, Settings  # noqa: E402
from tui.store import MemcachedStore, MemoryStore, Store  # noqa: E402
from tui.store.sketch_reads import sketch_keys  # noqa: E402
from tui.visitors import Visitors  # noqa: E402
from tui.window import Block  # noqa: E402

TYPES = tuple(t for t in EVENT_TYPES for _ in range(TYPE_WEIGHTS[t]))
SALT = b"bench-visitors-salt"
ZIPF = 1.1


@dataclass(frozen=True)
class Plan:
    name: str
    #: accuracy: distinct visitors -> (seeds, store); "memcached" or "memory"
    accuracy: tuple[tuple[int, int, str], ...]
    #: cost: events per run, repeats (each repeat runs both modes, interleaved), id counts
    cost_events: int
    cost_repeats: int
    cost_ids: tuple[int, ...]
    #: cost over HTTP (``eventdash serve``): events per run (the repeats and id counts of the above)
    http_events: int
    #: reads: (ids, events per minute per id) filled over ``fill_hours``; one-id reads per window
    read_ids: tuple[tuple[int, int], ...]
    read_iterations: int
    fill_hours: float
    #: merge: events, simulated seconds
    merge_events: int
    merge_seconds: int
    #: bench/sketch.py's lg_k trade-off: (distinct, seeds)
    choice: tuple[int, int]


PLANS = {
    "smoke": Plan("smoke", ((100, 3, "memcached"), (10_000, 2, "memcached")), 20_000, 1, (10, 1_000), 2_000, ((10, 30), (100, 3)), 20, 2.0, 8_000, 20, (10_000, 2)),
    "quick": Plan(
        "quick", ((100, 20, "memcached"), (10_000, 20, "memcached"), (1_000_000, 20, "memcached")),
        1_000_000, 3, (10, 100_000), 400_000, ((10, 120), (1_000, 3)), 500, 24.0, 400_000, 240, (100_000, 20),
    ),
}
PLANS["full"] = PLANS["quick"]




def settings_for(port: int, prefix: str, window_minutes: float = 5) -> Settings:
    return Settings(window_minutes=window_minutes, backend="memcached", memcached=MemcachedSettings((Server("127.0.0.1", port),), prefix))


@dataclass
class Engine:
    """A writer and a reader over one prefix, as a Pipeline wires them (without its generator)."""

    writer: Writer
    reader: Reader
    store: Store

    def close(self) -> None:
        self.store.close()


def engine(store: Store, settings: Settings, clock: Clock | None = None, writer_id: str | None = None, count_visitors: bool = True) -> Engine:
    prefix = PrefixLayout(store, settings)
    writer = Writer(settings, store, prefix, clock=clock, writer_id=writer_id, count_visitors=count_visitors)
    return Engine(writer, Reader(settings, store, prefix, clock), store)


def memcached_engine(port: int, prefix: str, window_minutes: float = 5, clock: Clock | None = None, timeout: float = 1.0, **kw: Any) -> Engine:
    store = MemcachedStore([Server("127.0.0.1", port)], prefix, timeout=timeout)
    return engine(store, settings_for(port, prefix, window_minutes), clock, **kw)


def relative(estimate: float, truth: int) -> float:
    return abs(estimate - truth) / truth


# -- realistic visitors ------------------------------------------------------------------------------


def visitor_events(ids: Sequence[str], count: int, span_ms: int, end_ms: int, seed: int, zipf: bool) -> list[IngestEvent]:
    """``count`` events over ``ids`` (uniform, or Zipf 1.1 as bench/store_v2.py), stamped in order over
    ``span_ms`` up to ``end_ms``, each from a visitor of :class:`tui.visitors.Visitors` (per-site
    pools sized by the rate, sessions of about 5 events); signups carry the keyed hash of the
    visitor's e-mail, as the ingest decoder gives."""
    rate = count / (span_ms / 1000)
    cdf = zipf_cdf(len(ids), ZIPF) if zipf else None
    weights = [b - a for a, b in zip([0.0, *cdf], cdf)] if cdf else None
    visitors = Visitors(len(ids), rate, seed=seed, weights=weights)
    rng = random.Random(seed)
    random_, n, last = rng.random, len(ids), len(ids) - 1
    start = end_ms - span_ms
    emails: dict[str, int] = {}
    out = []
    for i in range(count):
        site = min(bisect.bisect_right(cdf, random_()), last) if cdf else int(random_() * n)
        etype = TYPES[int(random_() * 10)]
        visit = visitors.visit(site)
        email = None
        if etype == "signup":
            email = emails.get(visit.email)
            if email is None:
                email = emails[visit.email] = hash_email(visit.email, SALT)
        out.append(IngestEvent(etype, ids[site], start + i * span_ms // count, visit.visitor_id, visit.session_id, email))
    return out


def exact_visitors(events: Sequence[IngestEvent]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in events:
        if e.visitor_id is not None:
            out.setdefault(e.tracking_id, set()).add(e.visitor_id)
    return out


def store_counts(reader: Reader, window_seconds: int) -> Counter[tuple[str, str]]:
    view = reader.read_view(window_seconds=window_seconds)
    assert not view.incomplete, view.incomplete_json()[:3]
    return Counter({(t, tid): n for t in EVENT_TYPES for tid, n in view.summary[t].by_tracking_id.items()})


# -- 1. accuracy, through the writer, memcached and the reader ---------------------------------------


def accuracy_events(distinct: int, seed: int, end_ms: int) -> list[list[IngestEvent]]:
    """Events of ``distinct`` visitors of one site over 50 minutes, in 10 s slots: each visitor
    comes at a random moment and makes a session of 1 + Poisson(1) events up to 10 s apart (so
    some sessions cross a block's edge), of random types. Visitor ids are the seed and a counter:
    DataSketches hashes them (MurmurHash3), so each seed is an independent trial."""
    rng = random.Random(f"accuracy:{seed}")
    tid = "INF-accuracy0000"
    span = 3_000_000
    slots: list[list[IngestEvent]] = [[] for _ in range(span // 10_000)]
    random_ = rng.random
    start = end_ms - span
    poisson = (0.3679, 0.7358, 0.9197, 0.981, 0.9963, 0.9994, 2.0)  # P(X <= k) of Poisson(1), by inversion
    types = TYPES
    make = IngestEvent
    for i in range(distinct):
        visitor = f"{seed}-{i}"
        at = int(random_() * (span - 70_000))
        u = random_()
        events = 1 + next(k for k, p in enumerate(poisson) if u < p)
        for _ in range(events):
            slots[at // 10_000].append(make(types[int(random_() * 10)], tid, start + at, visitor))
            at += int(random_() * 10_000)
    return slots


def accuracy_run(make_store: Callable[[FakeClock], Store], distinct: int, seed: int) -> tuple[float, float, int]:
    """One seed: feed the slots (one flush per simulated 10 s), flush everything, read the site's
    distinct visitors over the last hour; returns (relative error, estimate, exact distinct)."""
    clock = FakeClock(1_700_000_000.0)
    end_ms = int(clock.time() * 1000) + 3_000_000
    slots = accuracy_events(distinct, seed, end_ms)
    store = make_store(clock)
    eng = engine(store, Settings(window_minutes=60, backend="memory", memcached=MemcachedSettings(key_prefix=store.prefix)), clock, writer_id="acc")  # type: ignore[attr-defined]
    seen: set[str] = set()
    for slot in slots:
        eng.writer.ingest(slot)
        seen.update(e.visitor_id for e in slot)  # type: ignore[misc]
        assert eng.writer.flush()
        clock.advance(10.0)
    assert eng.writer.flush(everything=True)
    clock.advance(60.0)  # every coarse block closed and usable
    tid = slots[0][0].tracking_id if slots[0] else next(e.tracking_id for s in slots for e in s)
    read = eng.reader.read_visitors([tid], window_seconds=3_600)
    assert not read.incomplete, read.incomplete[:3]
    estimate = read.by_id[tid].value
    assert read.total is not None and read.total.value == estimate  # one site: its visitors are the total
    truth = len(seen)
    assert truth == distinct, (truth, distinct)
    eng.close()
    return relative(estimate, truth), estimate, truth


def _accuracy_seed(port: int, distinct: int, seed: int, where: str) -> float:
    if where == "memcached":
        store_of: Callable[[FakeClock], Store] = lambda _clock: MemcachedStore([Server("127.0.0.1", port)], f"acc{distinct}-{seed}:")
    else:
        store_of = lambda clock: MemoryStore(clock, key_prefix=f"acc{distinct}-{seed}:")
    return accuracy_run(store_of, distinct, seed)[0]


def bench_accuracy(port: int, plan: Plan) -> dict[str, Any]:
    """Per size, the relative error of each seed's window read against the exact set of visitor ids
    fed. The seeds run in two processes (the work is the writer's Python, not memcached's); the
    figures do not depend on timing."""
    out: dict[str, Any] = {"lg_k": sk.DEFAULT_LG_K, "bound_2sigma": sk.relative_error_bound(sk.DEFAULT_LG_K), "sizes": {}}
    with ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        for distinct, seeds, where in plan.accuracy:
            started = time.perf_counter()
            errors = list(pool.map(_accuracy_seed, [port] * seeds, [distinct] * seeds, range(seeds), [where] * seeds))
            out["sizes"][str(distinct)] = {"seeds": seeds, "store": where, "p95": pct(errors, 0.95), "max": max(errors),
                                           "mean": statistics.mean(errors), "errors": errors, "seconds": time.perf_counter() - started}
            log(f"accuracy at {distinct:,}: p95 {pct(errors, 0.95):.2%}, max {max(errors):.2%} over {seeds} seeds ({time.perf_counter() - started:.0f} s)")
    return out


def log(line: str) -> None:
    print(f"  visitors: {line}", file=sys.stderr, flush=True)


# -- 2. ingest cost: the real writer into memcached, with and without sketches -----------------------


class Phases:
    """Wall time spent in named calls (wrappers installed on objects or modules, removed by ``undo``)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        #: Items (visitor ids, e-mail hashes) hashed into sketches by the writer's flushes.
        self.items = 0
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attr: str, name: str, count: Callable[..., int] | None = None) -> None:
        """Time ``owner.attr`` under ``name``; ``count(*args)``, if given, adds to :attr:`items` (not timed)."""
        inner = getattr(owner, attr)
        had = attr in vars(owner) if not isinstance(owner, type) else True

        def timed(*args: Any, **kwargs: Any) -> Any:
            if count is not None:
                self.items += count(*args, **kwargs)
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        setattr(owner, attr, timed)
        self._undo.append(lambda: setattr(owner, attr, inner) if had else delattr(owner, attr))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


def ingest_run(
    port: int, events: Sequence[IngestEvent], prefix: str, count_visitors: bool, schedule: str = "fast",
    phases: Phases | None = None, profile: cProfile.Profile | None = None, bodies: Sequence[tuple[int, bytes]] = (),
) -> dict[str, Any]:
    """Events/s of one writer into memcached, from the first event handed in until the flush of
    everything at the end (as at exit) returned. ``schedule``:

    * ``fast``: fed 10,000 events at a time as fast as it takes them, one flush a real second (as
      bench/run.py's row 1);
    * ``live``: a FakeClock at the events' own time, fed one second of events at a time, one flush
      per simulated second, as a live writer at that rate flushes (coarse blocks on their schedule);
    * ``decoded``: as ``live``, but each second's events come as ``bodies`` (:func:`request_bodies`,
      NDJSON of 100 brief-shaped events; ``events`` is then what they decode to) through
      ``serve``'s :class:`~tui.ingest.decode.Decoder`: the work ``eventdash serve`` does per event,
      without its HTTP and spool (the same with and without sketches).

    Checked afterwards (not timed): counts exact, and the distinct visitors of the busiest ids and
    the total within the sketch's error."""
    clock = FakeClock(events[0].ts_ms // 1000) if schedule != "fast" else None
    decoder = Decoder(clock, 3_600, email_key=SALT) if clock is not None and bodies else None
    eng = memcached_engine(port, prefix, window_minutes=60, clock=clock, count_visitors=count_visitors)
    writer = eng.writer
    if phases is not None:
        instrument(phases, eng)
    flush_ms = []
    if profile is not None:
        profile.enable()
    started = last_flush = time.perf_counter()
    if clock is None:
        for start in range(0, len(events), 10_000):
            writer.ingest(events[start : start + 10_000])
            if time.perf_counter() - last_flush >= 1.0:
                began = time.perf_counter()
                assert writer.flush(), writer.status().store_error
                last_flush = time.perf_counter()
                flush_ms.append((last_flush - began) * 1000)
    elif decoder is not None:
        start = 0
        while start < len(bodies):
            clock.advance(1.0)
            end = bisect.bisect_left(bodies, int(clock.time() * 1000), lo=start, key=_FIRST)
            for _, body in bodies[start:end]:
                writer.ingest(decoder.decode(body, "application/x-ndjson").events)
            start = end
            began = time.perf_counter()
            assert writer.flush(), writer.status().store_error
            flush_ms.append((time.perf_counter() - began) * 1000)
    else:
        start = 0
        while start < len(events):
            clock.advance(1.0)
            end = bisect.bisect_left(events, int(clock.time() * 1000), lo=start, key=_TS_MS)
            writer.ingest(events[start:end])
            start = end
            began = time.perf_counter()
            assert writer.flush(), writer.status().store_error
            flush_ms.append((time.perf_counter() - began) * 1000)
    began = time.perf_counter()
    assert writer.flush(everything=True), writer.status().store_error
    ended = time.perf_counter()
    if profile is not None:
        profile.disable()
    if phases is not None:
        phases.undo()
    result = {"events_per_s": len(events) / (ended - started), "seconds": ended - started, "exit_flush_ms": (ended - began) * 1000,
              "flushes": len(flush_ms) + 1, "flush_ms_p50": statistics.median(flush_ms) if flush_ms else None}
    assert store_counts(eng.reader, 3_600) == Counter((e.type, e.tracking_id) for e in events), "ingest counts are not exact"
    if count_visitors:
        check_visitors(eng.reader, events, 3_600)
    eng.close()
    return result


_TS_MS = attrgetter("ts_ms")
_FIRST = itemgetter(0)
#: The brief's event name of each type (``click`` is one of the user-event actions).
EVENT_NAMES = {"signup": "formsubmit", "user-event": "click", "review": "review"}


def request_bodies(events: Sequence[IngestEvent], per_body: int = 100) -> list[tuple[int, bytes]]:
    """The events as ``POST /visitors/events/`` bodies: NDJSON of the brief's wrapper, ``per_body``
    each, with the time of the first; a sign-up carries an address of its visitor in ``form.email``."""
    out = []
    for start in range(0, len(events), per_body):
        chunk = events[start : start + per_body]
        lines = []
        for e in chunk:
            value: dict[str, Any] = {"trackingId": e.tracking_id, "event": EVENT_NAMES[e.type], "timestamp": iso_ms(e.ts_ms),
                                     "visitorId": e.visitor_id, "sessionId": e.session_id}
            if e.type == "signup":
                value["form"] = {"email": f"{e.visitor_id}@example.com"}
            lines.append(json.dumps({"path": "/visitors/events/", "value": value}))
        out.append((chunk[0].ts_ms, "\n".join(lines).encode()))
    return out


def check_visitors(reader: Reader, events: Sequence[IngestEvent], window_seconds: int) -> None:
    """The window's distinct visitors (busiest ids, total) against the exact sets, within 3x the 2σ
    bound (a correctness check, not the accuracy figure)."""
    exact = exact_visitors(events)
    view = reader.read_view(window_seconds=window_seconds, visitors=True)
    got = view.visitors
    assert got is not None and not got.incomplete, got and got.incomplete[:3]
    bound = 3 * sk.relative_error_bound(sk.DEFAULT_LG_K)
    for tid, estimate in got.by_id.items():
        truth = len(exact[tid])
        assert abs(estimate.value - truth) <= max(1.0, bound * truth), (tid, estimate, truth)
    truth = len(set().union(*exact.values()))
    assert got.total is not None and abs(got.total.value - truth) <= max(1.0, bound * truth), (got.total, truth)


def instrument(phases: Phases, eng: Engine) -> None:
    """Time what the sketches add to a writer (and the counts' own steps beside them)."""
    import tui.store.sketches as sketches_module

    writer = eng.writer
    phases.wrap(writer._ledger, "record", "counts: Ledger.record")
    phases.wrap(writer._distinct, "record", "sketches: DistinctBatch.record")
    phases.wrap(writer._distinct, "take_sketches", "sketches: DistinctBatch.take_sketches")
    phases.wrap(writer._sketches, "stage", "sketches: PendingSketches.stage")
    phases.wrap(writer._sketches, "forget", "sketches: PendingSketches.forget")
    phases.wrap(eng.store, "write_sketches", "sketches: Store.write_sketches (all of it)")
    phases.wrap(writer._sketches, "delta", "sketches:   compact sketches of a key (its unions' results)")
    phases.wrap(sketches_module, "merge", "sketches:   value.merge (decode, union, encode)")
    phases.wrap(eng.store, "write", "counts: Store.write (all of it)")
    phases.wrap(writer, "flush", "Writer.flush (all of it)")
    phases.wrap(eng.store, "gets_many", "memcached gets_many (counts and sketches)")
    phases.wrap(eng.store, "store_many", "memcached store_many (counts and sketches)")


SCHEDULES = ("fast", "live", "decoded")


def bench_cost(port: int, plan: Plan) -> dict[str, Any]:
    """Per id count: the same prebuilt events (realistic visitors, 60 s of traffic ending now) into
    the real writer on memcached, with sketches and without, on each schedule (:func:`ingest_run`),
    interleaved; medians and the ratio. Under the goal, one more run of each is timed by phase and
    one with sketches (live schedule) under cProfile."""
    out: dict[str, Any] = {}
    for ids_count in plan.cost_ids:
        ids = generated_ids(ids_count) if ids_count > 10 else tuple(f"INF-{i:04d}" for i in range(ids_count))
        made = time.perf_counter()
        events = visitor_events(ids, plan.cost_events, 60_000, int(time.time() * 1000), seed=ids_count, zipf=ids_count > 10)
        made = time.perf_counter() - made
        entries = len({(e.ts_ms // 10_000, e.type, e.tracking_id, e.visitor_id) for e in events})
        bodies = request_bodies(events)
        decoder = Decoder(FakeClock(events[-1].ts_ms / 1000), 3_600, email_key=SALT)
        decoded = [e for _, body in bodies for e in decoder.decode(body, "application/x-ndjson").events]
        assert len(decoded) == len(events), "a request body was rejected"
        # The prebuilt events are the bench's input, not the writer's state: out of the garbage
        # collector's passes, which would otherwise walk a million of them in every timed run.
        gc.collect()
        gc.freeze()
        result: dict[str, Any] = {
            "ids": ids_count, "events": len(events), "distinct_visitors": len({e.visitor_id for e in events}),
            "distinct_entries": entries, "ids_with_events": len({e.tracking_id for e in events}), "build_seconds": made, "exact": True,
            "prefixes": {mode: cost_prefix(ids_count, "fast", mode, 0) for mode in ("with", "without")},
        }
        for schedule in SCHEDULES:
            runs: dict[str, list[dict[str, Any]]] = {"with": [], "without": []}
            fed, given = (decoded, bodies) if schedule == "decoded" else (events, ())
            for repeat in range(plan.cost_repeats):  # interleaved: a noisy moment hits both alike
                for mode in ("with", "without") if repeat % 2 == 0 else ("without", "with"):
                    runs[mode].append(ingest_run(port, fed, cost_prefix(ids_count, schedule, mode, repeat), mode == "with", schedule, bodies=given))
            with_, without = (statistics.median(r["events_per_s"] for r in runs[m]) for m in ("with", "without"))
            part: dict[str, Any] = {"with_events_per_s": with_, "without_events_per_s": without, "ratio": with_ / without, "runs": runs}
            if with_ / without < 0.5:
                part["phases"] = phase_breakdown(port, fed, ids_count, schedule, given)
                if schedule == "live":  # cProfile doubles the run's time: the live schedule's only
                    part["profile"] = profile_run(port, events, cost_prefix(ids_count, schedule, "profile", 0), schedule)
            result[schedule] = part
            log(f"cost at {ids_count:,} ids, {schedule}: with {with_:,.0f} ev/s, without {without:,.0f} ev/s = {with_ / without:.0%}")
        out[str(ids_count)] = result
        del events, decoded, bodies
        gc.unfreeze()
    return out


def cost_prefix(ids_count: int, schedule: str, mode: str, repeat: int) -> str:
    return f"c{ids_count}{schedule[0]}{mode[0]}{mode[-1]}{repeat}:"


def phase_breakdown(port: int, events: Sequence[IngestEvent], ids_count: int, schedule: str, bodies: Sequence[tuple[int, bytes]] = ()) -> dict[str, Any]:
    """One run of each mode with the phases timed (the wrappers cost well under a µs per call, a
    few thousand calls a run); also how many items went into sketches."""
    out = {}
    for mode in ("without", "with"):
        phases = Phases()
        run = ingest_run(port, events, cost_prefix(ids_count, schedule, mode, 9), mode == "with", schedule, phases, bodies=bodies)
        out[mode] = {"seconds": run["seconds"], "phases": {k: {"seconds": v, "calls": phases.calls[k]} for k, v in sorted(phases.seconds.items())},
                     "items_hashed": phases.items}
    return out


def profile_run(port: int, events: Sequence[IngestEvent], prefix: str, schedule: str) -> str:
    """cProfile of one run with sketches: the top functions by their own time."""
    profile = cProfile.Profile()
    ingest_run(port, events, prefix, True, schedule, profile=profile)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
    return "\n".join(line for line in text.getvalue().splitlines() if line.strip())[:6000]


# -- 3. reads: one id's distinct visitors at 5 min and 24 h, on a day of blocks ----------------------


#: Ids whose distinct visitors a read bench checks against the exact sets.
CHECKED_IDS = 20
#: Windows of the read bench: label -> seconds.
READ_WINDOWS = {"5min": 300, "24h": 86_400}
#: The one-id distinct reads timed, as the read API asks them: ``/api/v1/live?tracking_id=`` unites
#: every type's visitors; ``/api/v1/summary/{type}?tracking_id=…&distinct=visitors`` reads one type's
#: (user-event, the busiest), ``distinct=signups`` the distinct sign-up e-mails.
READ_SERIES: dict[str, tuple[str, ...]] = {"every type": EVENT_TYPES, "user-event": ("user-event",), "signups": (SIGNUPS,)}
#: A read comes this long after the fill's last flush: the last coarse blocks are then readable.
SETTLE_SECONDS = 30.0


def fill_day(port: int, prefix: str, ids: Sequence[str], per_minute: int, hours: float, clock: FakeClock) -> tuple[int, dict[str, dict[str, set[str]]]]:
    """A writer fed ``per_minute`` events a minute per id (realistic visitors) while the clock moves
    through ``hours``, flushing every 3 simulated hours and everything at the end, as at exit. The
    store then holds what a live writer leaves with the default retention: single buckets for the
    last hour, 1-minute and 10-minute blocks for the day, 1-hour blocks. (Single buckets already
    past their 1 h retention at a flush are not written: no 24 h read uses them.)

    Returns the number of events and, per window of :data:`READ_WINDOWS` ending
    :data:`SETTLE_SECONDS` after the fill, the exact visitor sets of the first :data:`CHECKED_IDS`
    ids. The events themselves are not kept: millions of live objects would make the garbage
    collector's full passes part of every timed read."""
    # A flush of 3 simulated hours at 1,000 ids is one pipelined write of ~100,000 values: more than
    # the default 1 s socket timeout. (Not measured; the reads use the defaults.)
    eng = memcached_engine(port, prefix, window_minutes=1440, clock=clock, timeout=60.0, writer_id="fill")
    minutes = int(hours * 60)
    end_ms = int((clock.time() + minutes * 60 + SETTLE_SECONDS) * 1000)
    since = {label: end_ms - seconds * 1000 for label, seconds in READ_WINDOWS.items()}
    checked = set(ids[:CHECKED_IDS])
    exact: dict[str, dict[str, set[str]]] = {label: {tid: set() for tid in checked} for label in READ_WINDOWS}
    per_batch = per_minute * len(ids)
    visitors = Visitors(len(ids), per_batch / 60, seed=len(ids))
    rng = random.Random(len(ids))
    random_ = rng.random
    emails: dict[str, int] = {}
    count = 0
    for _ in range(minutes):
        now_ms = int(clock.time() * 1000)
        batch = []
        for k in range(per_batch):
            site = k % len(ids)
            etype = TYPES[int(random_() * 10)]
            visit = visitors.visit(site)
            email = None
            if etype == "signup":
                email = emails.get(visit.email) or emails.setdefault(visit.email, hash_email(visit.email, SALT))
            batch.append(IngestEvent(etype, ids[site], now_ms + k * 60_000 // per_batch, visit.visitor_id, visit.session_id, email))
        eng.writer.ingest(batch)
        count += len(batch)
        for label, start in since.items():
            for e in batch:
                if e.ts_ms >= start and e.tracking_id in checked:
                    exact[label][e.tracking_id].add(e.visitor_id)  # type: ignore[arg-type]
        clock.advance(60.0)
        if int(clock.time()) % 10_800 < 60:
            assert eng.writer.flush(), eng.writer.status().store_error
    assert eng.writer.flush(everything=True), eng.writer.status().store_error
    eng.close()
    clock.advance(SETTLE_SECONDS)
    return count, exact


def bench_reads(port: int, plan: Plan) -> dict[str, Any]:
    """Per id count: fill a day, then time (a) one id's distinct visitors (``read_visitors``) at 5 min
    and 24 h against the same id's count of one type (``read_one``, issue 10's one-id read) in the
    same run, interleaved, and (b) the window read with and without the visitors (``read_view``)."""
    out: dict[str, Any] = {}
    for ids_count, per_minute in plan.read_ids:
        ids = generated_ids(ids_count)
        clock = FakeClock(1_700_000_000.0)
        prefix = f"rd{ids_count}:"
        started = time.perf_counter()
        count, exact = fill_day(port, prefix, ids, per_minute, plan.fill_hours, clock)
        filled = time.perf_counter() - started
        gc.collect()
        eng = memcached_engine(port, prefix, window_minutes=5, clock=clock, writer_id="reader")
        reader = eng.reader
        result: dict[str, Any] = {"ids": ids_count, "per_minute": per_minute, "events": count, "fill_seconds": filled}
        now = clock.time()
        bound = 3 * sk.relative_error_bound(sk.DEFAULT_LG_K)
        for label, seconds in READ_WINDOWS.items():
            for tid, seen in exact[label].items():
                got = reader.read_visitors([tid], window_seconds=seconds)
                assert not got.incomplete, got.incomplete[:3]
                assert abs(got.by_id[tid].value - len(seen)) <= max(2.0, bound * len(seen)), (label, tid, got.by_id[tid], len(seen))
                for series in READ_SERIES.values():  # each series read once before it is timed, alike
                    assert not reader.read_visitors([tid], series, window_seconds=seconds, total=False, per_series=False).incomplete
            timed: dict[str, list[float]] = {name: [] for name in (*READ_SERIES, "count")}
            for i in range(plan.read_iterations):  # interleaved, one id after another
                tid = ids[i % ids_count]
                for name, series in READ_SERIES.items():  # as the read API asks
                    began = time.perf_counter()
                    reader.read_visitors([tid], series, window_seconds=seconds, total=False, per_series=False)
                    timed[name].append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                reader.read_one("user-event", tid, seconds)
                timed["count"].append((time.perf_counter() - began) * 1000)
            blocks, _ = reader._plan(reader.layout(), now, seconds)
            result[f"one_id_{label}"] = {
                "distinct_ms": summary(timed["every type"]), "count_ms": summary(timed["count"]), "blocks": len(blocks),
                "by_series_ms": {name: summary(timed[name]) for name in READ_SERIES},
                "visitors_of_first_id": len(exact[label][ids[0]]), "parts": read_parts(eng, ids, blocks, plan.read_iterations),
            }
        view_ms, plain_ms = [], []
        for _ in range(max(5, plan.read_iterations // 10)):
            began = time.perf_counter()
            view = reader.read_view(visitors=True)
            view_ms.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            reader.read_view()
            plain_ms.append((time.perf_counter() - began) * 1000)
        assert view.visitors is not None and not view.visitors.incomplete
        result["read_view_5min"] = {"visitors_ms": summary(view_ms), "plain_ms": summary(plain_ms), "ids_read": len(view.visitors.by_id)}
        eng.close()
        out[str(ids_count)] = result
        log(f"reads at {ids_count:,} ids: 24 h one id p99 {result['one_id_24h']['distinct_ms']['p99']:.2f} ms (filled in {filled:.0f} s)")
    return out


def read_parts(eng: Engine, ids: Sequence[str], blocks: list[Block], iterations: int) -> dict[str, dict[str, float]]:
    """Where a one-id distinct read's time goes, as ``Reader.read_visitors`` does it: the blocks'
    heads and the id's sketch values in one round trip, then its sketches found, checked and
    united (after the timed reads of the same ids: what the reader keeps of them is warm)."""
    layout, store = eng.reader.layout(), eng.store
    fetch_ms, unite_ms = [], []
    for i in range(iterations):
        tid = ids[i % len(ids)]
        keys = sketch_keys(layout, blocks, EVENT_TYPES, [tid], False)
        began = time.perf_counter()
        found = store.read(layout, blocks, ids=False, also=list(keys.values()))
        fetch_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        store.read_visitors(layout, blocks, EVENT_TYPES, [tid], found, total=False, per_series=False, keys=keys)
        unite_ms.append((time.perf_counter() - began) * 1000)
    return {"heads_and_sketch_values_ms": summary(fetch_ms), "sketches_found_checked_united_ms": summary(unite_ms)}


# -- 4. merge: 8 writers' sketches against one writer's ----------------------------------------------


def bench_merge(port: int, plan: Plan) -> dict[str, Any]:
    """The same events into 8 writers (distinct writer ids, one prefix; event i to writer i % 8, so a
    visitor's events reach several writers) and into one writer (another prefix), one flush per
    simulated second each, then everything; the 5-minute window's distinct visitors of every id and
    in total, from each prefix, against the exact sets."""
    clock = FakeClock(1_700_000_000.0)
    ids = tuple(f"INF-{i:04d}" for i in range(10))
    end_ms = int(clock.time() * 1000) + plan.merge_seconds * 1000
    events = visitor_events(ids, plan.merge_events, plan.merge_seconds * 1000, end_ms, seed=8, zipf=False)
    many = [memcached_engine(port, "m8:", clock=clock, writer_id=f"w{i}") for i in range(8)]
    solo = memcached_engine(port, "m1:", clock=clock, writer_id="solo")
    per_second = plan.merge_events // plan.merge_seconds
    for second in range(plan.merge_seconds):
        batch = events[second * per_second : (second + 1) * per_second]
        clock.advance(1.0)  # the clock is past every event of this second
        for w, eng in enumerate(many):
            eng.writer.ingest(batch[w::8])
            assert eng.writer.flush()
        solo.writer.ingest(batch)
        assert solo.writer.flush()
    for eng in (*many, solo):
        assert eng.writer.flush(everything=True)
    clock.advance(30.0)
    united, alone = (e.reader.read_visitors(list(ids), window_seconds=300) for e in (many[0], solo))
    assert not united.incomplete and not alone.incomplete
    exact = exact_visitors(events)
    rows = {tid: {"eight": united.by_id[tid].value, "one": alone.by_id[tid].value, "exact": len(exact[tid])} for tid in ids}
    truth = len(set().union(*exact.values()))
    for eng in (*many, solo):
        eng.close()
    return {
        "events": len(events), "ids": len(ids), "writers": 8, "by_id": rows,
        "total": {"eight": united.total.value, "one": alone.total.value, "exact": truth},  # type: ignore[union-attr]
        "identical": united.by_id == alone.by_id and united.total == alone.total and united.by_series == alone.by_series,
        "max_id_difference": max(abs(r["eight"] - r["one"]) for r in rows.values()),
        "max_id_error": max(relative(r["one"], r["exact"]) for r in rows.values()),
    }


# -- 2b. the same cost through eventdash serve: HTTP, spool, decoding, the writer ----------------------


#: ``python -c`` of the ``eventdash`` command with sketches off, the baseline of :func:`bench_http_cost`:
#: its writer keeps none (``count_visitors=False``, :func:`ingest_run`'s baseline) and its publisher
#: reads none into the summary keys. No setting turns them off; this is the bench's own.
WITHOUT_SKETCHES = (
    "from tui.pipeline.reader import Reader\n"
    "from tui.pipeline.writer import Writer\n"
    "writer_init, refresh = Writer.__init__, Reader.refresh\n"
    "Writer.__init__ = lambda self, *a, **k: writer_init(self, *a, **{**k, 'count_visitors': False})\n"
    "Reader.refresh = lambda self, series=False, visitors=True: refresh(self, series, visitors=False)\n"
    "from tui.cli import main\n"
    "raise SystemExit(main())\n"
)
#: Concurrent connections of the HTTP client; the bound of one HTTP run, in seconds.
HTTP_CONNECTIONS = 8
HTTP_DEADLINE = 600.0


def serve_metrics(port: int) -> dict[str, float]:
    """``serve``'s /metrics, the samples without labels, by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {name: float(value) for name, _, value in (line.partition(" ") for line in text.splitlines() if line and not line.startswith("#") and "{" not in line)}


def http_ingest_run(mc: int, bodies: Sequence[tuple[int, bytes]], events: Sequence[IngestEvent], prefix: str, with_sketches: bool, tmp: Path) -> dict[str, Any]:
    """Events/s into a real ``eventdash serve`` (its spool, decoder and writer, one memcached),
    from the first request until its metrics say every event is in the store (accepted, and none
    left in the spool); ``bodies`` posted once each as NDJSON over :data:`HTTP_CONNECTIONS` keep-alive
    connections. Afterwards (not timed): every body answered 202 with all its events accepted, a
    clean stop, the counts exact and, with sketches, the visitors within the sketch's error."""
    port = free_port()
    args = ("serve", "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp / prefix.rstrip(":")), "--backend", "memcached",
            "--memcached", f"127.0.0.1:{mc}", "--key-prefix", prefix, "--window-minutes", "60", "--email-salt", SALT.decode(), "--no-anomalies")
    serve = Eventdash(*args) if with_sketches else Eventdash(*args, python=("-c", WITHOUT_SKETCHES))
    accepted: list[int] = []
    try:
        serve.wait_for("serve: listening on", timeout=60)
        requests = [post_request(INGEST, body, port, "application/x-ndjson") for _, body in bodies]
        started = time.monotonic()
        loop = asyncio.run(closed_loop(port, requests, HTTP_DEADLINE, HTTP_CONNECTIONS, lambda i, status, body: accepted.append(json.loads(body)["accepted"] if status == 202 else -status)))
        posted = time.monotonic()
        deadline = posted + HTTP_DEADLINE
        while (m := serve_metrics(port))["eventdash_events_accepted_total"] < len(events) or m["eventdash_spool_depth_events"] > 0:
            assert time.monotonic() < deadline, f"serve did not store {len(events):,} events within {HTTP_DEADLINE:.0f} s: {m}"
            time.sleep(0.02)  # polling serve's progress, which no event of this process can signal
        counted = time.monotonic()
    finally:
        code = serve.stop(signal.SIGTERM, timeout=120)
    assert code == 0, f"serve exited {code}: {serve.text('stderr')[-1500:]}"
    assert loop.errors == 0 and sum(accepted) == len(events) and min(accepted) > 0, (loop.wrk_json(), sorted(set(accepted))[:5])
    eng = memcached_engine(mc, prefix, window_minutes=60)
    assert store_counts(eng.reader, 3_600) == Counter((e.type, e.tracking_id) for e in events), "HTTP ingest counts are not exact"
    if with_sketches:
        check_visitors(eng.reader, events, 3_600)
    eng.close()
    return {"events_per_s": len(events) / (counted - started), "seconds": counted - started, "posting_seconds": posted - started,
            "requests": loop.requests}


def bench_http_cost(port: int, plan: Plan) -> dict[str, Any]:
    """Per id count: the same prebuilt request bodies (realistic visitors, 100 events each) into
    ``eventdash serve`` with sketches and without (:data:`WITHOUT_SKETCHES`), interleaved, each
    into its own prefix (:func:`http_ingest_run`); medians and the ratio: the cost of sketches as
    an event's whole ingest pays it."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="eventdash-http-cost-") as scratch:
        for ids_count in plan.cost_ids:
            ids = generated_ids(ids_count) if ids_count > 10 else tuple(f"INF-{i:04d}" for i in range(ids_count))
            events = visitor_events(ids, plan.http_events, 60_000, int(time.time() * 1000), seed=ids_count, zipf=ids_count > 10)
            bodies = request_bodies(events)
            decoder = Decoder(FakeClock(events[-1].ts_ms / 1000), 3_600, email_key=SALT)
            decoded = [e for _, body in bodies for e in decoder.decode(body, "application/x-ndjson").events]
            runs: dict[str, list[dict[str, Any]]] = {"with": [], "without": []}
            for repeat in range(plan.cost_repeats):
                for mode in ("with", "without") if repeat % 2 == 0 else ("without", "with"):
                    prefix = f"h{ids_count}{mode[0]}{mode[-1]}{repeat}:"
                    runs[mode].append(http_ingest_run(port, bodies, decoded, prefix, mode == "with", Path(scratch)))
            with_, without = (statistics.median(r["events_per_s"] for r in runs[m]) for m in ("with", "without"))
            out[str(ids_count)] = {"ids": ids_count, "events": len(events), "with_events_per_s": with_, "without_events_per_s": without,
                                   "ratio": with_ / without, "runs": runs}
            log(f"HTTP cost at {ids_count:,} ids: with {with_:,.0f} ev/s, without {without:,.0f} ev/s = {with_ / without:.0%}")
    return out


# -- 5. storage: bytes of the sketch keys against the count keys of the same run ---------------------


def bench_storage(port: int, cost: dict[str, Any]) -> dict[str, Any]:
    """For each cost run with sketches (its first repeat's prefix): key + value bytes of its sketch
    keys (``Pd…``) and of its count keys (``Ph…`` heads and ``Ps…`` shards), as memcached holds them."""
    stored = all_keys(port)
    out: dict[str, Any] = {}
    for ids_count, run in cost.items():
        prefix = run["prefixes"]["with"]
        sums: Counter[str] = Counter()
        items: Counter[str] = Counter()
        for key, value in stored.items():
            if key.startswith(prefix):
                kind = key[len(prefix)]
                group = "sketches" if kind == "d" else "counts" if kind in "hs" else "other"
                sums[group] += len(key) + len(value)
                items[group] += 1
        out[ids_count] = {"bytes": dict(sums), "items": dict(items), "ratio": sums["sketches"] / sums["counts"],
                          "events": run["events"], "ids_with_events": run["ids_with_events"], "distinct_entries": run["distinct_entries"]}
    out["per_id_per_block"] = [{"row": name, "figure": figure} for name, figure in sizes(sk.DEFAULT_LG_K)]
    return out


def lg_k_rows(distinct: int, seeds: int) -> list[dict[str, Any]]:
    """bench/sketch.py's trade-off (its ``window_error``: ``distinct`` visitors over 12 block sketches,
    united), per lg_k: p95 error over the seeds, the 2σ bound, the bytes of a dense sketch."""
    out = []
    for lg_k in (11, 12, 13, 14):
        errors = [window_error(distinct, seed, lg_k) for seed in range(seeds)]
        out.append({"lg_k": lg_k, "distinct": distinct, "seeds": seeds, "p95": pct(errors, 0.95), "bound": sk.relative_error_bound(lg_k),
                    "dense_bytes": len(sk.sketch_of(map(str, range(distinct)), lg_k))})
    return out


# -- the run and its rows ----------------------------------------------------------------------------


def run(mode: str) -> dict[str, Any]:
    """Every figure of ``mode`` (smoke, quick, full): what bench/run.py puts in the table."""
    plan = PLANS[mode]
    server = MemcachedServer(memory_mb=2048)
    server.start()
    results: dict[str, Any] = {"mode": mode, "lg_k": sk.DEFAULT_LG_K, "datasketches": importlib.metadata.version("datasketches"),
                               "load_average_at_start": os.getloadavg()}
    try:
        for name, measure in (
            ("cost", lambda: bench_cost(server.port, plan)),
            ("http_cost", lambda: bench_http_cost(server.port, plan)),
            ("storage", lambda: bench_storage(server.port, results["cost"])),
            ("merge", lambda: bench_merge(server.port, plan)),
            ("reads", lambda: bench_reads(server.port, plan)),
            ("accuracy", lambda: bench_accuracy(server.port, plan)),
            ("lg_k_choice", lambda: lg_k_rows(*plan.choice)),
        ):
            started = time.monotonic()
            results[name] = measure()
            log(f"{name} done in {time.monotonic() - started:.0f} s")
        results["load_average_at_end"] = os.getloadavg()
        stats = MemcachedStats(server.port)
        results["memcached"] = {"evictions": stats["evictions"], "bytes": stats["bytes"]}
        assert stats["evictions"] == 0, "memcached evicted values during the bench: the figures would not be whole"
    finally:
        server.stop()
    return results


def MemcachedStats(port: int) -> dict[str, int]:
    from pymemcache.client.base import Client

    client = Client(("127.0.0.1", port))
    try:
        return {k.decode(): int(v) for k, v in client.stats().items() if k in (b"evictions", b"bytes", b"curr_items")}
    finally:
        client.close()


Row = tuple[str, str, str, str, str, bool]


def rows(r: dict[str, Any]) -> list[Row]:
    """Issue 13's goals, in bench/run.py's table format: (figure, eventdash, baseline, ratio, goal, met)."""
    acc, cost, reads, merge, storage = r["accuracy"], r["cost"], r["reads"], r["merge"], r["storage"]
    out: list[Row] = []
    for n, (distinct, a) in enumerate(acc["sizes"].items()):
        out.append((
            f"{'16. ' if n == 0 else '   '}distinct visitors: relative error at {int(distinct):,}, {a['seeds']} seeds (writer → {a['store']} → reader)",
            f"p95 {a['p95']:.2%}, max {a['max']:.2%}", f"sketch's 2σ bound {acc['bound_2sigma']:.2%}", "", "p95 ≤ 3 %", a["p95"] <= 0.03,
        ))
    choice = {row["lg_k"]: row for row in r["lg_k_choice"]}
    ours, smaller = choice[acc["lg_k"]], choice.get(acc["lg_k"] - 1)
    out.append((
        f"   sketch size: lg_k {acc['lg_k']}, at {ours['distinct']:,} distinct, {ours['seeds']} seeds (bench/sketch.py)",
        f"p95 {ours['p95']:.2%}, dense sketch {ours['dense_bytes']:,} B",
        f"lg_k {smaller['lg_k']}: p95 {smaller['p95']:.2%} (2σ bound {smaller['bound']:.2%}), {smaller['dense_bytes']:,} B" if smaller else "", "",
        f"(the smallest lg_k whose 2σ bound, {ours['bound']:.2%}, is under 3 %)", True,
    ))
    first = True
    for ids, h in r["http_cost"].items():
        out.append((
            f"{'17. ' if first else '   '}ingest with sketches, {int(ids):,} ids{' (Zipf)' if int(ids) > 10 else ''}, {h['events']:,} events, "
            "over HTTP into eventdash serve until stored", f"{h['with_events_per_s']:,.0f} ev/s",
            f"without sketches: {h['without_events_per_s']:,.0f} ev/s", f"{h['ratio']:.0%}", "≥ 50 %", h["ratio"] >= 0.5,
        ))
        first = False
    for ids, c in cost.items():
        for schedule, how in (("fast", "fed at full speed"), ("live", "one flush per simulated second"),
                              ("decoded", "as serve: decoded from request bodies, one flush per simulated second")):
            part = c[schedule]
            out.append((
                f"{'17. ' if first else '   '}ingest with sketches, {int(ids):,} ids{' (Zipf)' if int(ids) > 10 else ''}, {c['events']:,} events, {how}",
                f"{part['with_events_per_s']:,.0f} ev/s", f"without sketches: {part['without_events_per_s']:,.0f} ev/s", f"{part['ratio']:.0%}",
                "(reported: the writer alone; the goal is the ingest above)", True,
            ))
            first = False
    for n, (ids, v) in enumerate(reads.items()):
        for label, name in (("5min", "5 min"), ("24h", "24 h")):
            one = v[f"one_id_{label}"]
            for series, (what, goal) in READ_ROWS.items():
                took = one["by_series_ms"][series]
                out.append((
                    f"{'18. ' if n == 0 and label == '5min' and series == 'user-event' else '   '}one id's {what}, {name} ({one['blocks']} blocks), "
                    f"{int(ids):,} ids × {v['per_minute']} ev/min", f"p50 {took['p50']:.2f} / p99 {took['p99']:.2f} ms",
                    f"one id's count: p99 {one['count_ms']['p99']:.2f} ms", f"{took['p99'] / one['count_ms']['p99']:.1f}×",
                    "p99 ≤ 2 ms" if goal or label == "5min" else "(reported: live is over 7 min)", took["p99"] <= 2 or not (goal or label == "5min"),
                ))
        rv = v["read_view_5min"]
        out.append((
            f"   read_view(visitors=True), 5 min, {int(ids):,} ids", f"p50 {rv['visitors_ms']['p50']:.1f} / p99 {rv['visitors_ms']['p99']:.1f} ms",
            f"without visitors: p50 {rv['plain_ms']['p50']:.1f} ms", f"{rv['visitors_ms']['p50'] / rv['plain_ms']['p50']:.1f}×", "(reported)", True,
        ))
    t = merge["total"]
    out.append((
        f"19. merge: 8 writers vs 1, {merge['events']:,} events, {merge['ids']} ids", f"total {t['eight']:,.0f}; identical: {'yes' if merge['identical'] else 'no'}",
        f"1 writer: {t['one']:,.0f} (exact {t['exact']:,})", "", "same estimate within the sketch's error",
        merge["identical"] or abs(t["eight"] - t["one"]) <= t["one"] * acc["bound_2sigma"],
    ))
    for n, (ids, s) in enumerate((k, v) for k, v in storage.items() if k != "per_id_per_block"):
        out.append((
            f"{'20. ' if n == 0 else '   '}memcached bytes of sketch keys, {int(ids):,} ids, {s['events']:,} events", f"{s['bytes'].get('sketches', 0):,} B in {s['items'].get('sketches', 0):,} keys",
            f"count keys: {s['bytes'].get('counts', 0):,} B in {s['items'].get('counts', 0):,} keys", f"{s['ratio']:.2f}×", "(reported)", True,
        ))
    for row in storage["per_id_per_block"][:3]:
        out.append((f"   {row['row']}", row["figure"], "", "", "(documented)", True))
    return out


#: The rows of each one-id read of :data:`READ_SERIES`: (what it reads, whether the goal holds at
#: 24 h too). ``live`` answers over the last 7 minutes (``live_minutes``): its 24 h row is reported.
READ_ROWS = {
    "user-event": ("distinct visitors of one type (distinct=visitors)", True),
    "signups": ("distinct sign-ups (distinct=signups)", True),
    "every type": ("visitors of every type (live)", False),
}


def table(r: dict[str, Any]) -> str:
    lines = ["| figure | eventdash | baseline (same run) | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for name, ours, base, ratio, goal, met in rows(r):
        lines.append(f"| {name.strip()} | {ours} | {base} | {ratio} | {goal} | {'yes' if met else '**no**'} |")
    return "\n".join(lines)


def describe(r: dict[str, Any]) -> str:
    """The details beside the table: per-run rates, the phase times and the profile, if taken."""
    lines = []
    for ids, c in r["cost"].items():
        lines.append(f"cost at {int(ids):,} ids: {c['events']:,} events, {c['distinct_visitors']:,} distinct visitors, "
                     f"{c['distinct_entries']:,} distinct (bucket, type, id, visitor), {c['ids_with_events']:,} ids with events")
        for schedule in SCHEDULES:
            part = c[schedule]
            lines.append(f"  {schedule} schedule: with sketches {part['with_events_per_s']:,.0f} ev/s, without {part['without_events_per_s']:,.0f} ev/s = {part['ratio']:.1%}")
            for mode in ("with", "without"):
                lines.append(f"    {mode:>7} sketches: " + ", ".join(
                    f"{x['events_per_s']:,.0f} ev/s ({x['flushes']} flushes, exit flush {x['exit_flush_ms']:.0f} ms)" for x in part["runs"][mode]))
            if "phases" in part:
                for mode in ("without", "with"):
                    p = part["phases"][mode]
                    items = f", {p['items_hashed']:,} items hashed into sketches" if p["items_hashed"] else ""
                    lines.append(f"    phases, {mode} sketches (one run: {p['seconds']:.2f} s{items}):")
                    for name, v in sorted(p["phases"].items()):
                        lines.append(f"      {name:<62} {v['seconds']:7.3f} s  {v['seconds'] / p['seconds']:6.1%}  ({v['calls']:,} calls)")
            if "profile" in part:
                lines.append("    cProfile of one run with sketches (own time, top 25):")
                lines.extend("      " + line for line in part["profile"].splitlines())
    for ids, h in r["http_cost"].items():
        lines.append(f"over HTTP at {int(ids):,} ids ({h['events']:,} events): with sketches {h['with_events_per_s']:,.0f} ev/s, without {h['without_events_per_s']:,.0f} ev/s = {h['ratio']:.1%}")
        for mode in ("with", "without"):
            lines.append(f"    {mode:>7} sketches: " + ", ".join(f"{x['events_per_s']:,.0f} ev/s (posted in {x['posting_seconds']:.1f} s, stored in {x['seconds']:.1f} s)" for x in h["runs"][mode]))
    m = r["merge"]
    lines.append("merge by id (8 writers / 1 writer / exact): " + "; ".join(f"{t} {v['eight']:,.1f}/{v['one']:,.1f}/{v['exact']:,}" for t, v in m["by_id"].items()))
    for distinct, a in r["accuracy"]["sizes"].items():
        lines.append(f"accuracy at {int(distinct):,}: errors " + ", ".join(f"{e:.2%}" for e in a["errors"]) + f" ({a['seconds']:.0f} s)")
    lines.extend(f"lg_k {row['lg_k']} at {row['distinct']:,} distinct, {row['seeds']} seeds: p95 {row['p95']:.2%} (2σ bound {row['bound']:.2%}); dense sketch {row['dense_bytes']:,} B"
                 for row in r["lg_k_choice"])
    lines.extend(f"{row['row']}: {row['figure']}" for row in r["storage"]["per_id_per_block"])
    for ids, v in r["reads"].items():
        lines.append(f"reads at {int(ids):,} ids: filled {v['events']:,} events in {v['fill_seconds']:.0f} s; " + "; ".join(
            f"{label}: distinct p50 {v[f'one_id_{label}']['distinct_ms']['p50']:.2f} p99 {v[f'one_id_{label}']['distinct_ms']['p99']:.2f} max {v[f'one_id_{label}']['distinct_ms']['max']:.2f} ms, "
            f"{v[f'one_id_{label}']['visitors_of_first_id']:,} visitors of the first id" for label in ("5min", "24h")))
        for label in ("5min", "24h"):
            lines.append(f"  {label} one-id reads by series (p50 / p99 / max ms): " + "; ".join(
                f"{name} {x['p50']:.2f} / {x['p99']:.2f} / {x['max']:.2f}" for name, x in v[f"one_id_{label}"]["by_series_ms"].items()))
            parts = v[f"one_id_{label}"]["parts"]
            lines.append(f"  {label} one-id read, its parts (p50 / p99 ms): " + "; ".join(
                f"{name.removesuffix('_ms').replace('_', ' ')} {x['p50']:.2f} / {x['p99']:.2f}" for name, x in parts.items()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the bench runs and its figures are right")
    group.add_argument("--full", action="store_true", help="the same as quick (kept for symmetry with bench/run.py)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    mode = "smoke" if args.smoke else "full" if args.full else "quick"
    started = time.monotonic()
    results = run(mode)
    results["seconds"] = time.monotonic() - started
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print()
    print(describe(results))
    print(f"\n{mode} mode took {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
