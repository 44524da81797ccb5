"""The one small storage interface that the writer and the reader talk to, with memory and memcached behind it.

Both stores keep the same values under the same keys (:mod:`tui.store.layout`), written and read by
the same code (:mod:`tui.store.merge`, :mod:`tui.store.reads`); a store only provides memcached's
few operations (``get_many``, ``gets_many``, ``add``, ``cas``; ``store_many`` sends many of the last
two in one round trip where the backend can) and its failure handling. So the embedded store is
semantically identical to memcached, and every test runs against both.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tui.distinct.sketch import DEFAULT_LG_K
from tui.settings import SettingsError
from tui.store.codec import (
    Corrupt,
    Meta,
    decode_meta,
    decode_summary,
    encode,
)
from tui.store.decode_cache import DecodeCache
from tui.store.layout import DEFAULT_SHARDS, LAYOUT_VERSION, MAX_SHARDS, Layout, memcached_expiry
from tui.store.merge import MAX_CAS_ATTEMPTS, Absolute, TooLarge, Write, cas_until_stored, flush
from tui.store.reads import BlocksRead, read_blocks
from tui.store.sketch_reads import DistinctRead, read_distinct
from tui.store.sketches import PendingSketches, flush_sketches
from tui.store.writer_state import WriterState
from tui.store.written import Written
from tui.window import Block

T = TypeVar("T")
#: Loaded sketches a store keeps (see ``Store._sketches``): the closed blocks of a few hundred one-id
#: reads of a 24 h window, or of thousands over 5 minutes.
SKETCH_CACHE_ENTRIES = 4_096
#: Unions of a figure's coarse blocks a store keeps (see ``read_distinct``): each holds the bytes it
#: was made of (about 230 KB for a busy id's 24 h), so the ids read over and over, not every id.
UNION_CACHE_ENTRIES = 64


class StoreUnavailable(Exception):
    """The store cannot be reached or answered wrongly; the message says which server and why."""


class PrefixConflict(SettingsError, StoreUnavailable):
    """This process's settings differ from the prefix's metadata: refused (exit 2), never written."""


@dataclass(frozen=True)
class Health:
    """What the header and the stderr line say about the store."""

    backend: str  # "memory" or "memcached"
    ok: bool
    detail: str  # e.g. "127.0.0.1:11211 · 0.3 ms" or the error
    latency_ms: float | None = None
    evictions: int | None = None
    #: The servers that did not answer, with why: ``(("127.0.0.1:11211", "Connection refused"),)``.
    down: tuple[tuple[str, str], ...] = ()

    def unreachable(self) -> str:
        """``memcached 127.0.0.1:11211 unreachable (Connection refused)``: what a person reads."""
        return "; ".join(f"memcached {address} unreachable ({why})" for address, why in self.down)
    #: Corrupt values found since the last probe, each "key: why" (each key and reason once).
    corrupt: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrefixSettings:
    """What a process asks of a prefix: checked against (or written to) its meta key."""

    bucket_seconds: int
    retention: Mapping[int, int]
    window_minutes: float
    lg_k: int = DEFAULT_LG_K


class Store(ABC):
    """Where the counts live. Methods are safe to call from several threads."""

    backend: str
    #: Where, for messages: "in memcached 127.0.0.1:11211" or "in the embedded store".
    where: str
    prefix: str

    def __init__(self) -> None:
        self._reported: set[tuple[str, str]] = set()
        self._new_reports: list[str] = []
        self.meta: Meta | None = None
        #: Reads decode each stored value once while its bytes stay the same (closed blocks).
        self._decoded = DecodeCache()
        #: Loaded visitor sketches by their bytes, apart from the counts' values (a window read of
        #: the 1,000 busiest ids loads tens of thousands, which would push the counts out). Dense
        #: sketches are 4 KB, so fewer entries: at most ~35 MB with every one dense.
        self._sketches = DecodeCache(SKETCH_CACHE_ENTRIES)
        self._unions = DecodeCache(UNION_CACHE_ENTRIES)
        self._written: dict[str, Written] = {}  # by writer id: what each writer stored last
        self._written_lock = threading.Lock()

    # -- what a backend provides ------------------------------------------------------------------

    @abstractmethod
    def _call(self, action: str, operation: Callable[[], T]) -> T:
        """Run an operation, turning the backend's failures into :class:`StoreUnavailable`."""

    @abstractmethod
    def get_many(self, keys: list[str]) -> dict[str, bytes]: ...

    @abstractmethod
    def gets_many(self, keys: list[str]) -> dict[str, tuple[bytes, Any]]: ...

    @abstractmethod
    def add(self, key: str, data: bytes, expire: int) -> bool: ...

    @abstractmethod
    def cas(self, key: str, data: bytes, token: Any, expire: int) -> bool: ...

    def store_many(self, writes: Sequence[Write]) -> list[bool]:
        """Each write as ``add`` (token None) or ``cas``, in order; whether each was stored. A backend
        that can send them in one round trip overrides this (memcached does)."""
        return [self.add(key, data, expire) if token is None else self.cas(key, data, token, expire) for key, data, token, expire in writes]

    @abstractmethod
    def set(self, key: str, data: bytes, expire: int) -> None:
        """Unconditional write: for tests and tools that plant values, never for counts."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Drop a value as an eviction would: for tests and tools, never for counts."""

    @abstractmethod
    def now(self) -> float:
        """Wall time for freshness checks of stored timestamps."""

    @abstractmethod
    def generation(self) -> str:
        """A token that changes whenever the store has lost its data (e.g. restarted)."""

    @abstractmethod
    def health(self) -> Health:
        """Probe the store: reachable or not, and how fast (and the corrupt values found since)."""

    def close(self) -> None:
        """Release connections."""

    def fetch(self, action: str, keys: list[str]) -> dict[str, bytes]:
        """``get_many`` with failures turned into :class:`StoreUnavailable`."""
        return self._call(action, lambda: self.get_many(keys))

    # -- corrupt values -----------------------------------------------------------------------------

    def report(self, key: str, why: str) -> None:
        """Note a corrupt value; each (key, why) is reported once, at the next :meth:`health`."""
        if (key, why) not in self._reported:
            self._reported.add((key, why))
            self._new_reports.append(f"{key}: {why}")

    def _take_reports(self) -> tuple[str, ...]:
        reports, self._new_reports = tuple(self._new_reports), []
        return reports

    # -- the prefix's metadata -----------------------------------------------------------------------

    def open_prefix(self, wanted: PrefixSettings, action: str = "reading the prefix's metadata") -> Layout:
        """Agree on the prefix's layout: create its meta key (``add``, no expiry) or check ours
        against it. Raises :class:`PrefixConflict` naming both values; a corrupt meta is reported
        and replaced by ours."""
        return self._call(action, lambda: self._open_prefix(wanted))

    def _open_prefix(self, wanted: PrefixSettings) -> Layout:
        key = f"{self.prefix}meta"
        now_ms = int(self.now() * 1000)
        ours = Meta(LAYOUT_VERSION, wanted.bucket_seconds, DEFAULT_SHARDS, dict(wanted.retention), wanted.window_minutes, now_ms, wanted.lg_k)
        for _ in range(MAX_CAS_ATTEMPTS):
            found = self.gets_many([key]).get(key)
            if found is None:
                if self.add(key, encode(ours.to_json()), 0):
                    return self._adopt(ours)
                continue
            try:
                meta = decode_meta(found[0], now_ms, MAX_SHARDS)
            except Corrupt as exc:
                self.report(key, str(exc))
                if self.cas(key, encode(ours.to_json()), found[1], 0):
                    return self._adopt(ours)
                continue
            self._check(meta, wanted)
            return self._adopt(meta)
        raise StoreUnavailable(f"{self.where}: the prefix's metadata kept changing")

    def _check(self, meta: Meta, wanted: PrefixSettings) -> None:
        def conflict(name: str, ours: object, theirs: object, advice: str) -> PrefixConflict:
            return PrefixConflict(
                f"settings {name} {ours} conflicts with the prefix {self.prefix} {self.where} ({name} {theirs}); "
                f"use another --key-prefix or {advice}"
            )

        if meta.layout != LAYOUT_VERSION:
            raise conflict("layout version", LAYOUT_VERSION, meta.layout, "a matching eventdash version")
        if meta.bucket_seconds != wanted.bucket_seconds:
            raise conflict("bucket_seconds", wanted.bucket_seconds, meta.bucket_seconds, "the same bucket")
        if meta.lg_k != wanted.lg_k:
            raise conflict("sketch_lg_k", wanted.lg_k, meta.lg_k, "the same sketch_lg_k")
        if dict(meta.retention) != dict(wanted.retention):
            show = lambda r: ", ".join(f"x{s}={r[s] / 3600:g} h" for s in sorted(r))
            raise conflict("retention_hours", show(wanted.retention), show(meta.retention), "the same retention")

    def _adopt(self, meta: Meta) -> Layout:
        self.meta = meta
        return Layout(self.prefix, meta.bucket_seconds, meta.shards, dict(meta.retention), meta.lg_k)

    # -- counts ---------------------------------------------------------------------------------------

    def write(self, layout: Layout, state: WriterState, absolute: Absolute, now: float, everything: bool = False) -> None:
        """Merge the writer's pending deltas that are due (all with ``everything``) and verify its
        flagged keys. Raises StoreUnavailable; what was not confirmed stays pending in ``state``."""

        def run() -> None:
            try:
                flush(self, layout, state, absolute, now, self.report, everything, self.written(state.writer_id))
            except (TooLarge, TimeoutError) as exc:
                raise StoreUnavailable(f"{self.where}: {exc}") from None

        self._call("writing buckets", run)

    def write_sketches(self, layout: Layout, pending: PendingSketches, now: float, everything: bool = False) -> None:
        """Unite the writer's pending sketch items that are due into the store (before its counts of
        the same flush, :mod:`tui.store.sketches`). Raises StoreUnavailable; the rest stays pending."""

        def run() -> None:
            try:
                flush_sketches(self, layout, pending, layout.lg_k, now, self.report, everything)
            except (TooLarge, TimeoutError) as exc:
                raise StoreUnavailable(f"{self.where}: {exc}") from None

        self._call("writing visitor sketches", run)

    def read_visitors(
        self, layout: Layout, blocks: Sequence[Block], series: Sequence[str], ids: Sequence[str], found: BlocksRead, total: bool = True,
        per_series: bool = True, keys: Mapping[tuple[Block, str, int], str] | None = None,
    ) -> DistinctRead:
        """Distinct visitors over ``blocks``, after ``found`` (the read of the same blocks' heads, and
        perhaps counts: the evidence of what must be there; with the sketch values too if it read
        them in its ``also``, under ``keys``). Raises StoreUnavailable."""
        return self._call(
            "reading visitor sketches",
            lambda: read_distinct(
                self.get_many, layout, blocks, series, ids, found, self.report, total, per_series, self._sketches, found.also, self._unions,
                keys,
            ),
        )

    def written(self, writer_id: str) -> Written:
        """What the writer ``writer_id`` stored last through this store (see :mod:`tui.store.written`)."""
        with self._written_lock:
            return self._written.setdefault(writer_id, Written())

    def read(
        self, layout: Layout, blocks: Sequence[Block], ids: bool = True, only: tuple[str | tuple[str, ...], str] | None = None,
        also: Sequence[str] = (),
    ) -> BlocksRead:
        """Read blocks: heads, then (if ``ids``) the shards they list (one round trip for one id, see
        :func:`read_blocks`; ``also``: more keys read in it, after the counts). Raises StoreUnavailable."""
        return self._call("reading buckets", lambda: read_blocks(self.get_many, layout, blocks, self.report, ids, only, self._decoded, also))

    # -- summaries ------------------------------------------------------------------------------------

    def publish(self, documents: Mapping[str, Mapping[str, Any]], ttl: int) -> None:
        """Store each summary under its key, to live ``ttl`` seconds, unless a fresher one is there
        (``asOfMs``); a value there that does not decode, or claims a time in the future, is reported
        and replaced. A ``ttl`` over 30 days (a 31-day window) is sent as an absolute time."""
        expire = memcached_expiry(ttl, self.now())
        self._call("publishing summaries", lambda: self._publish(dict(documents), expire))

    def _publish(self, pending: dict[str, Mapping[str, Any]], expire: int) -> None:
        now_ms = int(self.now() * 1000)

        def writes(keys: list[str], found: dict[str, tuple[bytes, Any]]) -> list[Write]:
            out: list[Write] = []
            for key in keys:
                doc = pending[key]
                if key in found:
                    try:
                        # decoded whole, not only its asOfMs: a value that is older but not a summary
                        # (e.g. {"asOfMs": 0}) is corrupt too, and is reported before it is replaced
                        if decode_summary(found[key][0], now_ms, "shard" in doc)["asOfMs"] >= doc["asOfMs"]:
                            continue
                    except Corrupt as exc:
                        self.report(key, str(exc))
                out.append((key, encode(doc), found[key][1] if key in found else None, expire))
            return out

        try:
            cas_until_stored(self, list(pending), writes, lambda key: None, f"{self.where}: publishing")
        except TimeoutError as exc:
            raise StoreUnavailable(str(exc)) from None

    def read_summaries(self, keys: Sequence[str], per_shard: bool = False) -> dict[str, dict[str, Any] | None]:
        """Published summaries by key; a corrupt one is reported and reads as None."""
        found = self.fetch("reading summaries", list(keys))
        now_ms = int(self.now() * 1000)
        out: dict[str, dict[str, Any] | None] = {}
        for key in keys:
            raw = found.get(key)
            try:
                out[key] = decode_summary(raw, now_ms, per_shard) if raw is not None else None
            except Corrupt as exc:
                self.report(key, str(exc))
                out[key] = None
        return out
