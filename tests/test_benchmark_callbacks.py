"""The callback-overhead benchmark runs end to end (``--smoke``: tiny model, 3 steps, 1 pair, 1 in-process round)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "callback_overhead.py"


def test_smoke(tmp_path: Path) -> None:
    """``--smoke`` (baseline vs both monitors every step) writes the JSON with the per-pair ratios and prints
    the markdown table."""
    out = tmp_path / "overhead.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["summary"]) == {"both@1"}
    ratios = result["summary"]["both@1"]
    assert (
        len(ratios["mean_s"]["pairs"]) == 1 and ratios["mean_s"]["median"] > 0 and ratios["peak_rss_mb"]["median"] > 0
    )
    assert [r["variant"] for r in result["runs"][0]] == ["baseline", "both@1"]
    assert all(r["steps"] == 3 for r in result["runs"][0])
    assert "| both@1 |" in done.stdout and "| callback |" in done.stdout
    # The in-process blocks: same variants, rotated, ratios of median and mean step (memory is per process).
    blocks = result["in_process"]
    assert [r["variant"] for r in blocks["runs"][0]] == ["baseline", "both@1"]
    assert all(r["steps"] == 3 and r["median_s"] > 0 for r in blocks["runs"][0])
    assert set(blocks["summary"]["both@1"]) == {"median_s", "mean_s"}
    assert "One process, interleaved blocks" in done.stdout
