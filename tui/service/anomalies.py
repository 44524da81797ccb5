"""Spikes and drops in ``serve``: the pipeline's :class:`~tui.anomaly.watch.AnomalyWatch` polled
about once a second, off the event loop, and what the alerts route and ``/metrics`` read of it.

A poll reads single buckets from the store and judges them (tens of milliseconds at 100,000 series,
README "Anomalies"), so it runs in a thread: the event loop keeps answering requests meanwhile, and
a tick that finds the last poll still running skips its turn, as the publisher's thread round does.
An outage of the store is the writer's to report; the watch reads the same buckets at the next poll.
A bug stops detection with one line on stderr (the traceback in the crash log), never counting.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

from tui.anomaly.watch import AnomalyStatus, AnomalyWatch
from tui.anomaly.webhook import WebhookSender, WebhookStatus
from tui.pipeline import Pipeline
from tui.shutdown import describe_crash
from tui.store import StoreUnavailable


@dataclass
class AlertSource:
    """What the alerts route and the metrics read: the pipeline's watch and webhook. ``watch`` is
    None when ``anomaly.enabled`` is false; ``webhook`` when no ``anomaly.webhook_url`` is set."""

    watch: AnomalyWatch | None = None
    webhook: WebhookSender | None = None
    #: Why detection stopped on a bug (set by :class:`AnomalyPoller`; None while it runs): the
    #: route says it rather than answer a frozen list of alerts as if it were current.
    error: str | None = None

    @classmethod
    def of(cls, pipeline: Pipeline) -> AlertSource:
        return cls(pipeline.anomalies, pipeline.webhook)

    def anomaly(self) -> AnomalyStatus | None:
        return None if self.watch is None else self.watch.status()

    def webhook_status(self) -> WebhookStatus | None:
        return None if self.webhook is None else self.webhook.status()


class AnomalyPoller:
    """Calls ``watch.poll()`` in a background thread at each :meth:`tick`, one poll at a time."""

    def __init__(self, source: AlertSource) -> None:
        self._source = source
        self._busy = threading.Lock()
        self._closed = False

    def tick(self) -> None:
        """Start a poll unless detection is off or stopped, or the last poll still runs."""
        if self._source.watch is None or self._closed or self._source.error is not None:
            return
        if self._busy.acquire(blocking=False):
            threading.Thread(target=self._round, name="eventdash-anomalies", daemon=True).start()

    def _round(self) -> None:
        watch = self._source.watch
        assert watch is not None
        try:
            watch.poll()
        except StoreUnavailable:
            pass  # the writer reports the outage; the same buckets are read at the next poll
        except Exception as exc:  # noqa: BLE001 - a bug in detection must not stop counting
            reason = describe_crash("anomaly detection", exc)
            self._source.error = reason
            print(f"eventdash: serve: {reason}; counting goes on without alerts", file=sys.stderr, flush=True)
        finally:
            self._busy.release()

    def close(self, timeout: float = 5.0) -> None:
        """No poll after this; wait (up to ``timeout``) for one under way, before the store closes."""
        self._closed = True
        if self._busy.acquire(timeout=timeout):
            self._busy.release()
