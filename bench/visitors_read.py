"""One id's distinct reads through ``eventdash serve`` (issue 13): their latency beside a count read.

    python bench/visitors_read.py [--requests 2000] [--ids 1000] [--events 60000]

Starts a memcached and ``eventdash serve`` on free loopback ports, posts ``--events`` events of
``--ids`` tracking ids (Zipf-like; the busiest id has thousands of visitors, so its sketches are
dense) stamped over the last 6 minutes, waits until they are counted, then times ``--requests``
sequential GETs on one keep-alive connection for each of

* ``/api/v1/summary/signup?tracking_id=X`` (the id's count: the baseline),
* ``/api/v1/summary/signup?tracking_id=X&distinct=visitors``,
* ``/api/v1/live?tracking_id=X`` (7 minutes, every type united),
* ``/api/v1/live`` (every id),
* the two one-id reads again over 997 ids in turn, so that most sketches are read for the first
  time (the reads above are of one id, whose closed blocks' sketches the store keeps loaded),

and prints p50/p99/max in ms (client-side: request written to answer read). Bounded: the loop is
``--requests`` long, the setup a minute at most.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.conftest import MemcachedServer, free_port  # noqa: E402
from tests.proc import Eventdash  # noqa: E402
from tui.events import iso_ms  # noqa: E402

TYPES = {"signup": "formsubmit", "user-event": "click", "review": "review"}


def events(n: int, ids: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    out = []
    for _ in range(n):
        rank = min(int(rng.paretovariate(1.1)), ids) - 1
        tid = f"INF-bench{rank:05d}"
        etype = rng.choice(list(TYPES))
        value: dict[str, object] = {
            "trackingId": tid, "event": TYPES[etype], "timestamp": iso_ms(now_ms - rng.randrange(360_000)),
            "visitorId": f"{tid}-v{rng.randrange(5_000 if rank == 0 else 200)}",
        }
        if etype == "signup":
            value["form"] = {"email": f"user{rng.randrange(2_000)}@example.com"}
        out.append({"path": "/visitors/events/", "value": value})
    return out


def timed(conn: http.client.HTTPConnection, path: str, n: int) -> tuple[list[float], dict]:
    """``path`` ``n`` times; ``{tid}`` in it takes each of the ids in turn (mostly cold reads)."""
    took = []
    doc: dict = {}
    for i in range(n):
        started = time.perf_counter()
        conn.request("GET", path.format(tid=f"INF-bench{i % 997:05d}"))
        answer = conn.getresponse()
        body = answer.read()
        took.append((time.perf_counter() - started) * 1000)
        assert answer.status == 200, body[:300]
        doc = json.loads(body)
    return took, doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--ids", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=60_000)
    args = parser.parse_args()
    memcached = MemcachedServer()
    memcached.start()
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        serve = Eventdash(
            "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", str(Path(state) / "s"),
            "--backend", "memcached", "--memcached", memcached.address, "--key-prefix", "vr:",
        )
        try:
            serve.wait_for("serve: listening on")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            docs = events(args.events, args.ids)
            for start in range(0, len(docs), 1_000):
                conn.request("POST", "/visitors/events/", json.dumps(docs[start : start + 1_000]), {"Content-Type": "application/json"})
                answer = conn.getresponse()
                body = json.loads(answer.read())
                assert answer.status == 202 and not body["rejected"], body["rejected"][:3]
            deadline = time.monotonic() + 60
            while True:
                conn.request("GET", "/api/v1/summary?minutes=10")
                summary = json.loads(conn.getresponse().read())["summary"]
                if sum(s["totalEventsCaptured"] for s in summary.values()) == args.events:
                    break
                assert time.monotonic() < deadline, f"the posted events were not counted within a minute: {summary}"
                time.sleep(0.2)
            target = "INF-bench00000"
            print(f"{args.events:,} events of {args.ids:,} ids, target {target}; {args.requests:,} sequential requests each, one keep-alive connection")
            for path in (
                f"/api/v1/summary/signup?tracking_id={target}",
                f"/api/v1/summary/signup?tracking_id={target}&distinct=visitors",
                f"/api/v1/live?tracking_id={target}",
                "/api/v1/live",
                "/api/v1/live?tracking_id={tid}",  # 997 ids in turn: their sketches are not kept yet
                "/api/v1/summary/signup?tracking_id={tid}&distinct=visitors",
            ):
                if "{tid}" not in path:
                    timed(conn, path, min(100, args.requests))  # warm up
                took, doc = timed(conn, path, args.requests)
                took.sort()
                figure = doc.get("visitors", {"count": doc.get("count")})
                print(
                    f"{path:70s} p50 {statistics.median(took):6.3f} ms  p99 {took[int(0.99 * (len(took) - 1))]:6.3f} ms  "
                    f"max {took[-1]:7.3f} ms  {json.dumps(figure)}"
                )
        finally:
            serve.stop()
            memcached.stop()


if __name__ == "__main__":
    main()
