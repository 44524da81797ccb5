"""Reading distinct visitors: the union of the sketches of the blocks that tile a window.

A window's distinct count is the union of its blocks' sketches (:mod:`tui.distinct.sketch`). The
read comes *after* the heads of the same blocks (and, for a window's read, their counts), and uses
them as evidence (see :mod:`tui.store.sketches` for why that is sound): a shard a head lists must
have its sketch value, a type with a total in a block must have its total sketch, and where the
counts were read, an id counted in a block must have an entry in that block's sketch value.
Whatever is missing, corrupt or marked restored becomes a :class:`~tui.window.Gap`, and the figure
is reported ``incomplete``, never printed as if whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import datasketches as ds

from tui.distinct.sketch import CorruptSketch, Estimate, estimate_loaded, load
from tui.distinct.value import SPILLED, CorruptValue, Opened
from tui.store.decode_cache import DecodeCache
from tui.store.layout import Layout
from tui.store.reads import BlocksRead, block_gap
from tui.store.sketches import TOTAL_ID, counted_type, own_key, sketch_key
from tui.window import Block, BucketCounts, Gap


@dataclass(frozen=True)
class DistinctRead:
    """Distinct counts of the union of some series over a window, and why any may be low."""

    #: Over every id (None: not asked for).
    total: Estimate | None = None
    #: Per id asked for (an id without data in the window is absent).
    by_id: Mapping[str, Estimate] = field(default_factory=dict)
    #: Per series (type) and id: each series alone, for the per-type tables and summaries.
    by_series: Mapping[str, Mapping[str, Estimate]] = field(default_factory=dict)
    #: Per series, over every id.
    series_totals: Mapping[str, Estimate] = field(default_factory=dict)
    incomplete: tuple[Gap, ...] = ()
    #: Ids of the window left out of ``by_id`` (only the busiest are read; the totals cover all).
    omitted: int = 0
    #: Now minus the end of the newest single bucket of the window holding events of any id (from
    #: the heads, as a count read's ``lagSeconds``); None when none holds any, or not computed.
    lag_seconds: float | None = None


#: What a read calls the total over every id: the total value's entry is :data:`TOTAL_ID` (``*``),
#: which is also a valid tracking id, so a read of the id ``*`` with the total took the total's
#: sketches for the id's. This name has a space, which no tracking id has.
WHOLE = "(every id)"


def _entry_id(tid: str) -> str:
    """The id of ``tid``'s entry in a stored value (:data:`WHOLE` is stored as :data:`TOTAL_ID`)."""
    return TOTAL_ID if tid == WHOLE else tid


class _Sketch(NamedTuple):
    """A loaded sketch, with the bytes it was loaded from and the span of its block (a tuple: a
    one-id read at 24 h makes a hundred)."""

    span: int
    data: bytes
    loaded: ds.hll_sketch


@dataclass
class _Found:
    sketches: list[_Sketch] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)


def sketch_keys(layout: Layout, blocks: Sequence[Block], series: Sequence[str], ids: Iterable[str], total: bool) -> dict[tuple[Block, str, int], str]:
    """The sketch value of each (block, series, shard) that a read of ``ids`` (and of the total
    over every id with ``total``) uses: its key, by what it holds."""
    shards = {layout.shard(tid) for tid in ids} | ({layout.shards} if total else set())
    return {
        (block, name, shard): sketch_key(layout, ("d", block[0], block[1], name, shard))
        for block in blocks for name in series for shard in sorted(shards)
    }


