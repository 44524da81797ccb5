"""Distinct visitors in the store: a writer's pending items per sketch key, and how a flush unites them in.

Beside the counts of every (block, type, shard) the store keeps one value of HLL sketches
(:mod:`tui.distinct.value`), one entry per tracking id of that shard: the distinct visitors of that
type at that id in that block. The series :data:`~tui.distinct.batch.SIGNUPS` holds the distinct
e-mail hashes of sign-ups the same way, and the pseudo-shard ``t`` of each series holds the sketch of
the series over all ids (entry :data:`TOTAL_ID`), so a type's distinct visitors need no union of
100,000 sketches.

Why no sequence numbers: a union is a register-wise maximum, so uniting the same sketch twice
changes nothing. A ``cas`` whose reply was lost, a flush retried after an outage, a restarted writer
re-sending its checkpoint: all are harmless. The counts need per-writer sequence numbers only
because addition is not idempotent.

Order: a flush writes the sketches of a key *before* the counts of the same (block, type, shard)
(:meth:`tui.pipeline.writer.Writer.flush`), and every id counted in a shard gets an entry in its
sketch value, even an empty one when its events carried no visitor id. So:

* a reader that reads the heads first, then the sketches, finds a value for every shard a head
  lists (the counts are written before the head); one that is missing was lost (evicted), and the
  reader says ``incomplete``. One that also read the counts finds an entry for every id it counted;
* a writer that finds a sketch value missing while the counts of its shard are there, or the head
  lists that shard (the head's total, for the pseudo-shard), knows it was lost, and marks the value
  it writes *restored*: readers then say ``incomplete`` for that block instead of printing the few
  visitors written since. So a value that is there, not restored, and lacks an id, holds all the
  visitors that id had there: none.

The writer keeps a union per id per key until the store confirms the key (:class:`PendingSketches`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import datasketches as ds

from tui.distinct.batch import SIGNUPS, SketchKey
from tui.distinct.sketch import DEFAULT_LG_K, load
from tui.distinct.value import DEFAULT_BUDGET, MAX_VALUE_BYTES, Merged, ValueTooLarge, merge
from tui.store.codec import Corrupt, decode_head, decode_shard
from tui.settings import MAX_KEY_BYTES
from tui.store.layout import Layout
from tui.store.merge import KV, TooLarge, Write, cas_until_stored, due_now
from tui.window import LEVELS, Block

#: ``("d", span, index, series, shard)``; ``shard == layout.shards`` is the series' total (key suffix ``t``).
SketchIdent = tuple[str, int, int, str, int]
#: The one entry of a total key.
TOTAL_ID = "*"
_HLL_4 = ds.tgt_hll_type.HLL_4


def sketch_block(ident: SketchIdent) -> Block:
    return (ident[1], ident[2])


def counted_type(series: str) -> str:
    """The event type whose counts sit beside a series' sketches (signups beside ``signup``)."""
    return "signup" if series == SIGNUPS else series


