"""Background reports: start a query, poll its progress, fetch its rows; bounded in number and time.

The store-monitoring pattern: ``start`` returns an id at once and runs the query in a worker thread;
``get`` says running (with the fraction done), done (the result), failed (why) or unknown. A report
runs until its query ends (bounded: at most 10,000 steps, 2,000,000 rows, every store call with a
timeout) and is kept :data:`KEEP_SECONDS` after it ends, then forgotten (on the injected clock). At most
:data:`MAX_RUNNING` run at once and :data:`MAX_KEPT` are held: beyond, ``start`` raises
:class:`ReportsBusy` (HTTP 429), so a client cannot make the server hold unbounded work or memory.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tui.clock import Clock
from tui.history.aggregate import QueryResult

KEEP_SECONDS = 3_600
MAX_RUNNING = 4
MAX_KEPT = 100

Status = Literal["running", "done", "failed"]
#: Runs a report's query, telling the callable it is given the fraction done.
Job = Callable[[Callable[[float], None]], QueryResult]


class ReportsBusy(Exception):
    """Too many reports running or kept; ``str()`` says which limit, ``retry_after`` when to retry."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Report:
    report_id: str
    started: float
    status: Status = "running"
    progress: float = 0.0
    result: QueryResult | None = None
    error: str | None = None
    #: What failed it, for the caller to tell a query too large from a store that cannot be read.
    exception: BaseException | None = None
    ended: float | None = None


class Reports:
    """The reports of one server process."""

    def __init__(self, clock: Clock, keep_seconds: int = KEEP_SECONDS, max_running: int = MAX_RUNNING, max_kept: int = MAX_KEPT) -> None:
        self._clock = clock
        self.keep_seconds = keep_seconds
        self.max_running = max_running
        self.max_kept = max_kept
        self._reports: dict[str, Report] = {}
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for report_id, report in list(self._reports.items()):
            if report.ended is not None and report.ended + self.keep_seconds <= now:
                del self._reports[report_id]

    def start(self, job: Job, failure: type[BaseException] | tuple[type[BaseException], ...]) -> str:
        """Run ``job`` in a thread; an exception of the ``failure`` kinds fails the report with its
        message (anything else fails it as an internal error, named by its type)."""
        now = self._clock.time()
        with self._lock:
            self._expire(now)
            running = sum(1 for r in self._reports.values() if r.status == "running")
            if running >= self.max_running:
                raise ReportsBusy(f"{running} reports are running, the most at once; retry when one is done", 1)
            if len(self._reports) >= self.max_kept:
                oldest = min((r.ended for r in self._reports.values() if r.ended is not None), default=now)
                raise ReportsBusy(
                    f"{len(self._reports)} reports are kept, the most at once; each is kept {self.keep_seconds} s after it ends",
                    max(1, int(oldest + self.keep_seconds - now)),
                )
            report = Report(secrets.token_urlsafe(12), now)
            self._reports[report.report_id] = report

        def progress(fraction: float) -> None:
            report.progress = min(1.0, max(report.progress, fraction))

        def run() -> None:
            try:
                result = job(progress)
            except failure as exc:
                self._finish(report, None, exc, str(exc))
            except Exception as exc:  # noqa: BLE001 - a report that fails says so; the server goes on
                self._finish(report, None, exc, f"internal error ({type(exc).__name__})")
            else:
                self._finish(report, result, None, None)

        threading.Thread(target=run, name=f"eventdash-report-{report.report_id}", daemon=True).start()
        return report.report_id

    def _finish(self, report: Report, result: QueryResult | None, exception: BaseException | None, error: str | None) -> None:
        """Status last: a reader that sees ``done`` sees the result."""
        report.result, report.exception, report.error = result, exception, error
        report.progress = 1.0 if error is None else report.progress
        report.ended = self._clock.time()
        report.status = "done" if error is None else "failed"

    def get(self, report_id: str) -> Report | None:
        """The report, or None if unknown or expired."""
        with self._lock:
            self._expire(self._clock.time())
            return self._reports.get(report_id)
