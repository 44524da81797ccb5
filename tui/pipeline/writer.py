"""The writer: the one stage that counts and writes. Every source (the generator, ``serve``'s HTTP
ingest, ``ingest``'s NDJSON) hands it events; it owns the :class:`~tui.window.Ledger`, the
:class:`~tui.store.writer_state.WriterState` and the flushes.

Once a second or when a bucket closes it stages the deltas since the last flush (each with a
sequence number) and merges them into the store (exactly once, see :mod:`tui.store.merge`). When the
store is unreachable, deltas stay pending and are written on a later try, with backoff. The writer
repairs what the store lost: when the store's generation changes (restart, ring change), and every
:data:`VERIFY_SECONDS` for the blocks it wrote, it checks that its entries are still there and
writes back its absolute counts where not (while the block is in its window).

Its methods run in the writer's thread, except :meth:`Writer.submit` and :meth:`Writer.status`.
"""

from __future__ import annotations

import os
import queue
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasketches as ds

from tui.clock import Clock, SystemClock
from tui.distinct.batch import DistinctBatch, SketchKey
from tui.events import Event
from tui.pipeline.prefix import PrefixLayout
from tui.settings import Settings
from tui.store import Store, StoreUnavailable
from tui.store.repair import absolute_counts, verify
from tui.store.sketches import PendingSketches, counted_type
from tui.store.writer_state import WriterState, deltas_by_key
from tui.window import Ledger, bucket_keys, bucket_of, window_range

MAX_BACKOFF_SECONDS = 0.5  # a returning server is written to within half a second
VERIFY_SECONDS = 5.0  # how often a writer checks that the blocks it wrote still carry its entry


@dataclass(frozen=True, kw_only=True)
class WriterStatus:
    """An immutable reading of the writer, for the status line and the headless stderr."""

    last_flush_at: float | None  # wall time of the last successful flush
    last_flush_ms: float | None
    store_error: str | None  # why the last flush failed, while it keeps failing
    unflushed_events: int  # counted here, not yet in the store's single buckets (Writer.buffered_events)
    restores: int  # times the store lost its data and this writer wrote its buckets back
    #: Events counted under "(other)" because the type already had max_tracking_ids distinct ids
    #: in the window (or the id was not on the allow-list): in the totals, never dropped silently.
    other_events: int


