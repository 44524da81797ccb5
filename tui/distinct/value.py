"""One memcached value holding the sketches of many tracking ids: encode, strict decode, find, merge.

Store v2 keeps the sketches of one (block, series, shard) in one value, like the counts, so that a
flush costs one ``gets``/``cas`` per shard touched, not one per id. The layout (little-endian):

====================  =============================================================================
bytes                 meaning
====================  =============================================================================
4                     magic ``EDS1`` (eventdash sketches, version 1)
1                     ``lg_k`` of every sketch in it
1                     flags: 1 = *restored* (see below); no other bit
4                     ``n``, the number of ids
4                     ``ids_len``, the length of the id block
``ids_len``           ``\\n`` then each id (UTF-8) followed by ``\\n``, sorted by bytes, no duplicates
4 × (n + 1)           offsets of each id's sketch in the sketch area, from 0 to its length
rest                  the sketch area: id ``i``'s compact sketch is ``area[off[i]:off[i+1]]``
====================  =============================================================================

*Restored*: a writer found this value lost (evicted, or its server restarted) while the counts of
its block were still there, and wrote it again from what it still held. Visitors that other writers
(or this one, earlier) had put in it may be missing, so a reader reports every figure it makes from
it as ``incomplete`` rather than print a low number as exact.

An id's entry may be empty: :data:`SPILLED`, "this id's sketch for this block is in its own key".
:func:`merge` moves the largest sketches there while the value would be over its byte budget,
so a value never grows past it whatever the traffic; the own key's value is this same format
with that one id, which the reader checks.

:func:`find` reads one id in C-speed steps (``bytes.find`` in the id block, then two offsets),
so a one-id read does not decode the whole value; :func:`decode` checks everything, and
:func:`merge` (the writer's path) checks the same framing without decoding: it copies the entries
it does not touch as they are. Anything malformed raises :class:`CorruptValue` with a reason; a
sketch inside raises :class:`~tui.distinct.sketch.CorruptSketch` when used.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, islice
from operator import itemgetter, lt, sub
from typing import NamedTuple

import datasketches as ds

from tui.distinct.hll_format import HLL_MODE, LIST_MODE, problem
from tui.distinct.sketch import CorruptSketch, in_order_dense, load, union, unite_own

MAGIC = b"EDS1"
_HEAD = struct.Struct("<4sBBII")
RESTORED_FLAG = 1
#: Store v2's limit for any value.
MAX_VALUE_BYTES = 512 * 1024
#: Default budget of a shared value: a one-id read of a 24 h window gets about 45 of them, so they
#: are kept far below the limit (README "Distinct visitors"); bigger sketches spill to own keys.
DEFAULT_BUDGET = 64 * 1024
#: The longest id a value may hold, as the ingest decoder's ``tracking_id_bytes``.
MAX_ID_BYTES = 128
#: An entry that says "in its own key".
SPILLED = b""


class CorruptValue(ValueError):
    """A stored value that is not in this format; the message says why."""


class ValueTooLarge(ValueError):
    """Even with every sketch spilled, the ids alone are over the budget: more shards are needed."""


def encode(entries: Mapping[str, bytes], lg_k: int, restored: bool = False) -> bytes:
    """The value holding ``entries`` (id -> compact sketch, or :data:`SPILLED`); ``restored``: see the module doc."""
    pairs = sorted((tracking_id.encode("utf-8"), sketch) for tracking_id, sketch in entries.items())
    return _pack([raw for raw, _ in pairs], [sketch for _, sketch in pairs], lg_k, restored)


def _pack(ids: Sequence[bytes], entries: Sequence[bytes | memoryview], lg_k: int, restored: bool) -> bytes:
    """The layout of the module doc, from the ids (UTF-8, sorted) and their entries in that order."""
    block = b"\n" + b"\n".join(ids) + b"\n" if ids else b"\n"
    offsets = accumulate(map(len, entries), initial=0)
    head = _HEAD.pack(MAGIC, lg_k, RESTORED_FLAG if restored else 0, len(ids), len(block))
    return b"".join((head, block, struct.pack(f"<{len(ids) + 1}I", *offsets), *entries))


def _packed_size(ids: Sequence[bytes], lengths: Sequence[int]) -> int:
    """``len(_pack(ids, entries, ...))`` for entries of ``lengths``, without building it."""
    return _HEAD.size + 1 + 4 + sum(map(len, ids)) + 5 * len(ids) + sum(lengths)


class _Frame(NamedTuple):
    """A checked header (a tuple: made once per value a read opens, a hundred a one-id read)."""

    n: int
    block: bytes
    offsets_at: int
    area_at: int
    restored: bool


def _frame(data: bytes, lg_k: int) -> _Frame:
    """The header checked against the length: every later slice is in bounds."""
    if type(data) is not bytes:
        raise CorruptValue(f"expected bytes, got {type(data).__name__}")
    if len(data) < _HEAD.size:
        raise CorruptValue(f"{len(data)} bytes is shorter than the {_HEAD.size}-byte header")
    magic, data_lg_k, flags, n, ids_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CorruptValue(f"magic {magic!r}, expected {MAGIC!r}")
    if data_lg_k != lg_k:
        raise CorruptValue(f"lg_k is {data_lg_k}, expected {lg_k}")
    if flags & ~RESTORED_FLAG:
        raise CorruptValue(f"flags {flags:#04x}: only {RESTORED_FLAG} (restored) is defined")
    offsets_at = _HEAD.size + ids_len
    area_at = offsets_at + 4 * (n + 1)
    if area_at > len(data):
        raise CorruptValue(f"{n} ids and a {ids_len}-byte id block do not fit in {len(data)} bytes")
    block = data[_HEAD.size : offsets_at]
    if block[:1] != b"\n" or block[-1:] != b"\n" or block.count(b"\n") != n + 1:
        raise CorruptValue(f"the id block does not hold {n} newline-framed ids")
    (last,) = struct.unpack_from("<I", data, area_at - 4)
    if area_at + last != len(data):
        raise CorruptValue(f"the sketch area is {len(data) - area_at} bytes but the last offset says {last}")
    return _Frame(n, block, offsets_at, area_at, bool(flags & RESTORED_FLAG))


def _entry(data: bytes, frame: _Frame, index: int) -> bytes:
    start, end = struct.unpack_from("<2I", data, frame.offsets_at + 4 * index)
    if not start <= end <= len(data) - frame.area_at:
        raise CorruptValue(f"entry {index}: offsets {start}..{end} are not in order within the sketch area")
    return data[frame.area_at + start : frame.area_at + end]


class Opened:
    """A value whose frame was checked once, for finding many ids in it (a window read)."""

    def __init__(self, data: bytes, lg_k: int) -> None:
        """:class:`CorruptValue` if the frame is bad."""
        self._data, self._frame = data, _frame(data, lg_k)
        self.restored = self._frame.restored

    def find(self, tracking_id: str) -> bytes | None:
        """As :func:`find`."""
        return _find(self._data, self._frame, tracking_id)


def find(data: bytes, tracking_id: str, lg_k: int) -> bytes | None:
    """``tracking_id``'s sketch in ``data``; :data:`SPILLED` if in its own key; None if absent."""
    return _find(data, _frame(data, lg_k), tracking_id)


