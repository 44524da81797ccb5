"""The one gate in front of DataSketches' HLL decoder: bytes from memcached are checked here first.

``datasketches.hll_sketch.deserialize`` (5.2.0) trusts its input. Measured with random and mutated
bytes (README "Distinct visitors"): a 4-byte value segfaults it, a list whose count byte exceeds its
8 slots overflows the heap, a large ``lg_k`` byte makes it allocate gigabytes, and a wrong aux count
reads past the end. A value in memcached can be anything (another program, a bit flip, an attacker
on the network), so nothing reaches the C++ decoder unless it is exactly a compact ``HLL_4`` sketch
with the prefix's ``lg_k`` as ``serialize_compact()`` writes it, every field consistent with the
length and with every other field. :func:`problem` says what is wrong, in one sentence, or None.

The layout (DataSketches ``HllUtil.hpp``; little-endian):

====  =====================================================================================
byte  meaning
====  =====================================================================================
0     preamble ints: 2 list, 3 set, 10 HLL array
1     serial version, 1
2     family, 7 (HLL)
3     ``lg_k``
4     log2 of the list's or set's table size (the aux table's for HLL, unused when compact)
5     flags: 4 empty, 8 compact, 16 out of order (set after a union); no other bit
6     list: coupon count; HLL: ``cur_min``
7     mode: low 2 bits list/set/HLL, next 2 bits the target type (0 = ``HLL_4``)
====  =====================================================================================

List: 4-byte coupons from byte 8. Set: the coupon count as u32 at byte 8, coupons from byte 12.
HLL: three doubles at 8, 16, 24 (HIP accumulator, kxq0, kxq1), u32 number at ``cur_min`` at 32,
u32 aux count at 36, ``k / 2`` bytes of 4-bit registers from 40, then one 4-byte aux entry per
register whose value did not fit in 4 bits. A coupon is ``value << 26 | slot``, value 1..63.

The checks run at C speed (``bytes.translate``/``count``, ``array``), so a read that validates 45
dense sketches stays well under a millisecond (``bench/sketch.py``).
"""

from __future__ import annotations

import math
import struct
import sys
from array import array

LIST_PREINTS, SET_PREINTS, HLL_PREINTS = 2, 3, 10
SER_VER, FAMILY = 1, 7
EMPTY_FLAG, COMPACT_FLAG, OUT_OF_ORDER_FLAG = 4, 8, 16
ALLOWED_FLAGS = EMPTY_FLAG | COMPACT_FLAG | OUT_OF_ORDER_FLAG
LIST_MODE, SET_MODE, HLL_MODE = 0, 1, 2
LIST_START, SET_START, HLL_START = 8, 12, 40
LIST_LG_ARR = 3  # a list holds at most 7 coupons; the 8th promotes it to a set
SET_MIN_LG_ARR = 5
AUX_TOKEN = 15  # a 4-bit register holding 15 means "see the aux entry for this slot"
MAX_VALUE = 63  # the largest register value a coupon can carry
KEY_BITS = 26

#: For each byte, how many of its two 4-bit registers are 0 (resp. 15): counted with translate.
_ZERO_NIBBLES = bytes(((b & 15) == 0) + ((b >> 4) == 0) for b in range(256))
_TOKEN_NIBBLES = bytes(((b & 15) == AUX_TOKEN) + ((b >> 4) == AUX_TOKEN) for b in range(256))


def _nibbles(registers: bytes, table: bytes) -> int:
    marks = registers.translate(table)
    return marks.count(1) + 2 * marks.count(2)


def _u32s(data: bytes) -> array[int]:
    words = array("I")
    if words.itemsize != 4:  # pragma: no cover - every platform CPython runs on has a 4-byte unsigned int
        words = array("L")
    words.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover - the format is little-endian
        words.byteswap()
    return words


def _coupons_problem(coupons: array[int]) -> str | None:
    """Coupons of a list or set: none empty, each value 1..63, no duplicates. A u32's value (its top
    6 bits) is at most 63, so only "at least 1" needs a look, and ``min`` does it in C: a set of 700
    coupons was 0.2 ms checked one by one in Python, on every union a writer makes."""
    if coupons and min(coupons) >> KEY_BITS < 1:
        coupon = next(c for c in coupons if c >> KEY_BITS < 1)
        return f"coupon {coupon:#010x} has value {coupon >> KEY_BITS}, not 1..{MAX_VALUE}"
    if len(set(coupons)) != len(coupons):
        return "a coupon appears twice"
    return None


