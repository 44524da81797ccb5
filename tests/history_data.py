"""Seeded history for the query tests and the bench: events with known timestamps, written into a
store through the real writer path (a Ledger, a WriterState, Store.write), and the brute-force
recount every aggregate must equal."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from tui import EVENT_TYPES
from tui.settings import Settings
from tui.store import Store
from tui.store.base import PrefixSettings
from tui.store.layout import Layout
from tui.store.writer_state import WriterState, deltas_by_key
from tui.window import Ledger

#: (timestamp ms, type, tracking id)
Event = tuple[int, str, str]
PREFIX = PrefixSettings(10, Settings().retention, 5)


def seeded_events(seed: int, now: float, count: int, ids: Sequence[str], span_seconds: int) -> list[Event]:
    """``count`` events over the ``span_seconds`` before ``now``: half spread evenly, half in the last
    2 h (where the fine levels are kept), the ids and types drawn by a seeded RNG."""
    rng = random.Random(seed)
    now_ms = int(now * 1000)
    out: list[Event] = []
    for i in range(count):
        back = span_seconds if i % 2 else min(span_seconds, 7_200)
        out.append((now_ms - int(rng.random() * back * 1000), rng.choice(EVENT_TYPES), rng.choice(ids)))
    return out


def write_events(store: Store, events: Iterable[Event], now: float, writer: str = "w1", prefix: PrefixSettings = PREFIX) -> Layout:
    """Count ``events`` as a writer does and write every block of every level at ``now``."""
    layout = store.open_prefix(prefix)
    ledger = Ledger(layout.bucket_seconds)
    ledger.record([(etype, tid, ts) for ts, etype, tid in events])
    state = WriterState(writer)
    state.stage(deltas_by_key(ledger.take_deltas(), layout))
    store.write(layout, state, lambda ident: None, now, everything=True)
    return layout


def recount(
    events: Iterable[Event], start_ms: int, end_ms: int, step_ms: int, keep: Callable[[str, str], bool], group: Callable[[str, str], tuple[str, ...]]
) -> dict[tuple[int, tuple[str, ...]], int]:
    """Events per (step start, group) in ``[start_ms, end_ms)``, by their own timestamps alone."""
    out: Counter[tuple[int, tuple[str, ...]]] = Counter()
    for ts, etype, tid in events:
        if start_ms <= ts < end_ms and keep(etype, tid):
            out[(ts - (ts - start_ms) % step_ms, group(etype, tid))] += 1
    return dict(out)