def _find(data: bytes, frame: _Frame, tracking_id: str) -> bytes | None:
    if "\n" in tracking_id:
        return None
    at = frame.block.find(b"\n" + tracking_id.encode("utf-8") + b"\n")
    if at < 0:
        return None
    return _entry(data, frame, frame.block.count(b"\n", 0, at))


def decode(data: bytes, lg_k: int) -> dict[str, bytes]:
    """Every entry of ``data``, its framing fully checked (ids valid, sorted and unique; offsets in
    order). The sketches themselves are checked when they are used."""
    return _decode(data, _frame(data, lg_k))


def is_restored(data: bytes, lg_k: int) -> bool:
    """Whether the value is marked restored (module doc); :class:`CorruptValue` if its frame is bad."""
    return _frame(data, lg_k).restored


def _decode(data: bytes, frame: _Frame) -> dict[str, bytes]:
    raw_ids = frame.block[1:-1].split(b"\n") if frame.n else []
    if raw_ids != sorted(set(raw_ids)):
        raise CorruptValue("the ids are not sorted and unique")
    entries: dict[str, bytes] = {}
    for index, raw in enumerate(raw_ids):
        try:
            tracking_id = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptValue(f"id {index} is not UTF-8") from None
        if not (0 < len(raw) <= MAX_ID_BYTES and tracking_id.isprintable() and " " not in tracking_id):
            raise CorruptValue(f"id {index} {tracking_id[:40]!a} is not a tracking id")
        entries[tracking_id] = _entry(data, frame, index)
    return entries