class Writer:
    """Ledger, writer state and flushes for one process. See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        prefix: PrefixLayout | None = None,
        *,
        clock: Clock | None = None,
        flush_interval: float = 1.0,
        writer_id: str | None = None,
        writer_name: str | None = None,
        on_store_change: Callable[[], None] | None = None,
        count_visitors: bool = True,
    ) -> None:
        #: The pipeline keeps them current (``set_window``): the ledger keeps the window's buckets.
        self.settings = settings
        self.store = store
        self.prefix = prefix or PrefixLayout(store, settings)
        self.clock = clock or SystemClock()
        #: Short (8 characters): it is recorded in every value this writer touches.
        self.writer_id = writer_id or secrets.token_urlsafe(6)
        #: What people see (``--writer-name``); ``writer_id`` stays the unique key in the store.
        self.writer_name = writer_name or default_writer_name()
        self.flush_interval = flush_interval
        allowed = frozenset(settings.tracking_ids) if settings.allow_only_listed_ids else None
        self._ledger = Ledger(settings.bucket_seconds, settings.max_tracking_ids, allowed)
        self._state = WriterState(self.writer_id)
        #: Distinct visitors and signups since the last flush, then per sketch key until the store
        #: confirms it (:mod:`tui.store.sketches`); written before the counts of the same flush.
        #: False only for a benchmark's baseline (bench/sketch.py): the same writer without sketches.
        self.count_visitors = count_visitors
        self._distinct = DistinctBatch(settings.bucket_seconds, settings.sketch_lg_k)
        self._sketches = PendingSketches(settings.sketch_lg_k)
        self._next_verify = self.clock.monotonic() + VERIFY_SECONDS
        self._verify_cursor = 0  # where the rotating sample of shard values to verify goes on
        #: Events whose deltas outlived the store's retention before the store took them (an outage
        #: longer than the retention): counted in unwritten_events, never silently dropped.
        self._expired_unwritten = 0
        #: Events whose values the last :meth:`flush_all` could store only off their own server.
        self._next_flush = self.clock.monotonic() + flush_interval / 2  # off-beat with a 1 s reader
        self._flushed_bucket = bucket_of(int(self.clock.time() * 1000), settings.bucket_seconds)
        self._backoff = 0.0
        self._generation: str | None = None
        self._last_flush_at: float | None = None
        self._last_flush_ms: float | None = None
        self._store_error: str | None = None
        self._restores = 0
        #: Called from the writer thread when a flush starts failing or succeeds again, so a caller
        #: can report an outage at once rather than at its next refresh.
        self.on_store_change = on_store_change
        #: Events handed in by another thread (``serve``, ``ingest``), each batch with where it ends
        #: in the spool; the writer thread drains them into its ledger at each flush.
        self._inbox: queue.SimpleQueue[tuple[Sequence[tuple[str, str, int]], Any]] = queue.SimpleQueue()
        self._inbox_position: Any = None  # the spool position of the last batch drained
        #: Called in the writer thread after a flush staged its deltas and before it writes them, with
        #: the spool position they cover: ``serve`` saves its checkpoint there (tui.service.store_ports).
        self.on_staged: Callable[[Any], None] | None = None
        #: Called in the writer thread once the store took that flush's write, with the same position:
        #: ``serve`` releases its spool behind it there.
        self.on_written: Callable[[Any], None] | None = None
        #: (spool position, sequence number) the last checkpoint holds, and the position last released:
        #: a flush with nothing new calls neither hook (an idle ``serve`` encoded and fsynced its whole
        #: state every second, a GIL-holding pause that every read waiting on the event loop paid).
        self._checkpointed: tuple[Any, int] | None = None
        self._released: Any = None
        self._unflushed = 0  # buffered_events() after the last flush; the writer's state is its thread's alone

    # -- sources hand in events ------------------------------------------------------------------

    def ingest(self, events: Iterable[Event]) -> None:
        """Count events made in the writer's thread (the generator, a benchmark's feed)."""
        self._record(events if isinstance(events, Sequence) else list(events))

    def _record(self, events: Sequence[Any]) -> None:
        """Count the events and, unless turned off, hash their visitors: both from one list of keys."""
        if self.count_visitors:
            keys = list(bucket_keys(events, self.settings.bucket_seconds * 1000))
            self._ledger.count(keys)
            self._distinct.record(events, keys)
        else:
            self._ledger.record(events)

    def submit(self, events: Sequence[tuple[str, str, int]], position: Any = None) -> None:
        """Hand in durable events from any thread (``(type, tracking_id, ts_ms, ...)`` each); they
        are counted at the writer's next flush. ``position`` (where they end in the spool) is passed
        to :attr:`on_staged` once a flush has staged them."""
        self._inbox.put((events, position))

    def _drain(self) -> None:
        while True:
            try:
                events, position = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._record(events)
            if position is not None:
                self._inbox_position = position

    # -- restore and checkpoint ------------------------------------------------------------------

    def restore(self, plain: Mapping[str, Any], position: Any = None) -> None:
        """Take up the writer state a previous run of this writer saved (its pending deltas and their
        sequence numbers): re-sending them is idempotent, so nothing is lost or counted twice.
        ``position``: the spool position that state covers; the first write passes it to
        :attr:`on_written`, so the spool behind it is released even if no new event ever arrives
        (a restart on a full spool answered 429 for good)."""
        plain = dict(plain)
        sketches = PendingSketches.from_plain(plain.pop("sketches", []), self.settings.sketch_lg_k)
        state = WriterState.from_plain(plain)
        if state.writer_id != self.writer_id:
            raise ValueError(f"saved writer state is writer {state.writer_id}'s, not {self.writer_id}'s")
        self._state = state
        self._sketches = sketches
        self._inbox_position = position

    def _as_counted(self, taken: dict[SketchKey, ds.hll_sketch]) -> list[tuple[SketchKey, ds.hll_sketch]]:
        """Each sketch under the id its events were counted under (an id past ``max_tracking_ids``
        counts as "(other)", where the sketches of several ids unite), so that every sketch entry
        sits beside a count, and no more ids."""
        counted_as = self._ledger.counted_as
        return [((bucket, series, counted_as(counted_type(series), tid)), sketch) for (bucket, series, tid), sketch in taken.items()]

    def writer_state(self) -> dict[str, Any]:
        """The writer's state as plain data (what the checkpoint persists): the counts' pending deltas
        and the sketches' pending items, so a ``kill -9`` after the checkpoint loses neither."""
        return {**self._state.to_plain(), "sketches": self._sketches.to_plain()}

    # -- flushes ---------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Flush if it is time at the monotonic ``now``, or a bucket closed since the last flush."""
        wall_bucket = bucket_of(int(self.clock.time() * 1000), self.settings.bucket_seconds)
        bucket_closed = wall_bucket != self._flushed_bucket and self._store_error is None
        if now >= self._next_flush or bucket_closed:
            self.flush()

    def seconds_until_flush(self) -> float:
        return max(0.0, self._next_flush - self.clock.monotonic())

    def flush(self, everything: bool = False) -> bool:
        """Merge the deltas since the last flush into the store: single buckets at once, coarser
        blocks once closed, a slice at a time (all with ``everything``, as at exit). On failure
        they stay pending (backoff)."""
        mono = self.clock.monotonic()
        now = self.clock.time()
        settings = self.settings
        oldest = window_range(now, settings.window_seconds, settings.bucket_seconds).start
        self._drain()
        self._ledger.prune(oldest)  # repairable while in this writer's window
        try:
            generation = self.store.generation()
            if self._generation is not None and generation != self._generation:
                self.prefix.forget()  # the meta key may be gone with the rest
                self._state.check.update(self._state.confirmed)  # verify all we wrote; restore what is lost
                self._restores += 1
            self._generation = generation
            layout = self.prefix.get("writing buckets")
            self._expired_unwritten += self._state.forget(lambda b: layout.expires_at(b) > now, self._ledger.holds)
            if mono >= self._next_verify:
                self._next_verify = mono + VERIFY_SECONDS
                damaged, self._verify_cursor = verify(self.store, layout, self._state, self._verify_cursor)
                self._state.check.update(damaged)
            self._state.stage(deltas_by_key(self._ledger.take_deltas(), layout))
            self._sketches.stage(self._as_counted(self._distinct.take_sketches()), layout)
            self._sketches.forget(lambda b: layout.expires_at(b) > now)
            staged = self._inbox_position
            # Every new sequence number (a staged delta, a head listing a shard) raises seq, so an
            # unchanged mark means the last checkpoint already holds every number this write can
            # use; new sketch items always come with new deltas (every event has a count).
            mark = (staged, self._state.seq)
            if self.on_staged is not None and mark != self._checkpointed:
                self.on_staged(staged)
                self._checkpointed = mark
            started = self.clock.monotonic()
            self.store.write_sketches(layout, self._sketches, now, everything)  # before the counts
            self.store.write(layout, self._state, lambda ident: absolute_counts(self._ledger, layout, ident, self._state.confirmed), now, everything)
            if self.on_written is not None and staged != self._released:
                self.on_written(staged)
                self._released = staged
        except StoreUnavailable as exc:
            self._unflushed = self.buffered_events()
            self._set_store_error(str(exc))
            self._backoff = min(MAX_BACKOFF_SECONDS, max(0.1, self._backoff * 2))
            self._next_flush = mono + self._backoff
            return False
        self._unflushed = self.buffered_events()
        self._last_flush_ms = (self.clock.monotonic() - started) * 1000
        self._last_flush_at = now
        self._set_store_error(None)
        self._backoff = 0.0
        self._next_flush = mono + self.flush_interval
        self._flushed_bucket = bucket_of(int(now * 1000), settings.bucket_seconds)
        return True

    def flush_all(self, timeout: float) -> bool:
        """Flush everything, as at exit, retrying for up to ``timeout`` seconds; False if the store
        never took the last counts (a server down: no other holds its keys), which the caller then
        reports (:meth:`unwritten_events`), never silently lost."""
        deadline = self.clock.monotonic() + timeout
        while True:
            if self.flush(everything=True):
                return True
            if self.clock.monotonic() >= deadline:
                return False
            time.sleep(min(self._backoff, 0.2) or 0.2)  # a pause between retries, not a synchronization

    def _set_store_error(self, error: str | None) -> None:
        """Record why flushing fails (None: it works); tell ``on_store_change`` when that flips."""
        if (error is None) != (self._store_error is None) and self.on_store_change is not None:
            self.on_store_change()
        self._store_error = error

    # -- what is not in the store yet ------------------------------------------------------------

    def buffered_events(self) -> int:
        """Events counted here that are not yet in the store's single buckets: 0 right after a
        successful flush, growing while the store is unreachable (what the status line shows)."""
        return self._state.unwritten_events(span=1) + self._ledger.unstaged_events() + self._expired_unwritten

    def unwritten_events(self) -> int:
        """Exactly how many counted events the store has not confirmed: buffered during an outage,
        or lost for good once they expired unwritten (0 after a successful flush). Call it from the
        writer's thread, or after the pipeline stopped; other threads read
        :attr:`WriterStatus.unflushed_events`."""
        return self._state.unwritten_events() + self._ledger.unstaged_events() + self._expired_unwritten

    def status(self) -> WriterStatus:
        return WriterStatus(
            last_flush_at=self._last_flush_at,
            last_flush_ms=self._last_flush_ms,
            store_error=self._store_error,
            unflushed_events=self._unflushed,
            restores=self._restores,
            other_events=self._ledger.other_events,
        )


def default_writer_name() -> str:
    """``host-pid``: readable, and unique among the processes of one host."""
    return f"{socket.gethostname()}-{os.getpid()}"
