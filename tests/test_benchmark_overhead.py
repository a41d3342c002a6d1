"""benchmarks/overhead.py runs end to end on tiny models, and its shared machinery (_bench.py) computes right.

No timing is asserted: only that every arm ran, did the same work (same losses) and was measured.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "overhead.py"
sys.path.insert(0, str(BENCHMARKS))
from _bench import StepClock, pair_ratios, rotated, spread, verdict  # noqa: E402
from overhead import PHASES, check_losses, parse_args, report  # noqa: E402


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # five worker processes, each importing torch, transformers and peft: ~50 s on 2 cores
def test_smoke_all_arms(tmp_path: Path) -> None:
    """``--smoke`` (tiny BERT, fp32): all five arms run 3 measured steps, agree on their first losses, report
    phase shares that add up to the whole step, and the JSON and tables hold every ratio with its target."""
    out = tmp_path / "overhead.json"
    done = run_script("--smoke", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    (runs,) = result["runs"]
    assert sorted(r["arm"] for r in runs) == ["a", "b", "c", "d", "e"]
    by_arm = {r["arm"]: r for r in runs}
    for r in runs:
        assert r["steps"] == 3 and r["median_s"] > 0 and r["peak_rss_mb"] > 0
        assert sum(r["shares"].values()) == pytest.approx(1.0)
        assert all(r["shares"][p] > 0 for p in ("forward", "backward", "optimizer", "data"))
        if r["arm"] != "b":  # same optimizer groups as arm a: the same first three losses
            assert r["losses"] == pytest.approx(by_arm["a"]["losses"], rel=1e-4)
    assert by_arm["b"]["losses"][0] == pytest.approx(by_arm["a"]["losses"][0], rel=1e-4)
    ratios = result["summary"]["ratios"]
    assert set(ratios) == {"c/a", "c/b", "d/c", "e/c"}
    assert ratios["c/a"]["median_s"]["target"] == 1.03 and ratios["c/a"]["peak_rss_mb"]["target"] == 1.05
    assert ratios["c/a"]["median_s"]["verdict"] in ("met", "missed", "unclear")
    assert ratios["c/a"]["step_per_compute"]["target"] == 1.03 and "target" not in ratios["e/c"]["step_per_compute"]
    for r in runs:  # the step over its own forward + backward + optimizer time
        compute = sum(r["shares"][p] for p in ("forward", "backward", "optimizer"))
        assert r["step_per_compute"] == pytest.approx(1 / compute) and r["step_per_compute"] > 1
    drift_free = by_arm["c"]["step_per_compute"] / by_arm["a"]["step_per_compute"]
    assert ratios["c/a"]["step_per_compute"]["median"] == pytest.approx(drift_free)
    assert set(result["summary"]["arms"]["c"]["shares"]) == set(PHASES)
    assert "| (c) LoraPlusModule, no callbacks |" in done.stdout and "| (c)/(a) |" in done.stdout


@pytest.mark.slow  # three worker processes: ~30 s on 2 cores
def test_smoke_llama_bf16(tmp_path: Path) -> None:
    """Causal LM in bf16-mixed (tiny Llama, LoRA on all 7 projections): the hand loop, HF Trainer and
    LoraPlusModule agree on all first three losses, since without 1-D trainable parameters PEFT's LoRA+
    groups equal ours."""
    out = tmp_path / "llama.json"
    done = run_script(
        "--smoke", "--model", "llama", "--precision", "bf16-mixed", "--arms", "a", "b", "c", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    by_arm = {r["arm"]: r for r in json.loads(out.read_text())["runs"][0]}
    assert set(by_arm) == {"a", "b", "c"}
    for arm in ("b", "c"):
        assert by_arm[arm]["losses"] == pytest.approx(by_arm["a"]["losses"], rel=1e-2)
    assert set(json.loads(out.read_text())["summary"]["ratios"]) == {"c/a", "c/b"}


@pytest.mark.parametrize("name", ["overhead_minilm_32", "overhead_llama_32"])
def test_documented_tables_match_the_committed_results(name: str) -> None:
    """The overhead page's tables (docs/benchmarks/overhead.md) are exactly what the script prints for the
    committed JSON, which was measured with the default settings (5 rounds of 100 steps after 5 warm-up steps,
    all five arms)."""
    result = json.loads((BENCHMARKS / "results" / f"{name}.json").read_text())
    settings = result["settings"]
    assert (settings["repeats"], settings["steps"], settings["warmup"]) == (5, 100, 5)
    assert settings["arms"] == ["a", "b", "c", "d", "e"] and not settings["smoke"]
    assert len(result["runs"]) == 5 and all(len(r) == 5 for r in result["runs"])
    page = (BENCHMARKS.parent / "docs" / "benchmarks" / "overhead.md").read_text()
    assert report(result["summary"], settings["repeats"]) in page


@pytest.mark.subprocess
def test_profile_writes_call_tree(tmp_path: Path, require) -> None:
    """``--profile`` writes a pyinstrument call tree of the measured steps in which Lightning's training step
    appears."""
    require(importlib.util.find_spec("pyinstrument") is not None, "pyinstrument is not installed")
    out = tmp_path / "prof.json"
    done = run_script("--smoke", "--profile", "--arms", "c", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    tree = (tmp_path / "prof_profile" / "c.txt").read_text()
    assert "training_step" in tree


def test_check_losses_stops_on_mismatch() -> None:
    """Arms whose losses disagree stop the benchmark with both sets of losses; against arm b only the first
    loss counts."""
    a = {"arm": "a", "losses": [0.70, 0.69, 0.68]}
    check_losses([a, {"arm": "b", "losses": [0.70, 0.60, 0.50]}], "32-true")
    with pytest.raises(SystemExit, match=r"arm c \[0.7, 0.69, 0.6\] vs arm a \[0.7, 0.69, 0.68\]"):
        check_losses([a, {"arm": "c", "losses": [0.70, 0.69, 0.60]}], "32-true")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0", "--out", "x.json"], r"`--steps=0` must be ≥ 1"),
        (["--warmup", "-1", "--out", "x.json"], r"`--warmup=-1` must be ≥ 0"),
        ([], r"`--out` is required"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad settings are refused before any run, naming the flag and value."""
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message.replace("\\", "") in capsys.readouterr().err