@dataclass
class Merged:
    """What :func:`merge` decided: the new value, sketches to unite into own keys, and problems."""

    value: bytes
    #: id -> sketch to unite into that id's own key for this block (it does not fit here).
    spilled: dict[str, bytes] = field(default_factory=dict)
    #: One sentence per corrupt thing found and replaced (the whole stored value, or one entry).
    problems: list[str] = field(default_factory=list)
    #: The new value is marked restored: asked for, carried over from the stored value, or because
    #: something corrupt in it was replaced (what it held is gone).
    restored: bool = False
    #: The ids of ``spilled`` whose stored entry already said :data:`SPILLED`: their own key was
    #: written before that mark, so a writer that finds it missing knows it was lost.
    was_spilled: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Held:
    """A stored value opened for a merge (:func:`_open`): framing checked, no entry copied out."""

    restored: bool
    #: The ids as stored (sorted, unique, valid) and their id block.
    ids: list[bytes]
    block: bytes
    #: Each entry's length (0: :data:`SPILLED`), and its offsets in ``area``: entry ``i`` is
    #: ``area[offsets[i]:offsets[i + 1]]``.
    lengths: list[int]
    offsets: tuple[int, ...]
    #: The sketch area, a view of the stored bytes.
    area: memoryview

    def entry(self, index: int) -> bytes:
        return bytes(self.area[self.offsets[index] : self.offsets[index + 1]])


_NOTHING_HELD = _Held(False, [], b"\n", [], (0,), memoryview(b""))


def _open(data: bytes, lg_k: int) -> _Held:
    """``data`` checked as :func:`decode` checks it (:class:`CorruptValue` naming the first fault),
    in C-speed passes over its id block and offsets rather than a Python step per id: the writer
    opens every value it merges into, up to some 1,600 ids each at 100,000 ids."""
    frame = _frame(data, lg_k)
    ids = frame.block[1:-1].split(b"\n") if frame.n else []
    offsets = struct.unpack_from(f"<{frame.n + 1}I", data, frame.offsets_at)
    lengths = list(map(sub, offsets[1:], offsets[:-1]))
    if not (_ids_are_valid(ids, frame.block) and min(lengths, default=0) >= 0):
        _decode(data, frame)  # raises, naming the first bad id or entry
    return _Held(frame.restored, ids, frame.block, lengths, offsets, memoryview(data)[frame.area_at :])


def _ids_are_valid(ids: list[bytes], block: bytes) -> bool:
    """Whether every id passes :func:`_decode`'s checks (sorted and unique, 1 to
    :data:`MAX_ID_BYTES` bytes, UTF-8, printable, no space), checked on the whole block at once. A
    newline cannot occur inside a UTF-8 sequence, so the block is UTF-8 exactly when each id is."""
    if not ids:
        return True
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return (
        all(map(lt, ids, islice(ids, 1, None)))
        and 0 < min(map(len, ids))
        and max(map(len, ids)) <= MAX_ID_BYTES
        and " " not in text
        and text.replace("\n", "").isprintable()
    )


