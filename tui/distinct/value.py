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
so a one-id read does not decode the whole value; :func:`decode` checks everything (the writer's
path). Anything malformed raises :class:`CorruptValue` with a reason; a sketch inside raises
:class:`~tui.distinct.sketch.CorruptSketch` when used.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

import datasketches as ds

from tui.distinct.sketch import CorruptSketch, load, union

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
    ids = sorted((tracking_id.encode("utf-8"), sketch) for tracking_id, sketch in entries.items())
    block = b"\n" + b"".join(raw + b"\n" for raw, _ in ids)
    offsets = [0]
    for _, sketch in ids:
        offsets.append(offsets[-1] + len(sketch))
    return b"".join(
        (_HEAD.pack(MAGIC, lg_k, RESTORED_FLAG if restored else 0, len(ids), len(block)), block, struct.pack(f"<{len(offsets)}I", *offsets), *(s for _, s in ids))
    )


def encoded_size(entries: Mapping[str, bytes]) -> int:
    """``len(encode(entries, lg_k))`` without building it."""
    return _HEAD.size + 1 + 4 + sum(len(t.encode("utf-8")) + 1 + 4 + len(s) for t, s in entries.items())


@dataclass(frozen=True)
class _Frame:
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


def merge(stored: bytes | None, delta: Mapping[str, bytes], lg_k: int, budget: int = DEFAULT_BUDGET, restored: bool = False) -> Merged:
    """Unite ``delta`` (id -> sketch of one flush) into the ``stored`` value (None: no value yet).

    Union is idempotent, so merging the same delta twice gives the same value: a ``cas`` retry or a
    repeated flush is harmless. A corrupt stored value or entry is replaced by the delta and named
    in ``problems``. While the value is over ``budget`` the largest sketches move to
    ``spilled`` (marked :data:`SPILLED` here); :class:`ValueTooLarge` if the ids alone do not fit.
    ``restored``: mark the new value restored (the writer knows the missing ``stored`` was lost)."""
    if budget > MAX_VALUE_BYTES:
        raise ValueError(f"budget: {budget:,} bytes is over the {MAX_VALUE_BYTES:,}-byte limit")
    merged = Merged(b"", restored=restored)
    entries: dict[str, bytes] = {}
    if stored is not None:
        try:
            frame = _frame(stored, lg_k)
            entries = _decode(stored, frame)
            merged.restored = merged.restored or frame.restored
        except CorruptValue as error:
            merged.problems.append(f"stored value replaced: {error}")
            merged.restored = True
    for tracking_id, sketch in delta.items():
        held = entries.get(tracking_id)
        if held == SPILLED:
            merged.spilled[tracking_id] = sketch
            continue
        try:
            entries[tracking_id] = union([sketch] if held is None else [held, sketch], lg_k)
        except CorruptSketch as error:
            entries[tracking_id] = union([sketch], lg_k)  # the delta is ours: if it were bad, this raises
            merged.problems.append(f"{tracking_id}: stored sketch replaced: {error}")
            merged.restored = True
    size = encoded_size(entries)
    if size > budget:
        for tracking_id in sorted(entries, key=lambda t: len(entries[t]), reverse=True):
            sketch = entries[tracking_id]
            if size <= budget or sketch == SPILLED:
                break
            merged.spilled[tracking_id] = sketch
            entries[tracking_id] = SPILLED
            size -= len(sketch)
        if size > budget:
            raise ValueTooLarge(f"{len(entries):,} ids take {size:,} bytes even with every sketch in its own key; budget {budget:,}")
    merged.value = encode(entries, lg_k, merged.restored)
    return merged


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