def read_distinct(
    get_many: Callable[[list[str]], Mapping[str, bytes]],
    layout: Layout,
    blocks: Sequence[Block],
    series: Sequence[str],
    ids: Iterable[str],
    found: BlocksRead,
    report: Callable[[str, str], None],
    total: bool = True,
    per_series: bool = True,
    cache: DecodeCache | None = None,
    prefetched: Mapping[str, bytes] | None = None,
    unions: DecodeCache | None = None,
    keys: Mapping[tuple[Block, str, int], str] | None = None,
) -> DistinctRead:
    """The distinct visitors of ``series`` (types, or ``signups``) over ``blocks``: per id of ``ids``,
    per series, and (``total``) over all ids. ``found`` is what a read of the same blocks found just
    before, the evidence of what must be there (:class:`_Evidence`): its heads, and its counts by
    id if that read had them (``found.counts`` not empty). A round trip for the shared values
    unless ``prefetched``, then one for the own keys of ids that spilled, if any.
    ``per_series=False``: ``by_series`` and ``series_totals`` are left empty (see
    :func:`_estimates`). ``cache`` keeps loaded sketches by their exact bytes (see
    :func:`_loader`), ``unions`` the union of each figure's coarse blocks (see :func:`_estimate`).

    ``prefetched``: the shared values (of :func:`sketch_keys`, under ``keys`` if the caller made
    them) as found by the heads' own round trip, read after the heads, which saves a round trip. A
    value that then looks lost (missing, or lacking an id, while the evidence says it holds it)
    may only have been read before a flush wrote it and the heads after (a cluster reads its
    servers in turn, not in key order): those values are read once more, and only what that read
    finds is judged."""
    ids = list(ids)
    keys = sketch_keys(layout, blocks, series, ids, total) if keys is None else keys
    wanted = [(tid, layout.shard(tid)) for tid in ids] + ([(WHOLE, layout.shards)] if total else [])
    evidence = _Evidence(found.totals, found.shards, found.counts or None)
    loader = _loader(cache, layout.lg_k)
    values = dict(prefetched) if prefetched is not None else get_many(list(keys.values())) if keys else {}
    sketches, spilled, doubtful = _gather(values, keys, wanted, evidence, layout.lg_k, loader, report)
    if prefetched is not None and doubtful:
        again = get_many(sorted(doubtful))
        values = {key: data for key, data in values.items() if key not in doubtful} | dict(again)
        sketches, spilled, _ = _gather(values, keys, wanted, evidence, layout.lg_k, loader, report)
    if spilled:
        own = get_many(list(spilled))
        for key, (block, name, tid) in spilled.items():
            # an own key is there only because the shared value said so: missing is lost
            _use(_open(key, own.get(key), layout.lg_k, report), key, tid, loader, sketches[(name, tid)], block, report, _WRITTEN, counted_type(name), 0)
    return _estimates(sketches, series, ids, total, layout.lg_k, per_series, unions)


@dataclass(frozen=True)
class _Evidence:
    """What the read before found: which sketch values, and which of their entries, must be there.

    The heads alone say which values were written: a flush writes a shard's sketches before its
    counts, and its counts before the head that lists them. That is all a one-id read has: reading
    the id's count shards as well was half of its keys and time. Without them a value that is there
    but lacks the id is taken to mean the id had no visitors there; what could make it lack an id
    that had some (the value lost and written again, an entry dropped as corrupt) marks the value
    restored, which is a gap. With ``counts`` (a window's read has them anyway), a value is judged
    per id: a lost value the id had no events in leaves its figure whole."""

    totals: Mapping[Block, Mapping[str, int]]
    shards: Mapping[Block, Mapping[str, Sequence[int]]]
    #: Per block: type -> id -> count; None where the read had only the heads.
    counts: Mapping[Block, BucketCounts] | None

    def written(self, block: Block, etype: str, tid: str, shard: int) -> bool:
        """Whether the value of ``tid``'s ``shard`` (or, for :data:`WHOLE`, the block's total) was written."""
        if tid == WHOLE:
            return bool(self.totals.get(block, {}).get(etype, 0))
        if self.counts is None:
            return shard in self.shards.get(block, {}).get(etype, ())
        return self.entered(block, etype, tid)

    def entered(self, block: Block, etype: str, tid: str) -> bool:
        """Whether the value holds an entry of ``tid`` (of :data:`WHOLE`: always, once written); with
        the heads alone, not known, so not claimed."""
        if tid == WHOLE:
            return bool(self.totals.get(block, {}).get(etype, 0))
        return self.counts is not None and bool(self.counts.get(block, {}).get(etype, {}).get(tid, 0))


class _Written:
    """The evidence of an id's own key: the shared value said the sketch is there, so it must be."""

    @staticmethod
    def written(block: Block, etype: str, tid: str, shard: int) -> bool:
        return True

    @staticmethod
    def entered(block: Block, etype: str, tid: str) -> bool:
        return True


_WRITTEN = _Written()


