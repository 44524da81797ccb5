"""``eventdash --headless``: one JSON line per refresh on stdout, notices on stderr.

A line is printed on every refresh whatever the store's state: while memcached is unreachable the
line says so (``store.reachable: false``, why, and how many events are buffered) instead of going
quiet. The last line (``"final": true``) says how many counted events could not be written. stdout
closed by the reader (``eventdash --headless | head -1``) ends the run like a signal: flush
everything, exit 0, no traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from tui.anomaly.alerts import FIRING, Alert
from tui.anomaly.watch import AnomalyStatus
from tui.events import iso_ms
from tui.pipeline import Pipeline, PipelineStatus
from tui.settings import Settings
from tui.shutdown import Wakeup, describe_crash, on_stop_signals, on_thread_failure
from tui.store import OpenedStore, StoreUnavailable
from tui.store.sketch_reads import DistinctRead
from tui.watch import StoreWatch
from tui.window import WindowView, listed_gaps


def headless_line(
    view: WindowView | None,
    backend: str,
    status: PipelineStatus | None,
    *,
    now: float,
    settings: Settings,
    error: str | None = None,
    final: bool = False,
    anomalies: AnomalyStatus | None = None,
) -> dict[str, Any]:
    """One line of ``--headless`` output (and, without ``status``, of ``summary --json``).

    ``summary`` is None when the store could not be read; ``store`` then says why. ``generated``
    is left out where nothing was generated here (``summary``, ``--no-generate``). ``alerts`` and
    ``anomaly`` (the watch's ``anomalies``) are on every headless line: null when
    ``anomaly.enabled`` is false, so "off" never reads as "nothing wrong".
    """
    line: dict[str, Any] = {
        "as_of": iso_ms(int((view.as_of if view else now) * 1000)),
        "window_minutes": view.window_minutes if view else settings_minutes(settings),
        "bucket_seconds": view.bucket_seconds if view else settings.bucket_seconds,
        # the window's real "±": more than a bucket where its old edge is kept only in coarser blocks
        "approximation_seconds": view.approximation_seconds if view else None,
        # parts of the window known to be missing (evicted, corrupt, not fully written): never silent
        "incomplete": view.incomplete_json() if view else None,
        "backend": backend,
    }
    if status is not None:
        problem = status.store_error or error
        line["store"] = {"reachable": problem is None, "error": problem, "unwritten_events": status.unflushed_events}
        if status.generating:
            line["generated"] = status.generated
            line["rate"] = {"configured": status.configured_rate, "measured": round(status.measured_rate, 1), "behind": status.behind}
        line.update(anomaly_json(anomalies))
    line["summary"] = view.summary_json() if view else None
    if view is None:
        line["visitors"] = None
    elif view.visitors is not None:
        line.update(visitors_json(view.visitors, view.types, view.bucket_seconds))
    if final:
        line["final"] = True
    return line


def anomaly_json(status: AnomalyStatus | None) -> dict[str, Any]:
    """``alerts`` (pending and firing, firing first, each :meth:`Alert.to_json`) and ``anomaly``
    (how the detection does: ``priming``, ``series``, ``untracked``, ``skippedBuckets``,
    ``judgedThroughMs``); both null when detection is off."""
    if status is None:
        return {"alerts": None, "anomaly": None}
    return {"alerts": [alert.to_json() for alert in status.alerts], "anomaly": status.to_json()}


def alert_notice(alert: Alert) -> str:
    """The stderr line of an alert that fired or resolved, e.g. ``alert firing: drop of signup
    INF-yj562hjojbtez since 12:00:10Z (0 vs 96.2 expected)``."""
    what = f"{alert.direction} of {alert.type} {alert.id if alert.id is not None else '(every id)'}"
    since = time.strftime("%H:%M:%SZ", time.gmtime(alert.since * alert.bucket_seconds))
    if alert.state == FIRING:
        return f"alert firing: {what} since {since} ({alert.observed:g} vs {alert.expected:.1f} expected)"
    ended = time.strftime("%H:%M:%SZ", time.gmtime((alert.resolved_at or alert.since) * alert.bucket_seconds))
    relearned = ", relearned as the new normal" if alert.reason == "relearned" else ""
    return f"alert resolved: {what} since {since}, back at {ended}{relearned} ({alert.observed:g} vs {alert.expected:.1f} expected)"


def visitors_json(read: DistinctRead, types: Sequence[str], bucket_seconds: int) -> dict[str, Any]:
    """The distinct visitors of a window read, as the headless line and ``summary --json`` give them.

    Beside ``summary``, which keeps the brief's shape: ``visitors`` (every id, every type united),
    ``visitorsByTrackingId`` (per id, types united), ``visitorsByType`` (per type: ``visitors`` and
    ``visitorsByTrackingId``), each figure ``{"estimate", "lower", "upper"}``; ``visitorsIncomplete``
    (the gaps that may make a figure low, the first 20 and one that spans the rest) and ``visitorsOmitted`` (ids of the window not read, past
    the busiest :data:`~tui.pipeline.reader.MAX_VISITOR_IDS`) only when there are any."""
    out: dict[str, Any] = {
        "visitors": read.total.to_json() if read.total is not None else None,
        "visitorsByTrackingId": {tid: read.by_id[tid].to_json() for tid in sorted(read.by_id)},
        "visitorsByType": {
            etype: {
                "visitors": total.to_json() if (total := read.series_totals.get(etype)) is not None else None,
                "visitorsByTrackingId": {tid: est.to_json() for tid, est in sorted(read.by_series.get(etype, {}).items())},
            }
            for etype in types
        },
    }
    if read.incomplete:
        out["visitorsIncomplete"] = listed_gaps(read.incomplete, bucket_seconds)
    if read.omitted:
        out["visitorsOmitted"] = read.omitted
    return out


def settings_minutes(settings: Settings) -> float | int:
    minutes = settings.window_minutes
    return int(minutes) if float(minutes).is_integer() else minutes


class LineWriter:
    """Prints JSON lines; remembers when the reader went away instead of raising at every line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False

    def write(self, line: dict[str, Any]) -> bool:
        if self.closed:
            return False
        try:
            self.stream.write(json.dumps(line) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.closed = True
            # Python would report the pipe again when it flushes stdout at exit: point it elsewhere.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        return not self.closed


class BehindWatch:
    """Says once when the generator falls behind its rate, and once when it catches up."""

    def __init__(self) -> None:
        self.behind = False

    def observe(self, status: PipelineStatus) -> str | None:
        if status.behind == self.behind:
            return None
        self.behind = status.behind
        if status.behind:
            return (
                f"behind: producing {status.measured_rate:,.0f}/s of the configured {status.configured_rate:,.0f}/s; "
                "this machine cannot generate that fast"
            )
        return f"caught up: producing {status.measured_rate:,.0f}/s of the configured {status.configured_rate:,.0f}/s"


def err(message: str) -> None:
    print(f"eventdash: {message}", file=sys.stderr, flush=True)


def run_headless(pipeline: Pipeline, opened: OpenedStore, duration: float | None) -> tuple[bool, str | None]:
    """Run until ``duration`` ends, a stop signal, stdout closing or a failure; then stop and flush.

    Returns (flushed, fatal): whether the store took every count, and why the run failed, if it did.
    """
    settings = pipeline.settings
    wake = Wakeup()  # a signal, a failure, or the writer finding the store lost or back
    stopping: list[bool] = []  # not an Event: a signal handler must take no lock (see Wakeup)
    fatal: list[str] = []

    def stop_now(*_: Any) -> None:
        stopping.append(True)
        wake.set()

    def fail(reason: str) -> None:
        fatal.append(reason)
        stop_now()

    pipeline.writer.on_store_change = wake.set
    pipeline.on_fatal = fail
    on_stop_signals(stop_now)
    on_thread_failure(fail)
    out = LineWriter(sys.stdout)
    watch, behind = StoreWatch(), BehindWatch()
    said_other: list[bool] = []  # the (other) notice is said once

    def report(final: bool = False) -> None:
        view, failure = None, None
        try:
            view = pipeline.reader.refresh()
        except StoreUnavailable as exc:
            failure = str(exc)
        if pipeline.anomalies is not None and failure is None:
            try:
                for alert in pipeline.anomalies.poll():
                    err(alert_notice(alert))
            except StoreUnavailable as exc:
                failure = str(exc)
        status = pipeline.status()
        for notice in watch.observe(opened.store.health(), status.store_error or failure, pipeline.clock.monotonic()):
            err(notice.text)
        if not final and (text := behind.observe(status)) is not None:  # stopped is not "caught up"
            err(text)
        if status.other_events and not said_other:
            said_other.append(True)
            err(
                f"{status.other_events:,} events counted under the id (other): a type had more than "
                f"max_tracking_ids ({settings.max_tracking_ids:,}) ids in the window, or ids off the allow-list"
            )
        anomalies = pipeline.anomalies.status() if pipeline.anomalies is not None else None
        line = headless_line(
            view, opened.store.backend, status, now=pipeline.clock.time(), settings=settings, error=failure, final=final, anomalies=anomalies,
        )
        if final:
            line["store"]["unwritten_events"] = pipeline.writer.unwritten_events()  # every level, after the last flush
            if status.generating:
                line["rate"]["missed"] = pipeline.missed_events  # due by the end but never made: behind
        if not out.write(line):
            stop_now()

    started = pipeline.start()
    end = started + duration if duration is not None else None
    ticks = 1
    try:
        while True:
            deadline = started + ticks * settings.refresh_seconds
            if end is not None:
                deadline = min(deadline, end)
            woken = wake.wait(deadline - pipeline.clock.monotonic())
            if stopping:
                end = None  # a signal, a failure or a closed stdout: stop now
                break
            if end is not None and pipeline.clock.monotonic() >= end:
                break
            report()  # on the refresh tick, or at once when the store went away or came back
            if not woken:
                ticks += 1
    except Exception as exc:  # noqa: BLE001 - the reader failed: stop counting loudly, after the flush below
        fail(describe_crash("the reader", exc))
    flushed = pipeline.stop(at=end)
    if pipeline.fatal and pipeline.fatal not in fatal:
        fatal.append(pipeline.fatal)
    try:
        report(final=True)
    except Exception as exc:  # noqa: BLE001 - the counts are flushed; the last line is a courtesy
        fatal.append(describe_crash("the last line", exc))
    if pipeline.missed_events and not fatal:
        err(
            f"generated {pipeline.status().generated:,} events, {pipeline.missed_events:,} fewer than the configured rate "
            "asked for: the generator was behind"
        )
    return flushed, (fatal[0] if fatal else None)
