"""The optional alert webhook: POST each alert that fires or resolves, in a background thread.

Counting must never wait for a receiver: :meth:`WebhookSender.send` only appends to a bounded queue
(when it is full, the oldest alert is dropped and counted) and returns at once. One daemon thread
delivers, in order, with a timeout per request; a failure that may pass (a network error, a
timeout, HTTP 408, 429 or 5xx) is retried up to ``retries`` times with exponential backoff and full
jitter, ``uniform(0, min(max_backoff, backoff * 2 ** attempt))``, so that many readers do not retry
in step. Other answers (4xx, a redirect) are given up at once. :meth:`status` says what happened.
urllib is enough for one small POST at a time and needs no event loop, so the same sender serves
the dashboard, headless and the API.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any

from tui import __version__
from tui.anomaly.alerts import Alert
from tui.anomaly.settings import AnomalySettings

RETRYABLE = {408, 429}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not an invitation: urllib would turn the POST into a GET elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class WebhookStatus:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0
    pending: int = 0
    last_error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent, "failed": self.failed, "dropped": self.dropped,
            "retries": self.retries, "pending": self.pending, "lastError": self.last_error,
        }


def alert_body(alert: Alert) -> bytes:
    """The JSON a receiver gets: the alert (type, id, direction, state, since, observed, expected, ...)."""
    return json.dumps({"source": "eventdash", **alert.to_json()}, separators=(",", ":")).encode()


class WebhookSender:
    """Delivers alerts to ``url`` from one background thread; ``send`` never blocks."""

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        retries: int = 5,
        queue: int = 1000,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._rng = rng or random.Random()
        self._queue: deque[bytes] = deque()
        self._limit = queue
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._status = WebhookStatus()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        self._thread = threading.Thread(target=self._run, name="eventdash-webhook", daemon=True)
        self._thread.start()

    def send(self, alert: Alert) -> None:
        """Queue one alert for delivery and return at once."""
        body = alert_body(alert)
        with self._cond:
            if len(self._queue) >= self._limit:
                self._queue.popleft()
                self._status.dropped += 1
            self._queue.append(body)
            self._cond.notify()

    def status(self) -> WebhookStatus:
        with self._cond:
            return WebhookStatus(**{**vars(self._status), "pending": len(self._queue)})

    def close(self, timeout: float = 2.0) -> WebhookStatus:
        """Stop delivering (an attempt under way ends at its own timeout); what is left is reported."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)
        return self.status()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                body = self._queue.popleft()
            self._deliver(body)

    def _deliver(self, body: bytes) -> None:
        for attempt in range(self.retries + 1):
            error, retry = self._post(body)
            with self._cond:
                if error is None:
                    self._status.sent += 1
                    return
                self._status.last_error = error
                if not retry or attempt == self.retries:
                    self._status.failed += 1
                    return
                self._status.retries += 1
            delay = self._rng.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
            if self._stop.wait(delay):
                with self._cond:
                    self._status.failed += 1
                return

    def _post(self, body: bytes) -> tuple[str | None, bool]:
        """(None, _) when delivered, else (why, whether a retry may help)."""
        request = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"eventdash/{__version__}"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                answer.read(65536)
                return None, False
        except urllib.error.HTTPError as exc:
            exc.close()
            return f"HTTP {exc.code} from {self.url}", exc.code >= 500 or exc.code in RETRYABLE
        except (OSError, ValueError) as exc:  # refused, reset, timed out, DNS; a URL urllib cannot use
            reason = getattr(exc, "reason", exc)
            return f"{type(exc).__name__}: {reason} ({self.url})", isinstance(exc, OSError)


def sender_for(settings: AnomalySettings) -> WebhookSender | None:
    """A started sender for the configured URL, or None when no webhook is configured."""
    if not (settings.enabled and settings.webhook_url):
        return None
    return WebhookSender(
        settings.webhook_url, timeout=settings.webhook_timeout_seconds,
        retries=settings.webhook_retries, queue=settings.webhook_queue,
    )