def _settled(sketch: bytes, lg_k: int) -> bytes:
    """``union([sketch])``, a new id's entry; the sketch itself when that is what the union gives
    (a list, or a dense sketch already out of order; not a set, whose coupons a union lists in
    another order). The writer's deltas are DataSketches' own bytes, so these are not checked
    again; anything else goes through :func:`~tui.distinct.sketch.union`, which checks it."""
    if len(sketch) > 7 and (sketch[7] == LIST_MODE or (sketch[7] == HLL_MODE and not in_order_dense(sketch))):
        return sketch
    return union([sketch], lg_k)


@dataclass
class _Edits:
    """What a merge changes in the stored value: entries replaced and ids inserted, by index."""

    #: stored index -> its new sketch
    replaced: dict[int, bytes] = field(default_factory=dict)
    #: (the stored index it goes before, id, sketch)
    inserted: list[tuple[int, bytes, bytes]] = field(default_factory=list)


def merge(stored: bytes | None, delta: Mapping[str, bytes], lg_k: int, budget: int = DEFAULT_BUDGET, restored: bool = False) -> Merged:
    """Unite ``delta`` (id -> sketch of one flush) into the ``stored`` value (None: no value yet).

    Union is idempotent, so merging the same delta again changes no visitor in the value: a ``cas``
    retry or a repeated flush is harmless. A corrupt stored value or entry is replaced by the delta
    and named in ``problems``. While the value is over ``budget`` the largest sketches move to
    ``spilled`` (marked :data:`SPILLED` here); :class:`ValueTooLarge` if the ids alone do not fit.
    ``restored``: mark the new value restored (the writer knows the missing ``stored`` was lost).
    ``delta`` holds DataSketches' own bytes (a writer's, or stored entries already checked): only
    the stored side is checked (:func:`_settled`, :func:`~tui.distinct.sketch.unite_own`).

    The stored value is patched, not decoded: its framing is checked as :func:`decode` checks it,
    only the entries of the delta's ids are read (and checked, by the union), the others are copied
    as they are, and the result is byte for byte what decoding every entry and encoding them again
    gave (``tests/test_sketch.py`` keeps that path as its oracle). A stored entry that must spill
    is checked first (:func:`_spill`)."""
    if budget > MAX_VALUE_BYTES:
        raise ValueError(f"budget: {budget:,} bytes is over the {MAX_VALUE_BYTES:,}-byte limit")
    merged = Merged(b"", restored=restored)
    held = _NOTHING_HELD
    if stored is not None:
        try:
            held = _open(stored, lg_k)
            merged.restored = merged.restored or held.restored
        except CorruptValue as error:
            merged.problems.append(f"stored value replaced: {error}")
            merged.restored = True
    edits = _Edits()
    ids, lengths = held.ids, held.lengths
    for tracking_id, sketch in delta.items():
        raw = tracking_id.encode("utf-8")
        at = bisect_left(ids, raw)
        if at == len(ids) or ids[at] != raw:
            edits.inserted.append((at, raw, _settled(sketch, lg_k)))
        elif lengths[at] == 0:  # SPILLED
            merged.spilled[tracking_id] = sketch
            merged.was_spilled.add(tracking_id)
        else:
            try:
                edits.replaced[at] = unite_own(held.entry(at), sketch, lg_k)
            except CorruptSketch as error:
                edits.replaced[at] = union([sketch], lg_k)  # the delta is ours: if it were bad, this raises
                merged.problems.append(f"{tracking_id}: stored sketch replaced: {error}")
                merged.restored = True
    ids, entries = _apply(held, edits)
    lengths = list(map(len, entries))
    size = _packed_size(ids, lengths)
    if size > budget:
        _spill(merged, held, edits, ids, entries, lengths, size, lg_k, budget)
    merged.value = _pack(ids, entries, lg_k, merged.restored)
    return merged