def _gather(
    values: Mapping[str, bytes], keys: Mapping[tuple[Block, str, int], str], wanted: Sequence[tuple[str, int]], evidence: _Evidence, lg_k: int, loader: Loader, report: Callable[[str, str], None],
) -> tuple[dict[tuple[str, str], _Found], dict[str, tuple[Block, str, str]], set[str]]:
    """Each wanted id's sketches (and gaps) from the shared ``values``: by (series, id), the own
    keys to read next (those entries say :data:`SPILLED`), and the keys that gave a "lost" gap."""
    found: dict[tuple[str, str], _Found] = {}  # (series, id or WHOLE) -> sketches and gaps
    spilled: dict[str, tuple[Block, str, str]] = {}
    lost: set[str] = set()
    opened: dict[str, Opened | str | None] = {}  # key -> the value framed once, or why it is unusable
    by_shard: dict[int, list[str]] = {}
    for tid, shard in wanted:
        by_shard.setdefault(shard, []).append(tid)
    for (block, name, shard), key in keys.items():
        etype = counted_type(name)
        for tid in by_shard[shard]:
            into = found.get((name, tid)) or found.setdefault((name, tid), _Found())
            value = opened[key] if key in opened else opened.setdefault(key, _open(key, values.get(key), lg_k, report))
            outcome = _use(value, key, tid, loader, into, block, report, evidence, etype, shard)
            if outcome == "spilled":
                spilled[own_key(key, _entry_id(tid))] = (block, name, tid)
            elif outcome == "lost":
                lost.add(key)
    return found, spilled, lost


#: ``(key, tracking id, bytes) -> sketch``: :func:`~tui.distinct.sketch.load`, or one that keeps what it loaded.
Loader = Callable[[str, str, bytes], ds.hll_sketch]


def _loader(cache: DecodeCache | None, lg_k: int) -> Loader:
    """Loads a sketch, once per exact bytes under its (key, id, lg_k) with a ``cache``. Checking and
    deserializing every sketch again was the larger part of a one-id read's CPU (a closed block's
    sketch does not change between reads); a sketch that fails the check is not kept
    (:class:`~tui.store.decode_cache.DecodeCache`), so it is reported at every read."""
    if cache is None:
        return lambda key, tracking_id, data: load(data, lg_k)
    return lambda key, tracking_id, data: cache.decode((key, tracking_id, lg_k), data, lambda raw: load(raw, lg_k))


def _open(key: str, data: bytes | None, lg_k: int, report: Callable[[str, str], None]) -> Opened | str | None:
    """The value framed once; None when missing; why, when corrupt (reported once)."""
    if data is None:
        return None
    try:
        return Opened(data, lg_k)
    except CorruptValue as error:
        report(key, str(error))
        return str(error)


#: What :func:`_use` found besides sketches and gaps: the entry says "in the id's own key", or
#: the value is missing or lacks the id although the counts say it holds it.
Outcome = Literal["spilled", "lost"] | None


def _use(
    value: Opened | str | None, key: str, tid: str, loader: Loader, into: _Found, block: Block, report: Callable[[str, str], None],
    evidence: _Evidence | _Written, etype: str, shard: int,
) -> Outcome:
    """Add ``tid``'s sketch from the value under ``key`` (:func:`_open`'s answer) to ``into``, or the
    gap that stands for it: a missing value is a gap only where the ``evidence`` says it was
    written, a value lacking the id only where it says the id was entered. (Asked only then: most
    values are there and hold the id.)"""
    if value is None:
        if evidence.written(block, etype, tid, shard):
            into.gaps.append(block_gap(block, f"visitors: {key} is missing (evicted?)"))
            return "lost"
        return None
    if isinstance(value, str):
        into.gaps.append(block_gap(block, f"visitors: {key} is corrupt ({value})"))
        return None
    return _take(value, key, tid, loader, into, block, report, evidence, etype)


