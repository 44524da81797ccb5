"""A writer's flush: merge its pending deltas into the shared values, exactly once, repairing losses.

For each key it has a delta for (or must verify), the writer reads the value (``gets``), decides the
new value with :func:`plan`, and stores it with ``cas`` (``add`` when missing); a lost race reads
again. Shards are written before heads, so a head never lists a shard before its counts are there.

:func:`plan` is where exactness and repair meet:

* our entry says seq ``n`` was applied: apply only our entries above ``n`` (a retried write is skipped);
* the value is missing or lacks our entry although the store confirmed an earlier write: it was
  lost (evicted, restarted, moved in a cluster). Write our *absolute* counts for that key instead of
  the delta and mark the value restored (``"r": true``): other writers' lost counts may be missing,
  and readers say so (``incomplete``) rather than print a low number;
* a value that does not decode is reported, then overwritten the same way;
* a value that is missing while its head (or parent head) lists it is created marked restored.

Writing shards before heads, and heads from the finest level up, keeps that last rule sound: a
head never lists a value that was not written first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import groupby
from dataclasses import dataclass
from typing import Any, Protocol

from tui.store.codec import Corrupt, Head, Shard, decode_head, decode_shard, encode
from tui.store.layout import (
    COARSE_DEADLINE_SECONDS,
    COARSE_OPEN_SECONDS,
    COARSE_SLICES,
    MAX_VALUE_BYTES,
    Layout,
    child_offset,
    parent,
)
from tui.store.writer_state import (
    Delta,
    Ident,
    WriterState,
    add_delta,
    block_of,
    head_ident,
)
from tui.store.written import Written

MAX_CAS_ATTEMPTS = 100
#: The writer's own absolute counts for a key (what it would restore), or None if no longer held.
Absolute = Callable[[Ident], Delta | None]


#: One conditional write: ``(key, data, cas token or None for add, expire)``.
Write = tuple[str, bytes, Any, int]


class KV(Protocol):
    """The two memcached operations a flush needs; both stores provide them."""

    def gets_many(self, keys: list[str]) -> dict[str, tuple[bytes, Any]]: ...

    def store_many(self, writes: Sequence[Write]) -> list[bool]: ...


def cas_until_stored(
    kv: KV, keys: list[str], writes: Callable[[list[str], dict[str, tuple[bytes, Any]]], list[Write]], stored: Callable[[str], object], what: str,
) -> None:
    """``gets`` the keys, write what ``writes`` makes of them (``cas``, or ``add`` where missing) and
    call ``stored`` for each key the store took; again for the rest, which another writer changed in
    between, up to :data:`MAX_CAS_ATTEMPTS` times (then TimeoutError, its message starting with
    ``what``). ``writes`` may leave a key out: it needs no write (a fresher value is there)."""
    for _ in range(MAX_CAS_ATTEMPTS):
        if not keys:
            return
        made = writes(keys, kv.gets_many(keys))
        keys = []
        for write, ok in zip(made, kv.store_many(made)):
            if ok:
                stored(write[0])
            else:
                keys.append(write[0])
    raise TimeoutError(f"{what} gave up after {MAX_CAS_ATTEMPTS} contended attempts")


class TooLarge(Exception):
    """A value would pass :data:`~tui.store.layout.MAX_VALUE_BYTES`."""


@dataclass
class Decoded:
    value: Shard | Head | None  # None: missing
    corrupt: str | None = None


def key_of(layout: Layout, ident: Ident) -> str:
    if ident[0] == "h":
        return layout.head_key(block_of(ident))
    return layout.shard_key(block_of(ident), ident[3], ident[4])


def decode(layout: Layout, ident: Ident, raw: bytes | None, ours: bool = False) -> Decoded:
    """The value under ``ident``'s key; ``ours``: ``raw`` is exactly what this writer stored there
    (:mod:`tui.store.written`), so a shard is parsed without checking every id again."""
    if raw is None:
        return Decoded(None)
    try:
        if ident[0] == "h":
            return Decoded(decode_head(raw, layout.shards, ident[1]))
        return Decoded(decode_shard(raw, checked=not ours))
    except Corrupt as exc:
        return Decoded(None, str(exc))


def _apply(value: Shard | Head, delta: Mapping[str, Any]) -> None:
    if isinstance(value, Shard):
        add_delta(value.counts, delta, False)
        return
    merged: Delta = {"t": value.totals, "s": value.shards, "k": value.children}
    add_delta(merged, delta, True)
    value.totals, value.shards, value.children = merged["t"], merged["s"], merged["k"]


def lost_evidence(ident: Ident, heads: Mapping[Ident, Decoded]) -> bool:
    """Does a head say that the missing ``ident`` held data (so others' counts were lost)?"""
    if ident[0] == "s":
        head = heads.get(head_ident(block_of(ident)))
        return isinstance(head and head.value, Head) and ident[4] in head.value.shards.get(ident[3], ())  # type: ignore[union-attr]
    up = parent(block_of(ident))
    head = heads.get(head_ident(up)) if up else None
    return isinstance(head and head.value, Head) and child_offset(block_of(ident)) in head.value.children  # type: ignore[union-attr]


def plan(state: WriterState, ident: Ident, found: Decoded, absolute: Absolute, lost: bool) -> Shard | Head | None:
    """The new value for ``ident``, or None when nothing of ours is missing from it."""
    me = state.writer_id
    entries = state.pending.get(ident, [])
    confirmed = state.confirmed.get(ident)
    top = max([s for s, _ in entries] + [confirmed or 0])
    value = found.value
    last = value.writers.get(me) if value is not None else None
    # Lost: the store confirmed our entry before, and it is gone (or the value is unreadable).
    restore = found.corrupt is not None or (confirmed is not None and last is None)
    # Stale: an older copy came back (a cluster node rejoined); our later deltas in it are gone.
    stale = confirmed is not None and last is not None and last < confirmed
    if value is None or found.corrupt is not None:
        value = Head() if ident[0] == "h" else Shard()
        value.restored = lost
    if restore:
        mine = absolute(ident)
        if mine:
            _apply(value, mine)
        value.restored = True
    else:
        fresh = [d for s, d in entries if last is None or s > last]
        if not fresh and not stale:
            return None
        for delta in fresh:
            _apply(value, delta)
        value.restored = value.restored or stale
    value.writers[me] = top
    return value


def due_now(layout: Layout, now: float, everything: bool = False) -> Callable[[Ident], bool]:
    """Which keys this flush writes (see :data:`~tui.store.layout.COARSE_SLICES`).

    Heads and single buckets: always. A coarser block's shards: once the block has closed, one
    slice of them a second, and all of them :data:`~tui.store.layout.COARSE_DEADLINE_SECONDS` after
    it closed; while it is open, each once every :data:`~tui.store.layout.COARSE_OPEN_SECONDS`.
    Readers use a coarse block only once it closed :data:`~tui.store.layout.COARSE_LAG_SECONDS` ago
    (:meth:`~tui.store.layout.Layout.usable`), so writing an open one serves only a writer that dies
    (it loses at most that last minute). At 100,000 ids a 1-hour block's shard is ~40 KB, and
    rewriting every one every ten seconds was most of a flush. The head (totals, which shards exist)
    is written every second, so readers report a block whose shards hold less as not fully written.
    ``everything``: at exit, write all that is pending."""
    if everything:
        return lambda ident: True
    second = int(now)

    def due(ident: Ident) -> bool:
        if ident[0] == "h" or ident[1] == 1:
            return True
        closed = now - layout.block_end(block_of(ident))
        if closed < 0:
            return ident[4] % COARSE_OPEN_SECONDS == second % COARSE_OPEN_SECONDS
        return closed >= COARSE_DEADLINE_SECONDS or ident[4] % COARSE_SLICES == second % COARSE_SLICES

    return due


def _phase(ident: Ident) -> tuple[bool, int]:
    """Write order: every shard first (in any order), then the heads level by level, finest first."""
    return (True, ident[1]) if ident[0] == "h" else (False, 0)


def flush(
    kv: KV, layout: Layout, state: WriterState, absolute: Absolute, now: float, report: Callable[[str, str], None], everything: bool = False,
    written: Written | None = None,
) -> None:
    """Write the pending deltas that are due (and verify every key in ``state.check``). Raises on a
    store error (the caller turns it into StoreUnavailable); whatever was not confirmed stays pending.
    ``written``: what this writer stored last, so its own bytes read back are not checked again."""
    written = written if written is not None else Written()
    due = due_now(layout, now, everything)
    # Shards first, then heads from the finest level up: whoever sees a head list a shard, or a
    # parent list a child, finds that value already there (a missing one is then truly lost).
    todo = sorted((i for i in state.to_check() if due(i)), key=_phase)
    for _ in range(MAX_CAS_ATTEMPTS):
        if not todo:
            return
        keys = {key_of(layout, i): i for i in todo}
        extra = {head_ident(block_of(i)) for i in todo} | {head_ident(p) for i in todo if i[0] == "h" and (p := parent(block_of(i)))}
        extra_keys = {key_of(layout, i): i for i in extra if key_of(layout, i) not in keys}
        fetched = kv.gets_many([*keys, *extra_keys])
        found = {
            i: decode(layout, i, fetched[k][0], written.mine(k, fetched[k][0])) if k in fetched else Decoded(None)
            for k, i in {**keys, **extra_keys}.items()
        }
        heads = {i: d for i, d in found.items() if i[0] == "h"}
        state.tried.update((i, state.seq) for i in keys.values())
        lost_race: list[Ident] = []
        # One round trip per phase: all shards, then the heads of each level. A head is planned
        # after its shards' writes are confirmed, so it lists the shards confirmed just now.
        for _, phase in groupby(keys.items(), key=lambda item: _phase(item[1])):
            writes: list[tuple[Ident, int, Write]] = []
            for key, ident in phase:
                decoded = found[ident]
                if decoded.corrupt:
                    report(key, decoded.corrupt)
                new = plan(state, ident, decoded, absolute, decoded.value is None and lost_evidence(ident, heads))
                if new is None:  # ours is there already (a restart re-sent it): confirmed, so its head lists it
                    state.done(ident, decoded.value.writers.get(state.writer_id) if decoded.value is not None else None)
                    continue
                data = encode(new.to_json())
                if len(data) > MAX_VALUE_BYTES:
                    raise TooLarge(f"{key} would be {len(data):,} bytes, over the {MAX_VALUE_BYTES:,}-byte limit")
                token = fetched[key][1] if key in fetched else None
                writes.append((ident, new.writers[state.writer_id], (key, data, token, layout.expire(block_of(ident), now))))
            for (ident, seq, (key, data, _, _)), stored in zip(writes, kv.store_many([w for *_, w in writes])):
                if stored:
                    written.stored(key, data)
                    state.done(ident, seq)
                else:
                    lost_race.append(ident)
        # Lost races go again, with any head a shard just confirmed (it now has it to list).
        todo = sorted(set(lost_race) | {i for i in state.pending if i[0] == "h"}, key=_phase)
    raise TimeoutError(f"gave up after {MAX_CAS_ATTEMPTS} contended attempts")
