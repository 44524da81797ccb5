"""Issue 10's dashboard goals at 100,000 tracking ids, each against the same at 10 ids in the same
run: the per-bucket series read (``pipeline.reader.read_view(series=True, ids=False)``, every refresh) under
50 ms, the by-id read of the window (repeated at 5 % of the time when slow), the top-N ranking
the read worker does, and the dashboard process under 10 % of a core at 100 events/s
(``--tracking-ids N --zipf 1.1``), all against one real memcached.

Each prefix is first filled with ``PREFILL`` events spread uniformly over its ids in the last
minute (so the window holds every id: the read and the ranking see the whole 100,000), then read
and ranked ``reads`` times, then a headless dashboard runs on it for ``seconds`` while its CPU is
sampled after start-up. Run: ``python bench/dashboard.py [seconds]`` (bench/run.py calls
:func:`bench_dashboard`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from tests.conftest import MemcachedServer  # noqa: E402
from tui.components.ranking import rank  # noqa: E402
from tui.events import EventFactory, generated_ids  # noqa: E402
from tui.pipeline import Pipeline  # noqa: E402
from tui.settings import MemcachedSettings, Server, Settings  # noqa: E402
from tui.store import MemcachedStore  # noqa: E402

STARTUP_SECONDS = 15.0
PREFILL = 600_000  # events in the window before measuring: about every one of 100,000 ids per type
SIZES = (10, 100_000)  # the baseline, then the goal
ZIPF = 1.1

UI_SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
from tui.app import EventDashApp
from tui.pipeline import Pipeline
from tui.settings import MemcachedSettings, Server, Settings
from tui.store import MemcachedStore
settings = Settings(events_per_second=100, generated_ids={ids}, zipf={zipf}, backend="memcached",
                    memcached=MemcachedSettings((Server("127.0.0.1", {port}),), {prefix!r}))
pipeline = Pipeline(settings, MemcachedStore(settings.memcached.servers, {prefix!r}), seed=7)
app = EventDashApp(pipeline, duration={seconds})
pipeline.start()
app.run(headless=True, size=(120, 40))
pipeline.stop()
"""


def settings_for(port: int, prefix: str, ids: int) -> Settings:
    return Settings(events_per_second=100, generated_ids=ids, zipf=ZIPF, backend="memcached",
                    memcached=MemcachedSettings((Server("127.0.0.1", port),), prefix))


def prefill(port: int, prefix: str, ids: int, events: int = PREFILL) -> Pipeline:
    """Count ``events`` events over every id (uniform, so all of them are in the window) into the prefix."""
    settings = settings_for(port, prefix, ids)
    pipeline = Pipeline(settings, MemcachedStore(settings.memcached.servers, prefix), generate=False, seed=1)
    factory = EventFactory(generated_ids(ids), seed=1)
    end_ms = int(time.time() * 1000)
    pipeline.writer.ingest(factory.make(end_ms - 60_000 + i * 60_000 // events) for i in range(events))
    assert pipeline.writer.flush(everything=True), "the prefill was not written"
    return pipeline


def timings(pipeline: Pipeline, reads: int) -> dict[str, Any]:
    """Milliseconds of the dashboard's two reads: the per-bucket series alone (``ids=False``, every
    refresh) and the whole window by id (repeated at 5 % of the time when slow); and of ranking the
    top ids of a type and of all types."""
    series, full, top, top_all = [], [], [], []
    view = pipeline.reader.read_view(series=True)
    for _ in range(reads):
        t0 = time.perf_counter()
        pipeline.reader.read_view(series=True, ids=False)
        t1 = time.perf_counter()
        view = pipeline.reader.read_view(series=True)
        t2 = time.perf_counter()
        rank(view, "user-event")
        t3 = time.perf_counter()
        rank(view, "all")
        t4 = time.perf_counter()
        series.append((t1 - t0) * 1000)
        full.append((t2 - t1) * 1000)
        top.append((t3 - t2) * 1000)
        top_all.append((t4 - t3) * 1000)
    ids = len(view.summary["user-event"].by_tracking_id)
    return {"ids_in_window": ids, "read_series_ms": statistics.median(series), "read_series_max_ms": max(series),
            "read_by_id_ms": statistics.median(full), "rank_type_ms": statistics.median(top), "rank_all_ms": statistics.median(top_all)}


def ui_cpu(port: int, prefix: str, ids: int, seconds: float, startup: float = STARTUP_SECONDS) -> float:
    """Percent of one core the dashboard process uses over ``seconds`` after start-up: imports, the
    first layout and the first by-id read of the window (about 1 s alone at 100,000 ids, several with
    the writer and the UI in the same process) are not the steady cost."""
    script = UI_SCRIPT.format(repo=str(REPO), port=port, prefix=prefix, ids=ids, zipf=ZIPF, seconds=seconds + startup + 1)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    info = psutil.Process(proc.pid)
    time.sleep(startup)
    before, t0 = info.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, t1 = info.cpu_times(), time.monotonic()
    proc.wait(timeout=120)
    return (after.user + after.system - before.user - before.system) / (t1 - t0) * 100


def bench_dashboard(
    port: int, seconds: float = 10.0, reads: int = 20, repeats: int = 1, events: int = PREFILL, startup: float = STARTUP_SECONDS
) -> dict[str, Any]:
    """Both sizes' figures; the CPU is the median of ``repeats`` dashboard runs (``events`` and
    ``startup`` are smaller only in bench/run.py's smoke mode, which checks that it runs)."""
    out: dict[str, Any] = {}
    for ids in SIZES:
        prefix = f"dash{ids}:"
        pipeline = prefill(port, prefix, ids, events)
        figures = timings(pipeline, reads)
        runs = [ui_cpu(port, prefix, ids, seconds, startup) for _ in range(repeats)]
        figures["cpu_percent_of_one_core"], figures["cpu_runs"] = statistics.median(runs), runs
        out[str(ids)] = figures
        print(f"dashboard at {ids:,} ids: {figures}", file=sys.stderr, flush=True)
    return out


if __name__ == "__main__":
    server = MemcachedServer(memory_mb=1024)
    server.start()
    try:
        print(bench_dashboard(server.port, float(sys.argv[1]) if len(sys.argv) > 1 else 10.0))
    finally:
        server.stop()