def test_step_clock() -> None:
    """Step times are the gaps between marks after the warm-up; phase shares count spans that start inside
    the measured window, and ``other`` is the rest."""
    seen: list[int] = []
    clock = StepClock(on_mark=seen.append)
    clock.marks = [0.0, 1.0, 3.0, 6.0, 10.0]
    clock.span("forward", 0.5, 0.9)  # warm-up step: not counted
    clock.span("forward", 1.0, 2.0)
    clock.span("data", 5.0, 5.5)
    clock.span("forward", 6.0, 9.0)  # after the window of count=2
    assert clock.step_times(1) == [2.0, 3.0, 4.0]
    assert clock.step_times(1, count=2) == [2.0, 3.0]
    assert clock.shares(1, count=2) == pytest.approx({"forward": 0.2, "data": 0.1, "other": 0.7})
    clock.mark()
    assert seen == [5] and len(clock.marks) == 6


def test_ratios_and_verdicts() -> None:
    """Ratios are taken within each round, summarised by median and range; a target is met only when the
    whole range is at or below it."""
    runs = [
        [{"v": "base", "t": 2.0}, {"v": "x", "t": 2.2}],
        [{"v": "x", "t": 3.0}, {"v": "base", "t": 3.0}],
        [{"v": "base", "t": 1.0}, {"v": "x", "t": 0.9}],
    ]
    ratio = pair_ratios(runs, "v", "x", "base", ["t"])["t"]
    assert ratio["pairs"] == pytest.approx([1.1, 1.0, 0.9])
    assert (ratio["median"], ratio["min"], ratio["max"]) == pytest.approx((1.0, 0.9, 1.1))
    assert [verdict(ratio, t) for t in (1.1, 1.05, 0.8)] == ["met", "unclear", "missed"]
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "pairs": [3.0, 1.0, 2.0]}
    assert [rotated("abc", i) for i in range(4)] == [list("abc"), list("bca"), list("cab"), list("abc")]
