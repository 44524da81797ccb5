"""The benchmark suite runs end to end at tiny sizes. It checks that every count is exact (the
suite asserts that itself); it never judges speed, which a shared CI machine cannot promise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_smoke_runs_and_every_count_is_exact(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--output", str(output)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "smoke"
    assert results["ingest"]["exact"] is True
    assert set(results) >= {"ingest", "generator", "reads", "memory", "scale_out", "ui", "store_v2", "serve", "query", "visitors", "anomaly"}
    assert results["serve"]["durability"]["runs"] == 2 and results["serve"]["scale"]["exact"] is True
    assert results["serve"]["durability"]["exact"] is True  # 0 lost and 0 doubled over the kill runs
    visitors = results["visitors"]  # issue 13: each run checked its counts exact and its visitors within the sketch's error
    assert all(c["exact"] for c in visitors["cost"].values())
    assert set(visitors["http_cost"]) == set(visitors["cost"])  # through serve too, each run checked exact
    assert visitors["merge"]["identical"] is True  # 8 writers' sketches give one writer's registers
    assert all(a["max"] <= 0.03 for a in visitors["accuracy"]["sizes"].values())  # fixed seeds: the same errors every run
    assert visitors["memcached"]["evictions"] == 0
    anomaly = results["anomaly"]  # issue 14: seeded scenario runs, and the reader's poll on the real path
    assert all(row["injected"] > 0 for row in anomaly["detection"]["scenarios"])
    assert all(not run["truncated"] and run["live"]["buckets"] > 0 for run in anomaly["reader"]["runs"].values())
    assert "| figure | eventdash |" in result.stdout
