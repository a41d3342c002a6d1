"""``python -m benchmarks.performance.overhead`` runs end to end on tiny models, and its loss check, arguments and
report are right.

No timing is asserted: only that every arm ran, did the same work (same losses) and was measured.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks.harness.paths import REPO, RESULTS
from benchmarks.performance.overhead import PHASES, check_losses, parse_args, report

MODULE = "benchmarks.performance.overhead"


@pytest.mark.slow  # five worker processes, each importing torch, transformers and peft: ~50 s on 2 cores
def test_smoke_all_arms(tmp_path: Path, run_python) -> None:
    """``--smoke`` (tiny BERT, fp32): all five arms run 3 measured steps, agree on their first losses, report
    phase shares that add up to the whole step, and the JSON and tables hold every ratio with its target."""
    out = tmp_path / "overhead.json"
    done = run_python("-m", MODULE, "--smoke", "--out", str(out))
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
def test_smoke_llama_bf16(tmp_path: Path, run_python) -> None:
    """Causal LM in bf16-mixed (tiny Llama, LoRA on all 7 projections): the hand loop, HF Trainer and
    LoraPlusModule agree on all first three losses, since without 1-D trainable parameters PEFT's LoRA+
    groups equal ours."""
    out = tmp_path / "llama.json"
    run_python(
        "-m",
        MODULE,
        "--smoke",
        "--model",
        "llama",
        "--precision",
        "bf16-mixed",
        "--arms",
        "a",
        "b",
        "c",
        "--out",
        str(out),
    )
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
    result = json.loads((RESULTS / f"{name}.json").read_text())
    settings = result["settings"]
    assert (settings["repeats"], settings["steps"], settings["warmup"]) == (5, 100, 5)
    assert settings["arms"] == ["a", "b", "c", "d", "e"] and not settings["smoke"]
    assert len(result["runs"]) == 5 and all(len(r) == 5 for r in result["runs"])
    page = (REPO / "docs" / "benchmarks" / "overhead.md").read_text()
    assert report(result["summary"], settings["repeats"]) in page


@pytest.mark.subprocess
def test_profile_writes_call_tree(tmp_path: Path, require, run_python) -> None:
    """``--profile`` writes a pyinstrument call tree of the measured steps in which Lightning's training step
    appears."""
    require(importlib.util.find_spec("pyinstrument") is not None, "pyinstrument is not installed")
    out = tmp_path / "prof.json"
    run_python("-m", MODULE, "--smoke", "--profile", "--arms", "c", "--out", str(out))
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
