"""Issue 12's "done": events posted to a real ``eventdash serve`` (subprocess, real memcached) give
the same numbers from ``eventdash query``, from ``GET /api/v1/aggregates`` and from a report."""

from __future__ import annotations

import calendar
import copy
import json
import random
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

from tests.conftest import MemcachedServer, wait_until
from tests.proc import REPO
from tests.test_serve_e2e import BRIEF, serve
from tests.test_serve_process import get, post
from tui.events import iso_ms

IDS = ("INF-yj562hjojbtez", "INF-3gbfcjjdsd6vhvo", "INF-ixpktk3itsk86")


def fetch(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.read()


def test_query_aggregates_and_a_report_give_the_posted_counts(tmp_path: Path, memcached: MemcachedServer) -> None:
    proc, url = serve(tmp_path / "state", memcached, "e2e:")
    try:
        now_ms = int(time.time() * 1000)
        end = now_ms // 600_000 * 600_000  # three closed 10-minute steps
        start = end - 30 * 60_000
        rng = random.Random(4)
        docs, sent = [], Counter()
        for _ in range(600):
            doc = copy.deepcopy(BRIEF[rng.randrange(2)])
            stamp = start + rng.randrange(end - start)
            doc["value"]["timestamp"], doc["value"]["trackingId"] = iso_ms(stamp), rng.choice(IDS)
            docs.append(doc)
            sent[(stamp - (stamp - start) % 600_000, "signup" if doc["value"]["event"] == "formsubmit" else "user-event")] += 1
        status, answer = post(url, docs)
        assert status == 202 and answer is not None and answer["accepted"] == 600
        params = {"from": iso_ms(start), "to": iso_ms(end), "step": "10m", "group_by": "type"}

        def counted() -> bool:
            doc = get(url, f"/api/v1/aggregates?{urlencode(params)}")
            return not doc["incomplete"] and sum(r["count"] for r in doc["rows"]) == 600  # type: ignore[index,union-attr]

        wait_until(counted, timeout=60, what="the 600 events to be counted whole")
        _, over_http = fetch(f"{url}/api/v1/aggregates?{urlencode({**params, 'format': 'csv'})}")
        cli = subprocess.run(
            [sys.executable, "-m", "tui", "query", "--memcached", memcached.address, "--key-prefix", "e2e:",
             "--from", params["from"], "--to", params["to"], "--step", "10m", "--group-by", "type", "--format", "csv"],
            capture_output=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60, check=False,
        )
        assert cli.returncode == 0, cli.stderr
        _, created = fetch(f"{url}/api/v1/reports", "POST", json.dumps(params).encode())
        report = f"{url}/api/v1/reports/{json.loads(created)['report_id']}"
        wait_until(lambda: fetch(report)[0] == 200, what="the report")
        assert cli.stdout == over_http == fetch(report)[1]
        rows = [line.split(",") for line in cli.stdout.decode().splitlines()[1:]]
        by_step = {(calendar.timegm(time.strptime(b[:19], "%Y-%m-%dT%H:%M:%S")) * 1000, t): int(n) for b, t, n, _ in rows}
        assert {k: v for k, v in by_step.items() if v} == dict(sent)
    finally:
        assert proc.stop() == 0