def _apply(held: _Held, edits: _Edits) -> tuple[list[bytes], list[bytes | memoryview]]:
    """The merged value's ids and entries, in order; the stored entries not replaced are views of
    the stored bytes, not copies. C-speed steps per id (a slice, a sort of sorted runs), Python ones
    per edit only."""
    entries: list[bytes | memoryview] = list(map(held.area.__getitem__, map(slice, held.offsets, held.offsets[1:])))
    for at, sketch in edits.replaced.items():
        entries[at] = sketch
    if not edits.inserted:
        return held.ids, entries
    pairs = list(zip(held.ids, entries))
    pairs += [(raw, sketch) for _, raw, sketch in edits.inserted]
    pairs.sort(key=_ID)
    return list(map(_ID, pairs)), list(map(_ENTRY, pairs))


_ID, _ENTRY = itemgetter(0), itemgetter(1)


def _spill(
    merged: Merged, held: _Held, edits: _Edits, ids: list[bytes], entries: list[bytes | memoryview], lengths: list[int], size: int, lg_k: int, budget: int,
) -> None:
    """Move the largest sketches to ``merged.spilled`` (:data:`SPILLED` in ``entries`` and
    ``lengths``) until the value, ``size`` bytes as it stands, fits ``budget``. Of equal sizes, stored ids go first in their
    order, then new ids in the delta's: the order a decoded value's dict had.

    A stored entry that no union read (a view of the stored bytes) is checked before it goes: its
    own key's merge would take it for one of the writer's sketches. A corrupt one is dropped,
    named in ``problems``, and the value marked restored (what it held is gone)."""
    rank = dict(zip(held.ids, range(len(held.ids))))
    rank.update((raw, len(held.ids) + order) for order, (_, raw, _) in enumerate(edits.inserted))
    for index in sorted(range(len(ids)), key=lambda i: (-lengths[i], rank[ids[i]])):
        if size <= budget or lengths[index] == 0:
            break
        tracking_id, sketch = ids[index].decode("utf-8"), bytes(entries[index])
        reason = problem(sketch, lg_k) if isinstance(entries[index], memoryview) else None
        if reason is None:
            merged.spilled[tracking_id] = sketch
        else:
            merged.problems.append(f"{tracking_id}: stored sketch dropped (corrupt, and over the budget): {reason}")
            merged.restored = True
        size -= lengths[index]
        lengths[index], entries[index] = 0, SPILLED
    if size > budget:
        raise ValueTooLarge(f"{len(ids):,} ids take {size:,} bytes even with every sketch in its own key; budget {budget:,}")


@dataclass
class Collected:
    """One id's sketches gathered from the values of the blocks that tile a window."""

    #: Loaded (checked) sketches: :func:`tui.distinct.sketch.estimate_loaded` of them is the count.
    sketches: list[ds.hll_sketch] = field(default_factory=list)
    #: Keys whose entry is :data:`SPILLED`: get the id's own key of each of these blocks next.
    spilled: list[str] = field(default_factory=list)
    #: key -> why its value or entry was ignored (report it; the window is then incomplete).
    corrupt: dict[str, str] = field(default_factory=dict)
    #: Keys whose value is marked restored: what it gives may be low (the window is then incomplete).
    restored: list[str] = field(default_factory=list)
    #: Keys whose value holds no entry for the id.
    absent: list[str] = field(default_factory=list)


def collect(values: Mapping[str, bytes | None], tracking_id: str, lg_k: int) -> Collected:
    """``tracking_id``'s sketch from each value (key -> bytes, None for a missing key, which the
    caller reports as it does for counts); the union of ``sketches`` is the window's sketch."""
    found = Collected()
    for key, data in values.items():
        if data is None:
            continue
        try:
            opened = Opened(data, lg_k)
            sketch = opened.find(tracking_id)
            if opened.restored:
                found.restored.append(key)
            if sketch is None:
                found.absent.append(key)
            elif sketch == SPILLED:
                found.spilled.append(key)
            else:
                found.sketches.append(load(sketch, lg_k))
        except (CorruptValue, CorruptSketch) as error:
            found.corrupt[key] = str(error)
    return found
