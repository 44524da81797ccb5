"""The alert webhook against a real HTTP receiver on 127.0.0.1: delivery, failure and retry, a
receiver that hangs, and a full queue; detection and counting never wait for it."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import wait_until
from tui.anomaly import FIRING, AnomalySettings, Detector
from tui.anomaly.alerts import Alert
from tui.anomaly.webhook import WebhookSender, sender_for
from tui.events import EventFactory

ALERT = Alert("signup", "INF-a", "drop", FIRING, 170_000_000, 170_000_002, None, 0, 100.0, 10)


class Receiver:
    """A real HTTP server: answers each POST with the next status of ``script`` (then 200), or
    holds it until ``release`` is set when the status is None."""

    def __init__(self, script: list[int | None]) -> None:
        self.script = list(script)
        self.bodies: list[dict] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                status = receiver.script.pop(0) if receiver.script else 200
                if status is None:
                    receiver.release.wait(10)
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator:
    made: list[Receiver] = []

    def make(script: list[int | None]) -> Receiver:
        made.append(Receiver(script))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_an_alert_is_posted_as_json(receiver_factory) -> None:
    rx = receiver_factory([])
    sender = WebhookSender(rx.url, timeout=2)
    sender.send(ALERT)
    wait_until(lambda: sender.status().sent == 1, what="delivery")
    body = rx.bodies[0]
    assert {k: body[k] for k in ("type", "id", "direction", "state", "observed", "expected")} == {
        "type": "signup", "id": "INF-a", "direction": "drop", "state": "firing", "observed": 0, "expected": 100.0,
    }
    assert body["since"] == "2023-11-14T22:13:20Z" and body["source"] == "eventdash"
    sender.close()


def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(receiver_factory) -> None:
    rx = receiver_factory([500, 503, 200])
    sender = WebhookSender(rx.url, timeout=2, retries=5, backoff=0.01, max_backoff=0.05, rng=random.Random(1))
    sender.send(ALERT)
    wait_until(lambda: sender.status().sent == 1, what="delivery after two failures")
    status = sender.close()
    assert len(rx.bodies) == 3 and rx.bodies[0] == rx.bodies[2]
    assert (status.retries, status.failed, status.last_error) == (2, 0, f"HTTP 503 from {rx.url}")


def test_a_receiver_that_keeps_failing_is_given_up_after_the_retries(receiver_factory) -> None:
    rx = receiver_factory([500] * 10)
    sender = WebhookSender(rx.url, timeout=2, retries=2, backoff=0.01, max_backoff=0.02)
    sender.send(ALERT)
    wait_until(lambda: sender.status().failed == 1, what="giving up")
    assert len(rx.bodies) == 3 and sender.status().sent == 0
    sender.close()


def test_a_client_error_is_not_retried(receiver_factory) -> None:
    rx = receiver_factory([404])
    sender = WebhookSender(rx.url, timeout=2, retries=5, backoff=0.01)
    sender.send(ALERT)
    wait_until(lambda: sender.status().failed == 1, what="giving up on a 404")
    assert len(rx.bodies) == 1 and sender.status().retries == 0
    sender.close()


def test_a_hanging_receiver_never_blocks_detection_or_counting(receiver_factory) -> None:
    """The receiver holds every request; meanwhile events are made and counted, buckets are judged
    (sign-ups vanish every other 100 s: drops fire and resolve) and every alert is handed to the
    webhook, each hand-off immediate; the queue stays bounded, the oldest dropped and counted."""
    rx = receiver_factory([None] * 1000)
    sender = WebhookSender(rx.url, timeout=0.3, retries=1, queue=5, backoff=0.01)
    detector = Detector(AnomalySettings(warmup_seconds=0), 10)
    factory = EventFactory([f"INF-{i}" for i in range(4)], seed=3)
    longest = 0.0
    sent = 0
    counted = 0
    ts = 1_700_000_000_000
    for b in range(170_000_000, 170_000_120):
        counts: dict[str, dict[str, int]] = {}
        phase = (b - 170_000_000) // 10
        for _ in range(400):
            ev = factory.make(ts)
            counted += 1
            if phase % 2 and ev.type == "signup":  # sign-ups vanish every other 100 s
                continue
            per = counts.setdefault(ev.type, {})
            per[ev.tracking_id] = per.get(ev.tracking_id, 0) + 1
        ts += 10_000
        for alert in detector.close_bucket(b, counts):
            began = time.perf_counter()
            sender.send(alert)
            longest = max(longest, time.perf_counter() - began)
            sent += 1
    assert counted == 120 * 400 and sent > 20  # all counted and judged, many alerts raised
    assert longest < 0.05  # every hand-off immediate, while the receiver holds its requests
    assert rx.bodies, "the receiver was reached"
    status = sender.status()
    assert status.pending <= 5 and status.dropped >= sent - 5 - 2 and status.sent == 0
    closing = time.perf_counter()
    sender.close(timeout=2)
    assert time.perf_counter() - closing < 2.5


def test_no_sender_without_a_url() -> None:
    assert sender_for(AnomalySettings()) is None
    assert sender_for(AnomalySettings(enabled=False, webhook_url="http://127.0.0.1:9/")) is None


def test_a_refused_connection_is_retried_and_reported(receiver_factory) -> None:
    rx = receiver_factory([])
    url = rx.url
    rx.close()  # nothing listens there any more
    sender = WebhookSender(url, timeout=0.5, retries=2, backoff=0.01, max_backoff=0.02)
    sender.send(ALERT)
    wait_until(lambda: sender.status().failed == 1, what="giving up on a refused connection")
    status = sender.close()
    assert status.retries == 2 and "Connection refused" in status.last_error