def problem(data: bytes, lg_k: int) -> str | None:
    """Why ``data`` is not a compact ``HLL_4`` sketch of ``lg_k`` that is safe to deserialize; None if it is."""
    if type(data) is not bytes:
        return f"expected bytes, got {type(data).__name__}"
    size = len(data)
    if size < LIST_START:
        return f"{size} bytes is shorter than the 8-byte preamble"
    preints, ser_ver, family, data_lg_k, lg_arr, flags, count_or_min, mode = data[:8]
    if ser_ver != SER_VER or family != FAMILY:
        return f"not an HLL sketch (serial version {ser_ver}, family {family}; expected {SER_VER}, {FAMILY})"
    if data_lg_k != lg_k:
        return f"lg_k is {data_lg_k}, expected {lg_k}"
    if flags & ~ALLOWED_FLAGS or not flags & COMPACT_FLAG:
        return f"flags {flags:#04x}: expected compact (8), optionally empty (4) or out of order (16), nothing else"
    if mode not in (LIST_MODE, SET_MODE, HLL_MODE):
        return f"mode byte {mode:#04x}: expected list, set or HLL of target type HLL_4"
    empty = bool(flags & EMPTY_FLAG)
    expected_preints = {LIST_MODE: LIST_PREINTS, SET_MODE: SET_PREINTS, HLL_MODE: HLL_PREINTS}[mode]
    if preints != expected_preints:
        return f"{preints} preamble ints for mode {mode}; expected {expected_preints}"
    if mode == LIST_MODE:
        return _list_problem(data, lg_arr, count_or_min, empty)
    if empty:
        return "the empty flag is set on a set or HLL sketch"
    if mode == SET_MODE:
        return _set_problem(data, lg_k, lg_arr)
    return _hll_problem(data, lg_k, count_or_min)


def _list_problem(data: bytes, lg_arr: int, count: int, empty: bool) -> str | None:
    if lg_arr != LIST_LG_ARR:
        return f"list table size 2^{lg_arr}; expected 2^{LIST_LG_ARR}"
    if count >= 1 << LIST_LG_ARR:
        return f"list of {count} coupons; a list holds at most {(1 << LIST_LG_ARR) - 1}"
    if empty != (count == 0):
        return f"empty flag {empty} with {count} coupons"
    if len(data) != LIST_START + 4 * count:
        return f"{len(data)} bytes for a list of {count} coupons; expected {LIST_START + 4 * count}"
    return _coupons_problem(_u32s(data[LIST_START:]))


def _set_problem(data: bytes, lg_k: int, lg_arr: int) -> str | None:
    if len(data) < SET_START:
        return f"{len(data)} bytes is shorter than a set's 12-byte preamble"
    (count,) = struct.unpack_from("<I", data, 8)
    most = 3 << (lg_k - 5)  # 3/4 of the largest table, 2^(lg_k-3); one more promotes it to HLL
    if not 1 <= count <= most:
        return f"set of {count} coupons; expected 1..{most} at lg_k {lg_k}"
    if not SET_MIN_LG_ARR <= lg_arr <= lg_k - 3:
        return f"set table size 2^{lg_arr}; expected 2^{SET_MIN_LG_ARR}..2^{lg_k - 3}"
    if len(data) != SET_START + 4 * count:
        return f"{len(data)} bytes for a set of {count} coupons; expected {SET_START + 4 * count}"
    return _coupons_problem(_u32s(data[SET_START:]))


def _hll_problem(data: bytes, lg_k: int, cur_min: int) -> str | None:
    k = 1 << lg_k
    if len(data) < HLL_START + k // 2:
        return f"{len(data)} bytes is shorter than an HLL_4 sketch of lg_k {lg_k} ({HLL_START + k // 2})"
    hip, kxq0, kxq1 = struct.unpack_from("<3d", data, 8)
    num_at_min, aux_count = struct.unpack_from("<2I", data, 32)
    for name, x in (("HIP accumulator", hip), ("kxq0", kxq0), ("kxq1", kxq1)):
        if not (math.isfinite(x) and x >= 0):
            return f"{name} is {x!r}, not a finite non-negative number"
    if kxq0 > k or kxq1 > k:
        return f"kxq0 {kxq0!r} or kxq1 {kxq1!r} is over k = {k}"
    if cur_min > MAX_VALUE - AUX_TOKEN:
        return f"cur_min {cur_min} is over {MAX_VALUE - AUX_TOKEN}"
    end = HLL_START + k // 2
    if len(data) != end + 4 * aux_count:
        return f"{len(data)} bytes for an HLL_4 sketch with {aux_count} aux entries; expected {end + 4 * aux_count}"
    registers = data[HLL_START:end]
    if _nibbles(registers, _ZERO_NIBBLES) != num_at_min:
        return f"{num_at_min} registers said to be at cur_min, {_nibbles(registers, _ZERO_NIBBLES)} are"
    if _nibbles(registers, _TOKEN_NIBBLES) != aux_count:
        return f"{aux_count} aux entries for {_nibbles(registers, _TOKEN_NIBBLES)} registers that need one"
    slots = set()
    for entry in _u32s(data[end:]):
        slot, value = entry & ((1 << KEY_BITS) - 1), entry >> KEY_BITS
        if slot >= k or slot in slots or (registers[slot >> 1] >> 4 * (slot & 1)) & 15 != AUX_TOKEN:
            return f"aux entry for slot {slot}: not a distinct slot below {k} whose register says 'aux'"
        if not cur_min + AUX_TOKEN <= value <= MAX_VALUE:
            return f"aux entry for slot {slot} has value {value}, not {cur_min + AUX_TOKEN}..{MAX_VALUE}"
        slots.add(slot)
    return None
