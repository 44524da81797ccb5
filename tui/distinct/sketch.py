"""HyperLogLog sketches as bytes: build, union, estimate, each through Apache DataSketches.

A distinct count over a window cannot be added up from per-bucket counts, but HyperLogLog
sketches can be merged: the union of the sketches of the blocks that tile a window is the sketch of
the window. DataSketches (``datasketches`` on PyPI, the library Druid uses) does the hashing, the
estimators and the error bounds; this module fixes its parameters and keeps its bytes safe:

* every stored sketch is ``serialize_compact()`` of an ``HLL_4`` sketch: up to 7 visitors it is a
  list of 4-byte coupons, then a set of them, and only from about 3/4 × 2^(lg_k − 3) visitors
  the dense array of 2^lg_k four-bit registers, so an id with 10 visitors costs 52 bytes;
* union is a register-wise maximum, so ``union([a, a]) == a``: a retried or repeated write cannot
  count twice, which is why stored sketches need no per-writer entries or sequence numbers;
* bytes read from memcached pass :func:`tui.distinct.hll_format.problem` before they reach the C++
  decoder, which segfaults on malformed input (:class:`CorruptSketch` says why instead).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import repeat
from operator import sub
from typing import NamedTuple

import datasketches as ds

from tui.distinct.hll_format import HLL_MODE, OUT_OF_ORDER_FLAG, problem

#: 2^13 registers: the smallest size whose p95 error after unions stays under 3 % with margin
#: (2.3 % predicted, measured in bench/sketch.py); a dense sketch is 4,136 bytes. README "Distinct visitors".
DEFAULT_LG_K = 13
#: Sizes a prefix may choose: DataSketches' sets need lg_k ≥ 8; above 16 a dense sketch is over 32 KB.
MIN_LG_K, MAX_LG_K = 8, 16
#: The error bounds are given at two standard deviations (about 95 %).
STD_DEVS = 2
_HLL_4 = ds.tgt_hll_type.HLL_4
#: What an e-mail hash in ``[0, 2**64)`` is moved by into the signed range DataSketches' ``update(int)`` takes.
HASH_OFFSET = 1 << 63


class CorruptSketch(ValueError):
    """Stored bytes that are not a sketch this prefix writes; the message says why."""


class Estimate(NamedTuple):
    """A distinct count with its bounds at :data:`STD_DEVS` standard deviations."""

    value: float
    lower: float
    upper: float

    def to_json(self) -> dict[str, int]:
        return {"estimate": round(self.value), "lower": round(self.lower), "upper": round(self.upper)}

    def rounded(self) -> tuple[int, int, int]:
        """``(estimate, lower, upper)`` as whole numbers, the bounds kept around the estimate: it
        lies within them, and rounded each on its own a bound could pass it."""
        value = round(self.value)
        return value, min(round(self.lower), value), max(round(self.upper), value)


def check_lg_k(lg_k: int) -> int:
    """``lg_k`` when it is a size a prefix may use; ValueError naming the range otherwise."""
    if type(lg_k) is not int or not MIN_LG_K <= lg_k <= MAX_LG_K:
        raise ValueError(f"lg_k: {lg_k!r} is not a whole number from {MIN_LG_K} to {MAX_LG_K}")
    return lg_k


def sketch_of(items: Iterable[str], lg_k: int = DEFAULT_LG_K) -> bytes:
    """The compact sketch of the strings ``items`` (visitor ids; duplicates count once)."""
    return bytes(new_sketch(items, lg_k).serialize_compact())


def new_sketch(items: Iterable[str] | Iterable[int], lg_k: int = DEFAULT_LG_K, hashes: bool = False) -> ds.hll_sketch:
    """A sketch of ``items``: strings (visitor ids), or with ``hashes`` 64-bit e-mail hashes (see
    :func:`sketch_of_hashes`). The loop runs in C: no Python code per item."""
    sketch = ds.hll_sketch(lg_k, _HLL_4)
    deque(map(sketch.update, map(sub, items, repeat(HASH_OFFSET)) if hashes else items), maxlen=0)  # type: ignore[arg-type]
    return sketch


def sketch_of_hashes(hashes: Iterable[int], lg_k: int = DEFAULT_LG_K) -> bytes:
    """The compact sketch of 64-bit hashes in ``[0, 2**64)`` (:func:`tui.ingest.decode.hash_email`),
    shifted by 2**63 into the signed range DataSketches' ``update(int)`` takes, a bijection."""
    return bytes(new_sketch(hashes, lg_k, hashes=True).serialize_compact())


