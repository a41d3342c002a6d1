"""The fast-paths benchmark (``python -m benchmarks.performance.fast_paths``) runs end to end (``--smoke``: tiny
models, 2 rounds of 3 steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.subprocess
def test_smoke(tmp_path: Path, minilm_path: Path, run_python) -> None:
    """Every measurement writes its blocks and ratios; grouping pads fewer tokens than the plain shuffle; the
    AdamW variants run on both adapters; the compile blocks run after a timed compilation; the precision blocks
    time fp32 against bf16 autocast and say whether the CPU has bf16 instructions."""
    out = tmp_path / "fp.json"
    args = ["--smoke", "--compile-backend", "eager", "--out", str(out), "--only", "group_by_length", "adamw",
            "compile", "precision"]  # fmt: skip
    done = run_python("-m", "benchmarks.performance.fast_paths", *args)
    result = json.loads(out.read_text())
    grouped = result["group_by_length"]
    assert grouped["tokens"] <= grouped["padded_tokens"]["grouped"] < grouped["padded_tokens"]["shuffle"]
    assert len(grouped["rounds"]) == 2 and set(grouped["rounds"][0]) == {"shuffle", "grouped"}
    for name, adamw in result["adamw"].items():
        assert adamw["tensors"] > 0 and set(adamw["ratios"]) == {"foreach", "fused"}, name
    assert result["compile"]["compile_s"] > 0 and set(result["compile"]["ratios"]) == {"compiled"}
    precision = result["precision"]
    assert set(precision["ratios"]) == {"bf16-mixed"} and precision["ratios"]["bf16-mixed"]["median_s"]["median"] > 0
    assert set(precision["cpu_bf16_instructions"]) <= {"avx512_bf16", "amx_bf16"}
    for header in ("| grouped |", "| adapter | tensors |", "| compiled |", "| bf16-mixed |"):
        assert header in done.stdout, header


def test_the_bf16_cost_the_docs_quote_is_the_committed_measurement() -> None:
    """The overhead page and troubleshooting quote bf16 autocast's step time on a CPU without bf16 instructions
    as ``results/precision_cpu.json`` has it (its median ratio, and the range on the overhead page)."""
    repo = Path(__file__).resolve().parents[1]
    result = json.loads((repo / "benchmarks/results/precision_cpu.json").read_text())["precision"]
    assert result["cpu_bf16_instructions"] == []
    ratio = result["ratios"]["bf16-mixed"]["median_s"]
    overhead, troubleshooting = (" ".join((repo / "docs" / page).read_text().split())
                                 for page in ("benchmarks/overhead.md", "guides/troubleshooting.md"))  # fmt: skip
    assert f"about {ratio['median']:.0f}× its fp32 time" in overhead
    assert f"{ratio['min']:.1f}–{ratio['max']:.1f}× over {len(result['rounds'])} rounds" in overhead
    assert f"about {ratio['median']:.0f}× its fp32 time" in troubleshooting