def _take(
    value: Opened, key: str, tid: str, loader: Loader, into: _Found, block: Block, report: Callable[[str, str], None],
    evidence: _Evidence | _Written, etype: str,
) -> Outcome:
    """Add ``tid``'s sketch in ``value`` to ``into`` (or the gap that stands for it)."""
    if value.restored:
        into.gaps.append(block_gap(block, f"visitors: {key} was restored after a loss"))
    try:
        sketch = value.find(_entry_id(tid))
        if sketch is None:
            if evidence.entered(block, etype, tid):
                into.gaps.append(block_gap(block, f"visitors: {key} lacks {_entry_id(tid)}"))
                return "lost"
            return None
        if sketch == SPILLED:
            return "spilled"
        into.sketches.append(_Sketch(block[0], sketch, loader(key, tid, sketch)))
    except (CorruptValue, CorruptSketch) as error:
        report(key, str(error))
        into.gaps.append(block_gap(block, f"visitors: {key} is corrupt ({error})"))
    return None


def _estimates(
    found: Mapping[tuple[str, str], _Found], series: Sequence[str], ids: Sequence[str], total: bool, lg_k: int, per_series: bool = True,
    unions: DecodeCache | None = None,
) -> DistinctRead:
    """Every figure of a read, each the union of exactly the sketches it covers. With one series an
    id's figure is its series' figure (the same sketches: one union, not two); ``per_series=False``
    leaves ``by_series`` and ``series_totals`` out, for a reader that needs only the figures over
    the united series (``/api/v1/live`` unites three types: half the unions)."""
    gaps: list[Gap] = []
    for got in found.values():
        gaps.extend(g for g in got.gaps if g not in gaps)

    def of(names: Sequence[str], tid: str) -> Estimate | None:
        """The figure of ``tid`` over ``names``; None for an id without sketches (the total always has one)."""
        sketches = [s for name in names for s in found.get((name, tid), _Found()).sketches]
        return _estimate(sketches, lg_k, unions, (tuple(names), tid)) if sketches or tid == WHOLE else None

    by_series: dict[str, dict[str, Estimate]] = {name: {} for name in series}
    if per_series or len(series) == 1:
        for name in series:
            by_series[name] = {tid: estimate for tid in ids if (estimate := of((name,), tid)) is not None}
    by_id = {}
    for tid in ids:
        if len(series) == 1:
            if tid in by_series[series[0]]:
                by_id[tid] = by_series[series[0]][tid]
            continue
        if (estimate := of(series, tid)) is not None:
            by_id[tid] = estimate
    if not per_series:
        by_series = {}
    series_totals = {name: of((name,), WHOLE) for name in series} if total and per_series else {}
    whole = of(series, WHOLE) if total else None
    gaps.sort(key=lambda g: (g.first, g.why))
    return DistinctRead(whole, by_id, by_series, series_totals, tuple(gaps))  # type: ignore[arg-type]  # of(…, WHOLE) is never None


def _estimate(sketches: Sequence[_Sketch], lg_k: int, unions: DecodeCache | None, figure: tuple[tuple[str, ...], str]) -> Estimate:
    """:func:`~tui.distinct.sketch.estimate_loaded` of ``sketches``, the same figure to the last
    digit. With ``unions`` the union of the coarse blocks' sketches is kept by their exact bytes
    (all of them, in order), and the single buckets' sketches are added to it: uniting a 24 h
    window's ~90 dense coarse sketches was the largest part of a one-id read's CPU, and coarse
    blocks are closed (their bytes change only with a late write, which other bytes then miss),
    while single buckets change with every flush. A union is a register-wise maximum (a set union
    of coupons while sparse) and the estimate is settled (see ``estimate_loaded``), so uniting in
    two steps gives the registers, hence the figure, of uniting at once."""
    coarse = [s for s in sketches if s.span > 1]
    if unions is None or len(coarse) < 2:
        return estimate_loaded([s.loaded for s in sketches], lg_k)
    united = unions.decode((figure, lg_k, len(coarse)), tuple(s.data for s in coarse), lambda _: _unite([s.loaded for s in coarse], lg_k))
    return estimate_loaded([united, *(s.loaded for s in sketches if s.span == 1)], lg_k)


def _unite(sketches: Sequence[ds.hll_sketch], lg_k: int) -> ds.hll_sketch:
    """The union of ``sketches``, as a sketch with 8-bit registers (what a union holds: no loss)."""
    merged = ds.hll_union(lg_k)
    for sketch in sketches:
        merged.update(sketch)
    return merged.get_result(ds.tgt_hll_type.HLL_8)
