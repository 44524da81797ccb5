"""A writer's state between flushes, as plain data (so a later spool can write it to disk as JSON).

Writers merge *deltas* into shared values (one ``gets``/``cas`` per value). Each value records, per
writer, the last sequence number it applied (``"w": {writer: seq}``). A writer keeps, per key, the
``(seq, delta)`` entries the store has not confirmed; on every try it reads the value and applies
only the entries above the recorded number. A retried write whose reply was lost is therefore
skipped, never counted twice: the idempotent producer of Kafka, on memcached.

Entries staged for a key after the last try of that key are merged into one, so an outage (or a
coarse block whose writes wait for it to close) grows the state by the keys that changed, not by the
number of flushes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tui.store.layout import Layout, child_offset, parent
from tui.window import LEVELS, Block, BucketCounts

#: ``("h", span, index)`` names a block's head; ``("s", span, index, type, shard)`` a shard of it.
Ident = tuple[Any, ...]
#: A shard's delta: ``{tracking_id: n}``. A head's: ``{"t": {type: n}, "s": {type: [shard]}, "k": [child]}``.
Delta = dict[str, Any]


def head_ident(block: Block) -> Ident:
    return ("h", block[0], block[1])


def block_of(ident: Ident) -> Block:
    return (ident[1], ident[2])


def add_delta(into: Delta, delta: Mapping[str, Any], is_head: bool) -> None:
    """Merge ``delta`` into ``into`` in place (counts add up; shard and child lists are unions)."""
    if not is_head:
        for tid, n in delta.items():
            into[tid] = into.get(tid, 0) + n
        return
    totals = into.setdefault("t", {})
    for etype, n in delta.get("t", {}).items():
        totals[etype] = totals.get(etype, 0) + n
    shards = into.setdefault("s", {})
    for etype, listed in delta.get("s", {}).items():
        shards[etype] = sorted(set(shards.get(etype, ())) | set(listed))
    into["k"] = sorted(set(into.get("k", ())) | set(delta.get("k", ())))


def deltas_by_key(blocks: Mapping[Block, BucketCounts], layout: Layout) -> dict[Ident, Delta]:
    """Split per-block counts into one delta per shard key and one per head key (totals and
    children; the head lists a shard only once that shard's write is confirmed, see
    :meth:`WriterState.done`)."""
    out: dict[Ident, Delta] = {}
    for block, by_type in blocks.items():
        head: Delta = {"t": {}, "s": {}, "k": []}
        for etype, by_tid in by_type.items():
            per_shard: dict[int, dict[str, int]] = defaultdict(dict)
            shard = layout.shard
            for tid, n in by_tid.items():
                if n:
                    per_shard[shard(tid)][tid] = n
            if not per_shard:
                continue
            head["t"][etype] = sum(sum(d.values()) for d in per_shard.values())
            for k, delta in per_shard.items():
                out[("s", block[0], block[1], etype, k)] = delta
        if head["t"]:
            add_delta(out.setdefault(head_ident(block), {}), head, True)
            up = parent(block)
            if up is not None:
                add_delta(out.setdefault(head_ident(up), {}), {"k": [child_offset(block)]}, True)
    return out


@dataclass
class WriterState:
    """Everything a writer must remember to finish its writes exactly once. Plain data."""

    writer_id: str
    seq: int = 0
    #: key -> [(seq, delta)], oldest first: staged, not yet confirmed applied.
    pending: dict[Ident, list[tuple[int, Delta]]] = field(default_factory=dict)
    #: key -> the highest seq the store confirmed applying (its value carries our entry).
    confirmed: dict[Ident, int] = field(default_factory=dict)
    #: keys to look at on the next flush even without a delta: verify our entry, restore if lost.
    check: set[Ident] = field(default_factory=set)
    #: key -> seq at its last try that may have reached a server; entries staged later merge.
    tried: dict[Ident, int] = field(default_factory=dict)

    def stage(self, deltas: Mapping[Ident, Delta]) -> None:
        """Queue deltas under a new sequence number (or into the last entry, if it was never sent)."""
        if not deltas:
            return
        self.seq += 1
        for ident, delta in deltas.items():
            entries = self.pending.setdefault(ident, [])
            if entries and entries[-1][0] > self.tried.get(ident, 0):
                merged = entries[-1][1]
                add_delta(merged, delta, ident[0] == "h")
                entries[-1] = (self.seq, merged)
            else:
                entries.append((self.seq, delta))

    def to_check(self) -> Iterator[Ident]:
        """Every key the next flush must read: pending ones and ones to verify."""
        yield from self.pending
        yield from (i for i in self.check if i not in self.pending)

    def done(self, ident: Ident, seq: int | None) -> None:
        """The store now holds our entry for ``ident`` up to ``seq`` (None: nothing was ours to write).

        A shard written for the first time is then listed in its block's head: a head never lists
        a shard before the shard is there, so a reader that finds a listed shard missing knows it
        was lost."""
        self.pending.pop(ident, None)
        self.tried.pop(ident, None)
        self.check.discard(ident)
        if seq is None:
            return
        if ident[0] == "s" and ident not in self.confirmed:
            listed = {"t": {}, "s": {ident[3]: [ident[4]]}, "k": []}
            entries = self.pending.setdefault(head_ident(block_of(ident)), [])
            if entries and entries[-1][0] > self.tried.get(head_ident(block_of(ident)), 0):
                add_delta(entries[-1][1], listed, True)
            else:  # a new number: the head may already carry the current one
                self.seq += 1
                entries.append((self.seq, listed))
        self.confirmed[ident] = max(seq, self.confirmed.get(ident, 0))

    def forget(self, writable: Callable[[Block], bool], repairable: Callable[[Block], bool]) -> int:
        """Drop pending deltas of blocks no longer ``writable`` (past retention: the store would drop
        them at once) and confirmations of blocks no longer ``repairable`` (this writer no longer holds
        their counts). Returns the events dropped unwritten at the top level (which keeps an event
        longest: only there is it lost from every level)."""
        lost = 0
        for ident in [i for i in self.pending if not writable(block_of(i))]:
            entries = self.pending.pop(ident)
            self.tried.pop(ident, None)
            if ident[0] == "s" and ident[1] == LEVELS[-1]:
                lost += sum(sum(d.values()) for _, d in entries)
        for ident in [i for i in self.confirmed if not repairable(block_of(i))]:
            del self.confirmed[ident]
        self.check = {i for i in self.check if repairable(block_of(i))}
        return lost

    def unwritten_events(self, span: int | None = None) -> int:
        """Events the store has not confirmed: the largest sum of pending shard deltas of any level
        (each event is in one block per level, so a level's pending sum counts events, not writes),
        or of level ``span`` only (single buckets: what an outage holds back; coarse blocks are
        pending by design until their slices are written)."""
        per_level: dict[int, int] = defaultdict(int)
        for ident, entries in self.pending.items():
            if ident[0] == "s" and (span is None or ident[1] == span):
                per_level[ident[1]] += sum(sum(d.values()) for _, d in entries)
        return max(per_level.values(), default=0)

    def to_plain(self) -> dict[str, Any]:
        """JSON-ready: what a spool writes to disk."""
        return {
            "writer": self.writer_id,
            "seq": self.seq,
            "tried": [[list(i), s] for i, s in self.tried.items()],
            "pending": [[list(i), [[s, d] for s, d in e]] for i, e in self.pending.items()],
            "confirmed": [[list(i), s] for i, s in self.confirmed.items()],
            "check": [list(i) for i in self.check],
        }

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any]) -> WriterState:
        """A state read back after a crash. A checkpoint is saved just before a write, which may
        have reached the store before the crash, so:

        - every pending entry counts as tried: a delta staged later gets an entry of its own
          (merged into the old one under a new number, the store would apply the old delta again);
        - numbering resumes past every number that write could have used: it numbers at most one
          new entry per shard it confirms (the head listing it), all among the pending and checked
          keys. Reusing one would make a value that already holds it skip the new entry as applied.
        """
        pending = {tuple(i): [(s, d) for s, d in e] for i, e in plain["pending"]}
        tried = {tuple(i): s for i, s in plain["tried"]}
        for ident, entries in pending.items():
            if entries:
                tried[ident] = max(tried.get(ident, 0), entries[-1][0])
        return cls(
            plain["writer"],
            plain["seq"] + len(pending) + len(plain["check"]) + 1,
            pending,
            {tuple(i): s for i, s in plain["confirmed"]},
            {tuple(i) for i in plain["check"]},
            tried,
        )
