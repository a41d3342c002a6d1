"""The fast-paths benchmark runs end to end (``--smoke``: tiny models, 2 rounds of 3 steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fast_paths.py"


def test_smoke(tmp_path: Path, minilm_path: Path) -> None:
    """Every measurement writes its blocks and ratios; grouping pads fewer tokens than the plain shuffle; the
    AdamW variants run on both adapters; the compile blocks run after a timed compilation."""
    out = tmp_path / "fp.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--compile-backend", "eager", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    grouped = result["group_by_length"]
    assert grouped["tokens"] <= grouped["padded_tokens"]["grouped"] < grouped["padded_tokens"]["shuffle"]
    assert len(grouped["rounds"]) == 2 and set(grouped["rounds"][0]) == {"shuffle", "grouped"}
    for name, adamw in result["adamw"].items():
        assert adamw["tensors"] > 0 and set(adamw["ratios"]) == {"foreach", "fused"}, name
    assert result["compile"]["compile_s"] > 0 and set(result["compile"]["ratios"]) == {"compiled"}
    for header in ("| grouped |", "| adapter | tensors |", "| compiled |"):
        assert header in done.stdout, header
