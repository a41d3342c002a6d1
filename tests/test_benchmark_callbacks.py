"""The callback-overhead benchmark (``python -m benchmarks.performance.callback_overhead``) runs end to end
(``--smoke``: tiny model, 1 pair, 3 adjacent-step cycles)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.subprocess
def test_smoke(tmp_path: Path, run_python) -> None:
    """``--smoke`` (baseline vs both monitors every step) writes the JSON with the per-pair ratios and prints
    the markdown table."""
    out = tmp_path / "overhead.json"
    done = run_python("-m", "benchmarks.performance.callback_overhead", "--smoke", "--out", str(out), timeout=300)
    result = json.loads(out.read_text())
    assert set(result["summary"]) == {"both@1"}
    ratios = result["summary"]["both@1"]
    assert (
        len(ratios["mean_s"]["pairs"]) == 1 and ratios["mean_s"]["median"] > 0 and ratios["peak_rss_mb"]["median"] > 0
    )
    assert [r["variant"] for r in result["runs"][0]] == ["baseline", "both@1"]
    assert all(r["steps"] == 3 for r in result["runs"][0])
    assert "| both@1 |" in done.stdout and "| callback |" in done.stdout
    # The adjacent-step runs: cycles of (logged, attached, off) steps, ratios to the off neighbours.
    (run,) = result["interleaved"]["both"]["runs"]
    assert run["cycles"] == 2 and len(run["ratios"]["logged"]) == len(run["ratios"]["attached"]) == 2
    assert all(r > 0 for r in run["ratios"]["logged"] + run["ratios"]["attached"])
    summary = result["interleaved"]["both"]["summary"]
    assert summary["every_step"]["median"] == pytest.approx(run["median"]["logged"] - 1)
    # Time inside the monitors' hooks: positive on logged steps (probe forward, norms), and the attached
    # steps' share (due-checks only) far below it.
    assert 0 <= run["hook_share"]["attached"] < run["hook_share"]["logged"]
    assert "Adjacent steps" in done.stdout and "| both | 2 |" in done.stdout
