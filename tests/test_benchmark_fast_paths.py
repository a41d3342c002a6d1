"""The fast-paths benchmark (``python -m benchmarks.performance.fast_paths``) runs end to end (``--smoke``: tiny
models, 2 rounds of 3 steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.subprocess
def test_smoke(tmp_path: Path, minilm_path: Path, run_python) -> None:
    """Every measurement writes its blocks and ratios; grouping pads fewer tokens than the plain shuffle; the
    AdamW variants run on both adapters; the compile blocks run after a timed compilation."""
    out = tmp_path / "fp.json"
    args = ["--smoke", "--compile-backend", "eager", "--out", str(out)]
    done = run_python("-m", "benchmarks.performance.fast_paths", *args)
    result = json.loads(out.read_text())
    grouped = result["group_by_length"]
    assert grouped["tokens"] <= grouped["padded_tokens"]["grouped"] < grouped["padded_tokens"]["shuffle"]
    assert len(grouped["rounds"]) == 2 and set(grouped["rounds"][0]) == {"shuffle", "grouped"}
    for name, adamw in result["adamw"].items():
        assert adamw["tensors"] > 0 and set(adamw["ratios"]) == {"foreach", "fused"}, name
    assert result["compile"]["compile_s"] > 0 and set(result["compile"]["ratios"]) == {"compiled"}
    for header in ("| grouped |", "| adapter | tensors |", "| compiled |"):
        assert header in done.stdout, header
