"""Planning a query: which stored blocks tile each step, and the refusal of a step finer than is kept.

A step of ``n`` buckets is read at the coarsest level whose block length divides it (1 h steps from
1 h blocks, 1 m steps from 1-minute blocks, ...), so a step is one block where the store has it. The
newest steps are tiled with finer blocks where a coarse one is still open or not yet usable
(:meth:`~tui.store.layout.Layout.usable`), and buckets after the current one are never read: they
cannot hold events yet. A step whose level is no longer kept at the range's old edge is refused
with what is kept, rather than answered from a coarser level with a silently wrong time axis.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.history.query import (
    Namer,
    Query,
    QueryError,
    flag_name,
    format_duration,
    format_span,
)
from tui.store.layout import EXPIRY_MARGIN_SECONDS, Layout
from tui.window import LEVELS, Block, bucket_of, plan_window


@dataclass(frozen=True)
class StepPlan:
    """The blocks that tile one step (none for a step entirely after now)."""

    start_ms: int
    #: Buckets ``first … last`` of the step, inclusive, for matching the gaps a read reports.
    first: int
    last: int
    blocks: tuple[Block, ...]


def step_level(step_seconds: int, bucket_seconds: int) -> int:
    """The span of the coarsest level whose blocks divide a step."""
    buckets = step_seconds // bucket_seconds
    return max(span for span in LEVELS if buckets % span == 0)


def _level_name(span: int, bucket_seconds: int) -> str:
    return f"{bucket_seconds} s buckets" if span == 1 else f"{format_span(span * bucket_seconds)} blocks"


def check_kept(query: Query, layout: Layout, now: float, name: Namer = flag_name, typed_from: str | None = None) -> None:
    """Refuse a step whose level is no longer kept at the range's old edge, saying what is kept and
    the finest step that would do; ``typed_from`` is ``--from`` as the user typed it, for the message."""
    bucket = layout.bucket_seconds
    first = query.start_ms // (bucket * 1000)

    def kept(span: int) -> bool:
        return layout.expires_at((span, first // span)) > now + EXPIRY_MARGIN_SECONDS

    span = step_level(query.step_seconds, bucket)
    if kept(span):
        return
    step = format_duration(query.step_seconds)
    shown_from = typed_from if typed_from is not None else format_duration(max(1, int(now - query.start_ms / 1000))) + " ago"
    what = f"{name('step')} {step}: {_level_name(span, bucket)} are kept for {format_span(layout.retention[span])}"
    coarser = [s for s in LEVELS if s > span and kept(s)]
    if coarser:
        finest = format_duration(coarser[0] * bucket)
        raise QueryError("step", f"{what}; {name('from')} {shown_from} needs {name('step')} {finest} or coarser")
    longest = format_span(max(layout.retention.values()))
    raise QueryError("from", f"{what}; {name('from')} {shown_from} is older than anything kept: the longest retention is {longest}")


def plan_steps(query: Query, layout: Layout, now: float, name: Namer = flag_name, typed_from: str | None = None) -> list[StepPlan]:
    """The blocks of every step of ``query`` at ``now``; raises :class:`QueryError` if the step is
    finer than what is kept at the range's old edge."""
    check_kept(query, layout, now, name, typed_from)
    bucket = layout.bucket_seconds
    per_step = query.step_seconds // bucket
    current = bucket_of(int(now * 1000), bucket)
    usable = layout.usable(now)
    level = step_level(query.step_seconds, bucket)
    plans: list[StepPlan] = []
    for start_ms in query.steps:
        first = start_ms // (bucket * 1000)
        stop = min(first + per_step, current + 1)
        blocks: list[Block] = []
        if per_step == level and stop == first + per_step and usable((level, first // level)):
            blocks = [(level, first // level)]  # the usual step: one block of its level (what plan_window finds, in one check)
        elif stop > first:
            blocks, rounded = plan_window(range(first, stop), usable)
            if rounded:  # retention shorter at a coarser level is refused by the settings: never here
                raise QueryError("step", f"{name('step')}: buckets from {start_ms} ms are no longer kept at any level")
        plans.append(StepPlan(start_ms, first, first + per_step - 1, tuple(blocks)))
    return plans