class PendingSketches:
    """What a writer has seen and the store has not confirmed: a union per id per sketch key.

    Each (bucket, series, id) sketch of a flush is united into the key of every level's block that
    holds the bucket; the series' total of the bucket is united once from all its ids' sketches and
    then into the total key of every level: at most five unions of about 0.1 µs per sketch, plus four
    per (bucket, series), where uniting every id's sketch into every level's total took eight. An
    entry stays the sketch itself until a second one comes (no union to make); an ``hll_union``
    holds about 230 bytes while its id has few visitors."""

    def __init__(self, lg_k: int = DEFAULT_LG_K) -> None:
        self.lg_k = lg_k
        #: key -> id -> what is pending for it: one sketch, or the union of several.
        self.items: dict[SketchIdent, dict[str, ds.hll_sketch | ds.hll_union]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def stage(self, taken: Iterable[tuple[SketchKey, ds.hll_sketch]], layout: Layout) -> None:
        """Fold a flush's sketches (per bucket, series, id; an id may come more than once) into the
        key of every level's block that holds the bucket, and into the series' total key there.

        Grouped by (bucket, series, shard) first, so that each group finds its four keys once:
        finding them per sketch was most of a flush's own time at 100,000 ids."""
        groups: dict[tuple[int, str, int], list[tuple[str, ds.hll_sketch]]] = {}
        shard_of = layout.shard
        for (bucket, series, tracking_id), sketch in taken:
            group = groups.get((bucket, series, shard := shard_of(tracking_id)))
            if group is None:
                group = groups[(bucket, series, shard)] = []
            group.append((tracking_id, sketch))
        totals: dict[tuple[int, str], list[ds.hll_sketch]] = {}
        for (bucket, series, shard), members in groups.items():
            for span in LEVELS:
                self._unite(("d", span, bucket // span, series, shard), members)
            totals.setdefault((bucket, series), []).extend(sketch for _, sketch in members)
        for (bucket, series), sketches in totals.items():
            total = ds.hll_union(self.lg_k)
            for sketch in sketches:
                total.update(sketch)
            result = [(TOTAL_ID, total.get_result(_HLL_4))]
            for span in LEVELS:
                self._unite(("d", span, bucket // span, series, layout.shards), result)

    def _unite(self, ident: SketchIdent, members: Sequence[tuple[str, ds.hll_sketch]]) -> None:
        """Each (id, sketch) into that id's pending entry of key ``ident``: the sketch itself while it
        is the only one (most single buckets' entries, written at the next flush), else a union."""
        ids = self.items.get(ident)
        if ids is None:  # a key this flush opens (every flush's single bucket): no id to unite with
            fresh = dict(members)
            if len(fresh) == len(members):  # each id once (ids counted under (other) are not)
                self.items[ident] = fresh
                return
            ids = self.items[ident] = {}
        for tracking_id, sketch in members:
            held = ids.get(tracking_id)
            if held is None:
                ids[tracking_id] = sketch  # never changed in place: a second one makes a union
            elif type(held) is ds.hll_union:
                held.update(sketch)
            else:
                union = ids[tracking_id] = ds.hll_union(self.lg_k)
                union.update(held)
                union.update(sketch)

    def delta(self, ident: SketchIdent) -> dict[str, bytes]:
        """The key's pending sketches, compact, by id."""
        return {tid: bytes((held.get_result(_HLL_4) if type(held) is ds.hll_union else held).serialize_compact()) for tid, held in self.items[ident].items()}

    def forget(self, keep: Callable[[Block], bool]) -> None:
        """Drop the keys of blocks the store no longer keeps (nothing reads them any more)."""
        self.items = {ident: ids for ident, ids in self.items.items() if keep(sketch_block(ident))}

    def to_plain(self) -> list[list[Any]]:
        """JSON-ready: ``[[ident...], {id: base64 compact sketch}]`` per key (``serve``'s checkpoint):
        sketches, not visitor ids, go to disk."""
        return [[list(ident), {tid: base64.b64encode(data).decode("ascii") for tid, data in self.delta(ident).items()}] for ident in self.items]

    @classmethod
    def from_plain(cls, plain: Sequence[Sequence[Any]], lg_k: int = DEFAULT_LG_K) -> PendingSketches:
        """Read back :meth:`to_plain` (each sketch checked, :class:`~tui.distinct.sketch.CorruptSketch` if bad)."""
        pending = cls(lg_k)
        for ident, ids in plain:
            kind, span, index, series, shard = ident
            unions = pending.items[(str(kind), int(span), int(index), str(series), int(shard))] = {}
            for tid, text in ids.items():
                union = unions[str(tid)] = ds.hll_union(lg_k)
                union.update(load(base64.b64decode(text), lg_k))
        return pending


def sketch_key(layout: Layout, ident: SketchIdent) -> str:
    _, span, index, series, shard = ident
    return f"{layout.prefix}d{span}:{index}:{series}:{'t' if shard == layout.shards else shard}"


def own_key(shared_key: str, tracking_id: str) -> str:
    """Where an id's sketch goes when it does not fit in its shared value (:data:`~tui.distinct.value.SPILLED`).

    The id itself while the key stays within memcached's 250 bytes, else a hash of it: a 128-byte
    ingested id under a long prefix would otherwise make a key every flush of it fails on. The value
    holds the id, which the reader checks, so two ids of one hash can never be taken for each other."""
    key = f"{shared_key}/{tracking_id}"
    if len(key.encode()) <= MAX_KEY_BYTES:
        return key
    return f"{shared_key}/#{hashlib.blake2b(tracking_id.encode(), digest_size=16).hexdigest()}"


def evidence_keys(layout: Layout, ident: SketchIdent) -> tuple[str, ...]:
    """The values whose data proves that this sketch value existed: for a shard, its counts of the
    same (block, type, shard) and the block's head, which lists that shard (a reader takes the
    head's word, so a value lost together with its counts must be marked restored too); for a total,
    the block's head."""
    block = sketch_block(ident)
    if ident[4] == layout.shards:
        return (layout.head_key(block),)
    return (layout.shard_key(block, counted_type(ident[3]), ident[4]), layout.head_key(block))


def _held_data(layout: Layout, ident: SketchIdent, found: Mapping[str, tuple[bytes, Any]]) -> bool:
    """Does an evidence value (:func:`evidence_keys`, as ``found``) hold counts of the series' type
    that the sketch value must cover?"""
    etype, shard = counted_type(ident[3]), ident[4]
    for key in evidence_keys(layout, ident):
        raw = found.get(key, (None,))[0]
        if raw is None:
            continue
        try:
            if key == layout.head_key(sketch_block(ident)):
                head = decode_head(raw, layout.shards, ident[1])
                if head.totals.get(etype, 0) > 0 if shard == layout.shards else shard in head.shards.get(etype, ()):
                    return True
            elif decode_shard(raw).counts:
                return True
        except Corrupt:
            continue  # the counts' own flush reports and repairs it
    return False


def flush_sketches(
    kv: KV,
    layout: Layout,
    pending: PendingSketches,
    lg_k: int,
    now: float,
    report: Callable[[str, str], None],
    everything: bool = False,
    budget: int = DEFAULT_BUDGET,
) -> None:
    """Unite the pending items of every key that is due (the counts' schedule, :func:`due_now`) into
    the store; a key leaves ``pending`` once its ``add``/``cas`` is confirmed. Raises on a store
    error (the caller turns it into StoreUnavailable); what was not confirmed stays pending."""
    due = due_now(layout, now, everything)
    # A total goes with its block's head, written every flush (its evidence); a shard's sketches go
    # with that shard's counts, on the counts' schedule.
    todo = {sketch_key(layout, ident): ident for ident in pending.items if ident[4] == layout.shards or due(ident)}
    deltas = {key: pending.delta(ident) for key, ident in todo.items()}

    def writes(keys: list[str], fetched: dict[str, tuple[bytes, Any]]) -> list[Write]:
        missing = sorted({evidence for key in keys if key not in fetched for evidence in evidence_keys(layout, todo[key])})
        evidence = kv.gets_many(missing) if missing else {}
        out: list[Write] = []
        spills: dict[str, tuple[dict[str, bytes], int, bool]] = {}
        for key in keys:
            ident, stored = todo[key], fetched.get(key)
            lost = stored is None and _held_data(layout, ident, evidence)
            merged = _merge(key, stored[0] if stored else None, deltas[key], lg_k, budget, lost)
            for problem in merged.problems:
                report(key, problem)
            expire = layout.expire(sketch_block(ident), now)
            spills.update((own_key(key, tid), ({tid: sketch}, expire, tid in merged.was_spilled)) for tid, sketch in merged.spilled.items())
            out.append((key, merged.value, stored[1] if stored else None, expire))
        # An id's own key is written before the shared value that says "spilled", so a reader who
        # sees that mark finds the sketch there: one round of them for every shared value of the flush.
        if spills:
            cas_until_stored(kv, list(spills), lambda own, got: _own_writes(own, got, spills, lg_k, report), lambda own: None, "sketches:")
        return out

    cas_until_stored(kv, list(todo), writes, lambda key: pending.items.pop(todo[key], None), "sketches:")


def _merge(key: str, stored: bytes | None, delta: dict[str, bytes], lg_k: int, budget: int, restored: bool) -> Merged:
    """:func:`~tui.distinct.value.merge` within ``budget``; a shard whose ids alone pass it (some
    thousands, near ``max_tracking_ids``) may use Store v2's whole limit rather than stop the writer."""
    try:
        return merge(stored, delta, lg_k, budget, restored=restored)
    except ValueTooLarge:
        try:
            return merge(stored, delta, lg_k, MAX_VALUE_BYTES, restored=restored)
        except ValueTooLarge as error:
            raise TooLarge(f"{key}: {error}") from None


def _own_writes(
    keys: list[str], fetched: dict[str, tuple[bytes, Any]], spills: dict[str, tuple[dict[str, bytes], int, bool]], lg_k: int, report: Callable[[str, str], None]
) -> list[Write]:
    """Single-id sketches united into their own keys (one id each, so never over the limit). An
    own key missing although the shared value already said "spilled" was lost: it is written again
    marked restored, as a lost shared value is (else its reader took the few visitors since as all)."""
    out: list[Write] = []
    for key in keys:
        stored = fetched.get(key)
        delta, expire, was_spilled = spills[key]
        merged = merge(stored[0] if stored else None, delta, lg_k, MAX_VALUE_BYTES, restored=stored is None and was_spilled)
        for problem in merged.problems:
            report(key, problem)
        out.append((key, merged.value, stored[1] if stored else None, expire))
    return out