def load(data: bytes, lg_k: int = DEFAULT_LG_K) -> ds.hll_sketch:
    """A sketch from stored bytes, or :class:`CorruptSketch` saying why not (never a crash)."""
    reason = problem(data, lg_k)
    if reason is not None:
        raise CorruptSketch(reason)
    try:
        return ds.hll_sketch.deserialize(data)
    except (RuntimeError, ValueError, IndexError, MemoryError) as error:  # pragma: no cover - problem() refuses these first
        raise CorruptSketch(f"DataSketches refused it: {error}") from None


def union(blobs: Iterable[bytes], lg_k: int = DEFAULT_LG_K) -> bytes:
    """The compact sketch of the union of ``blobs`` (each checked; :class:`CorruptSketch` on the first bad one).

    This is the writer's merge: ``union([stored, delta])``. It is idempotent and commutative, so
    writers can apply deltas in any order, any number of times. The result is always *settled*: a
    dense sketch is marked out of order, so it is estimated with the composite estimator, as every
    union of dense sketches is. Otherwise the first write of a sketch would keep the HIP estimator
    and writing it a second time would move its estimate (by about 0.2 % at 20,000 visitors)."""
    return _settled_bytes(_union(blobs, lg_k), lg_k)


def unite_own(stored: bytes, own: bytes, lg_k: int = DEFAULT_LG_K) -> bytes:
    """``union([stored, own])`` where ``own`` is this process's own DataSketches serialization (a
    writer's delta): only ``stored`` is checked (:class:`CorruptSketch`). Checking the writer's own
    bytes again was half of the format checks of a flush at 100,000 ids, and guards against nothing
    (DataSketches wrote them a moment before)."""
    merged = ds.hll_union(lg_k)
    merged.update(load(stored, lg_k))
    merged.update(ds.hll_sketch.deserialize(own))
    return _settled_bytes(merged, lg_k)


def _settled_bytes(merged: ds.hll_union, lg_k: int) -> bytes:
    """A union's compact result, settled (see :func:`union`)."""
    result = merged.get_result(_HLL_4)
    data = bytes(result.serialize_compact())
    if in_order_dense(data):
        data = bytes(_settle(result, lg_k).get_result(_HLL_4).serialize_compact())
    return data


def estimate(blobs: Iterable[bytes], lg_k: int = DEFAULT_LG_K) -> Estimate:
    """The distinct count of the union of ``blobs``: one sketch, or the blocks that tile a window."""
    return estimate_loaded((load(data, lg_k) for data in blobs), lg_k)


def estimate_loaded(sketches: Iterable[ds.hll_sketch], lg_k: int = DEFAULT_LG_K) -> Estimate:
    """:func:`estimate` of sketches already passed through :func:`load`.

    Settled like :func:`union`'s results, so the estimate depends on the visitors only. A union
    that turns dense while it takes the coupons of sparse sketches stays in order and keeps the HIP
    estimator, which depends on the order the coupons came in: the order of the blocks, and each
    stored sketch's coupon order, which follows its writer's set iteration (``PYTHONHASHSEED``).
    The same window then read 1.3 % apart from one order to another (12,000 visitors in 30 blocks),
    and the dashboard's figures changed from run to run over the same events."""
    merged = ds.hll_union(lg_k)
    for sketch in sketches:
        merged.update(sketch)
    result = merged.get_result(_HLL_4)
    if in_order_dense(bytes(result.serialize_compact())):
        merged = _settle(result, lg_k)
    return Estimate(merged.get_estimate(), merged.get_lower_bound(STD_DEVS), merged.get_upper_bound(STD_DEVS))


def in_order_dense(data: bytes) -> bool:
    """Whether a compact sketch is dense and still estimated with HIP (not yet settled)."""
    return data[7] == HLL_MODE and not data[5] & OUT_OF_ORDER_FLAG


def _settle(sketch: ds.hll_sketch, lg_k: int) -> ds.hll_union:
    """A union of ``sketch`` with itself: the same registers, out of order, so estimated with the
    composite estimator, which depends on the registers alone."""
    settle = ds.hll_union(lg_k)
    settle.update(sketch)
    settle.update(sketch)  # a union of two dense sketches is out of order: the estimator is fixed
    return settle


def relative_error_bound(lg_k: int = DEFAULT_LG_K) -> float:
    """The a-priori relative error at :data:`STD_DEVS` standard deviations of a sketch built by union
    (the composite estimator, the worse of the two), as DataSketches states it."""
    return abs(ds.hll_sketch.get_rel_err(True, True, lg_k, STD_DEVS))


def _union(blobs: Iterable[bytes], lg_k: int) -> ds.hll_union:
    merged = ds.hll_union(lg_k)
    for data in blobs:
        merged.update(load(data, lg_k))
    return merged
