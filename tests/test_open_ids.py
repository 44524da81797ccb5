"""The open set of tracking ids (issue 10): generated ids, Zipf traffic, the settings that go with it."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tui.events import EventFactory, generated_ids
from tui.settings import Settings, SettingsError, build_settings

REPO = Path(__file__).resolve().parent.parent


def test_generated_ids_are_distinct_valid_and_the_same_for_the_same_count() -> None:
    ids = generated_ids(5_000)
    assert len(set(ids)) == 5_000 and ids == generated_ids(5_000)
    assert generated_ids(10) == ids[:10]  # a prefix: a smaller run uses the largest sites
    assert all(tid.startswith("INF-") and len(tid) == 17 for tid in ids)


def test_zipf_makes_a_few_ids_large_and_is_reproducible_from_the_seed() -> None:
    ids = generated_ids(1_000)
    def draw(seed: int, zipf: float = 1.1) -> Counter[str]:
        factory = EventFactory(ids, seed, zipf=zipf)
        return Counter(factory.make(0).tracking_id for _ in range(20_000))

    counts = draw(1)
    assert counts == draw(1)
    top = counts.most_common(10)
    assert top[0][0] == ids[0] and sum(n for _, n in top) > 0.3 * 20_000  # rank 1 leads; the top 1 % hold > 30 %
    assert max(draw(1, zipf=0).values()) < 60  # uniform: about 20 each


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"retention_hours": {"x1": 2, "x6": 1}}, "retention_hours.x6: 1 h is shorter than x1 (2 h)"),
        ({"retention_hours": {"x2": 1}}, "unknown key 'x2'"),
        ({"retention_hours": {"x1": 0}}, "retention_hours.x1: must be from 1 minute to 9,600 hours"),
        ({"retention_hours": [1]}, "retention_hours: expected an object"),
        ({"window_minutes": 10_090}, "longer than the longest retention (retention_hours.x360 = 168 h)"),
        ({"max_tracking_ids": 0}, "max_tracking_ids: must be from 1 to 10,000,000, got 0"),
        ({"max_tracking_ids": True}, "max_tracking_ids: expected a whole number"),
        ({"allow_only_listed_ids": "yes"}, "allow_only_listed_ids: expected true or false"),
        ({"zipf": -1}, "zipf: must be from 0 (uniform) to 10"),
        ({"generated_ids": 1.5}, "generated_ids: expected a whole number"),
    ],
)
def test_the_new_settings_are_checked_like_the_others(raw: dict[str, object], expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        build_settings(raw, origin="s.json")
    assert expected in str(info.value)


def test_more_than_100_listed_ids_and_a_31_day_window_are_accepted() -> None:
    settings = build_settings({"tracking_ids": [f"INF-{i}" for i in range(1_000)], "window_minutes": 31 * 1440, "retention_hours": {"x360": 800}})
    assert len(settings.tracking_ids) == 1_000 and settings.retention[360] == 800 * 3600
    assert Settings().retention == {1: 3_600, 6: 86_400, 60: 86_400, 360: 604_800}


def test_the_cli_generates_for_n_ids_with_zipf(tmp_path: Path) -> None:
    log = tmp_path / "ev.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "tui", "--headless", "--backend", "memory", "--tracking-ids", "500", "--zipf", "1.2", "--rate", "2000",
         "--duration", "1", "--refresh", "5", "--seed", "4", "--events-log", str(log)],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = Counter(line.split('"trackingId":"')[1].split('"')[0] for line in log.read_text().splitlines())
    assert set(seen) <= set(generated_ids(500)) and len(seen) > 50
    assert seen.most_common(1)[0][0] == generated_ids(500)[0]
