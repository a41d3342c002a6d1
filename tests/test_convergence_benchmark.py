"""The LoRA vs LoRA+ convergence benchmark (``python -m benchmarks.evidence.v1``): its cell selection and
steps-to-target arithmetic, its option checks, and a ``--smoke`` run of every arm (tiny config-built models, the
real GLUE and MMLU files) that must write consistent run records, figures, MMLU results and a summary, and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.evidence.v1 import __main__ as convergence
from benchmarks.evidence.v1 import report
from benchmarks.harness.paths import REPO, RESULTS


def _record(lr: float, ratio: float, seed: int, losses: list[float | None], accuracy: list[float]) -> dict:
    """A run record as train_run writes it, with held-out evaluations at steps 10, 20, 30, ..."""
    evals = [
        {"step": 10 * (i + 1), "loss": v, "accuracy": a} for i, (v, a) in enumerate(zip(losses, accuracy, strict=True))
    ]
    return {"spec": {"lr": lr, "ratio": ratio, "seed": seed}, "evals": evals, "final": evals[-1]}


def test_steps_to_target_on_seed_mean_curves() -> None:
    """LoRA's target is its final seed-mean value; LoRA+ reaches it at the first evaluation at least as good
    (lower for the loss, higher for accuracy); a curve that never gets there gives None and no speed-up."""
    lora = [_record(1e-3, 1, s, [0.8, 0.7, 0.6 + d], [0.6, 0.7, 0.8]) for s, d in ((0, -0.05), (1, 0.05))]
    plus = [_record(1e-3, 16, s, [0.7, 0.6, 0.5], [0.7, 0.8, 0.85]) for s in (0, 1)]
    loss = report.steps_to_target(lora, plus, "loss")
    assert loss["target"] == pytest.approx(0.6)
    assert (loss["lora_steps"], loss["loraplus_steps"], loss["speedup"]) == (30, 20, 1.5)
    accuracy = report.steps_to_target(lora, plus, "accuracy")
    assert (accuracy["lora_steps"], accuracy["loraplus_steps"]) == (30, 20)
    never = report.steps_to_target(plus, lora, "loss")
    assert never["loraplus_steps"] is None and never["speedup"] is None


def test_best_cells_ignore_diverged_runs_and_average_seeds() -> None:
    """The best cell is the best seed-mean final held-out loss; a diverged run (loss None) never wins; the
    summary keeps λ = 1 and λ > 1 apart and reports mean ± std over every seed at the chosen cells."""
    grid = [
        _record(1e-4, 1, 0, [0.9, 0.8], [0.5, 0.6]),
        _record(1e-3, 1, 0, [0.8, 0.7], [0.6, 0.7]),
        _record(1e-4, 16, 0, [0.7, 0.5], [0.7, 0.8]),
        _record(1e-3, 16, 0, [0.6, None], [0.7, 0.5]),  # diverged
    ]
    extra = [_record(1e-3, 1, 1, [0.8, 0.9], [0.6, 0.6]), _record(1e-4, 16, 1, [0.7, 0.7], [0.7, 0.7])]
    assert report.best_cell(grid) == (1e-4, 16)
    assert report.best_cell(g for g in grid if g["spec"]["lr"] == 1e-3) == (1e-3, 1)
    summary = report.summarise_arm(grid + extra, "accuracy")
    assert (summary["best_lora"]["lr"], summary["best_lora"]["ratio"]) == (1e-3, 1)
    assert (summary["best_loraplus"]["lr"], summary["best_loraplus"]["ratio"]) == (1e-4, 16)
    assert summary["best_loraplus"]["loss"]["mean"] == pytest.approx(0.6)
    assert summary["best_loraplus"]["loss"]["std"] == pytest.approx(math.sqrt(0.02))
    assert summary["best_ratio"] == {"overall": 16, "per_lr": {"0.0001": 16, "0.001": 1}}
    assert len(summary["grid"]) == 4 and math.isnan(summary["grid"][3]["loss"])
    assert "| arm |" in report.markdown_table({"x-standard": summary})


def test_bad_options_are_refused_before_training(tmp_path: Path) -> None:
    """Each bad option is named with its value and the fix, all at once; the script exits with 2."""
    args = convergence.parse_args(
        ["--out", str(tmp_path), "--phases", "grid,plot", "--tasks", "sst2,qqp", "--lrs", "1e-3,-1", "--ratios", "2,4"]
        + ["--seeds", "0", "--causal-ratios", "1", "--causal-lrs", "0", "--glue-dir", str(tmp_path)]
    )
    problems = " ".join(convergence.check_args(args))
    for expected in ("`--phases` holds ['plot']", "`--tasks` holds ['qqp']", "`--lrs` holds [-1.0]",
                     "`--causal-lrs` holds [0.0]", "must contain 1", "`--seeds=0`",
                     "`--causal-ratios=[1.0]` needs a λ > 1",
                     "holds no SST-2/train.tsv"):  # fmt: skip
        assert expected in problems
    assert convergence.main(["--out", str(tmp_path), "--ratios", "4"]) == 2
    with pytest.raises(SystemExit):
        convergence.parse_args(["--out", str(tmp_path), "--lrs", "fast"])


@pytest.mark.slow
def test_smoke_runs_every_arm_and_resumes(
    tmp_path, tiny_bert_dir, tiny_llama_dir, glue_dir, mmlu_dir, run_python
) -> None:
    """``--smoke`` over every phase trains every arm (SST-2 under both inits, CoLA, MRPC, the causal instruction
    arm) on a 2 × 2 grid plus a second seed at the best cells, scores MMLU, and writes records whose best cells,
    curves and MMLU standard errors the summary reports consistently; a rerun trains nothing again."""
    out = tmp_path / "results"
    common = ["--out", str(out), "--model", str(tiny_bert_dir), "--causal-model", str(tiny_llama_dir)]
    common += ["--glue-dir", str(glue_dir), "--mmlu-dir", str(mmlu_dir)]
    run_python("-m", "benchmarks.evidence.v1", "--smoke", *common, "--phases", "budget,grid,seeds,finder,mmlu,report")

    arms = ["sst2-standard", "sst2-loraplus", "cola-standard", "mrpc-standard", "instruct-standard"]
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert len(records) == len(arms) * (4 + 2)  # 2 η_A × 2 λ at seed 0, then seed 1 at the 2 best cells
    for record in records:
        assert [step for step, _ in record["train"]] == [1, 2, 3, 4]
        assert [e["step"] for e in record["evals"]] == [2, 4]
        assert {"loss", record["metric"]} <= record["final"].keys()
    budget = json.loads((out / "budget.json").read_text())
    assert set(budget["arms"]) == {*arms, "mmlu"} and budget["total_hours"] > 0

    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == arms
    for arm, s in summary.items():
        assert (out / "figures" / f"heatmap_{arm}.png").stat().st_size > 0
        assert (out / "figures" / f"curves_{arm}.png").stat().st_size > 0
        mine = [r for r in records if f"{r['spec']['task']}-{r['spec']['init']}" == arm]
        grid = {(r["spec"]["lr"], r["spec"]["ratio"]): r["final"]["loss"] for r in mine if r["spec"]["seed"] == 0}
        for name, ratios in (("best_lora", {1.0}), ("best_loraplus", {4.0})):
            cell = (s[name]["lr"], s[name]["ratio"])
            assert cell[1] in ratios and s[name]["seeds"] == [0, 1]
            assert grid[cell] == min(v for (lr, ratio), v in grid.items() if ratio in ratios)
            finals = [r["final"]["loss"] for r in mine if (r["spec"]["lr"], r["spec"]["ratio"]) == cell]
            assert s[name]["loss"]["mean"] == pytest.approx(sum(finals) / 2)
        assert set(s["steps_to_target"]) == {"loss", s["metric"]}
        finder = json.loads((out / "finder" / f"{arm}.json").read_text())
        best = min(grid, key=grid.get)  # the finder is checked against the best cell of the whole seed-0 grid
        assert (finder["lr"], finder["grid_best_ratio"]) == best
        assert finder["grid_row_loss"] == {str(ratio): v for (lr, ratio), v in grid.items() if lr == best[0]}
        assert [t["ratio"] for t in finder["finder"]["trials"]] == [1.0, 4.0]
        assert all(len(t["losses"]) == 4 for t in finder["finder"]["trials"])
        apart = abs([1.0, 4.0].index(finder["suggested_ratio"]) - [1.0, 4.0].index(best[1]))
        assert finder["grid_steps_apart"] == apart and finder["within_one_step"] == (apart <= 1)
        assert s["finder"]["suggested_ratio"] == finder["suggested_ratio"]
        assert (out / "figures" / f"finder_{arm}.png").stat().st_size > 0
    mmlu = summary["instruct-standard"]["mmlu"]
    assert {"base", "best_lora", "best_loraplus"} <= mmlu.keys()
    p, n = mmlu["base"]["accuracy"], mmlu["base"]["n"]
    assert n == 8 and mmlu["base"]["se"] == pytest.approx(math.sqrt(p * (1 - p) / n))

    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    again = run_python("-m", "benchmarks.evidence.v1", "--smoke", *common, "--phases", "grid,seeds")
    assert again.stdout.count("skip ") == len(records) and "done " not in again.stdout
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}


def test_documented_results_match_the_committed_summary() -> None:
    """The convergence page's tables (docs/benchmarks/convergence.md) are exactly what the report phase prints
    from the committed summary.json, and every figure the summary implies is committed beside it."""
    results = RESULTS / "convergence"
    summary = json.loads((results / "summary.json").read_text())
    page = (REPO / "docs" / "benchmarks" / "convergence.md").read_text()
    assert report.markdown_table(summary) in page
    assert report.finder_table(summary) in page
    for arm, s in summary.items():
        assert (results / "figures" / f"heatmap_{arm}.png").is_file()
        if s.get("best_lora") and s.get("best_loraplus"):
            assert (results / "figures" / f"curves_{arm}.png").is_file()
        if s.get("finder"):
            assert (results / "figures" / f"finder_{arm}.png").is_file()
