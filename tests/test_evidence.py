"""The evidence-v2 benchmark (``python -m benchmarks.evidence``): its statistics and search logic on hand-made
records, its selection split, exact prefix + resume on a tiny model, and a smoke run of the whole pipeline that
resumes without retraining."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from benchmarks.evidence.__main__ import main
from benchmarks.evidence.auto import (
    VARIANTS,
    markdown_auto,
    random_cell,
    reference_lrs,
    search_space,
    summarise_auto,
    variant_spec,
)
from benchmarks.evidence.budgets import (
    budget_differences,
    last_rung_moves,
    outcomes,
    scaled_budget,
    step_down_changes,
    stepped_cell,
)
from benchmarks.evidence.common import median_interval, paired_difference, read_records, steps_to_reach, t_interval
from benchmarks.evidence.report import steps_to_target
from benchmarks.evidence.rows import choice_counts, rows_seed_of, rows_table, with_rows_seed
from benchmarks.evidence.runs import Paths, RunSpec, build_run, train
from benchmarks.evidence.search import ArmSearch, extension, horizon_bias, promote, search_arm
from benchmarks.evidence.tasks import RECIPES, Protocol, SelectionGlueDataModule, ladder_lr, ladder_step, smoke_recipe
from lit_loraplus.core.search import DEFAULT_LR, SearchSettings
from lit_loraplus.core.settings import DEFAULT_RATIO


def test_t_interval_matches_hand_computation() -> None:
    """Mean ± t(0.975, n−1)·s/√n; a single value has no interval (NaN), not a zero-width one."""
    found = t_interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (found["n"], found["mean"], found["std"]) == (3, 2.0, 1.0)
    assert found["half_width"] == pytest.approx(half) and found["low"] == pytest.approx(2 - half)
    assert found["half_width"] == pytest.approx(2.484, abs=1e-3)
    assert math.isnan(t_interval([0.5])["half_width"])


def test_paired_difference_pairs_by_seed() -> None:
    """Differences are treatment − baseline on the seeds both arms have; an unpaired seed is left out."""
    found = paired_difference({1: 0.5, 2: 0.6, 3: 0.7}, {1: 0.4, 2: 0.5, 3: 0.65, 4: 0.1})
    assert found["keys"] == [1, 2, 3]
    assert found["values"] == pytest.approx([-0.1, -0.1, -0.05])
    assert found["mean"] == pytest.approx(-0.25 / 3)
    assert found["std"] == pytest.approx(0.0288675, abs=1e-7)  # sqrt((2 · 0.016667² + 0.033333²) / 2)
    assert found["half_width"] == pytest.approx(0.0717109, abs=1e-7)  # t(0.975, 2) · std / √3 = 4.302653 · 0.016667


def test_paired_difference_counts_signs_and_ranks_so_one_extreme_pair_does_not_decide() -> None:
    """Beside the t-interval: how many differences fall below and above 0, and the exact two-sided Wilcoxon
    signed-rank p (zeros left out). One diverged pair (+8.3) widens the interval past 0 on both sides while two
    of three pairs improved; a diverged run's NaN makes every statistic NaN or None instead of raising."""
    found = paired_difference({1: 0.5, 2: 0.6, 3: 0.7, 4: 0.3}, {1: 0.4, 2: 0.5, 3: 9.0, 4: 0.3})
    assert (found["below"], found["above"]) == (2, 1) and found["low"] < 0 < found["high"]
    assert found["signed_rank_p"] == pytest.approx(1.0)  # ranks 1.5, 1.5 below, 3 above: as likely by chance
    ten = paired_difference(dict.fromkeys(range(10), 1.0), {k: 1.0 - (k + 1) / 100 for k in range(10)})
    assert ten["below"] == 10 and ten["signed_rank_p"] == pytest.approx(2 / 2**10)  # all ten below: 2 of 1024 signs
    assert paired_difference({1: 0.5, 2: 0.5}, {1: 0.5, 2: 0.5})["signed_rank_p"] is None
    diverged = paired_difference({1: 0.5, 2: 0.6}, {1: math.nan, 2: 0.4})
    assert math.isnan(diverged["mean"]) and math.isnan(diverged["half_width"]) and diverged["signed_rank_p"] is None


def test_median_interval_is_the_exact_signed_rank_interval_of_the_walsh_averages() -> None:
    """Hodges-Lehmann: the median of the Walsh averages, between the k-th smallest and largest of them, with k from
    the exact signed-rank distribution (n = 10 at 95 %: P(T+ <= 8) = 25/1024, so k = 9 and coverage 1 - 50/1024).
    Too few values for the coverage, or a NaN, give None; a diverged baseline does not pull the interval across 0."""
    values = [0.3, -1.2, 0.8, 2.1, -0.4, 1.7, 0.9, 1.1, -0.2, 0.6]
    walsh = sorted((a + b) / 2 for i, a in enumerate(values) for b in values[i:])
    found = median_interval(values)
    assert found == {"estimate": pytest.approx(statistics.median(walsh)), "low": walsh[8], "high": walsh[-9],
                     "coverage": pytest.approx(1 - 50 / 1024)}  # fmt: skip
    assert median_interval(values[:5]) is None and median_interval(values[:6])["low"] == min(values[:6])
    assert median_interval([0.1, math.nan, 0.2, 0.3, 0.4, 0.5]) is None
    # 8 small gains, 1 smaller loss, and a baseline that diverged (loss 9.0): like a search against a random cell
    baseline = dict.fromkeys(range(10), 1.0) | {9: 9.0}
    diverged = paired_difference(baseline, {k: 1.0 - (k + 1) / 100 for k in range(8)} | {8: 1.005, 9: 1.0})
    assert diverged["low"] < 0 < diverged["high"]  # the t-interval straddles 0 ...
    assert diverged["median"]["high"] < 0 < diverged["signed_rank_p"] < 0.05  # ... rank methods see 9 of 10 below


@pytest.mark.parametrize("seed", range(20))
def test_median_interval_excludes_0_exactly_when_the_signed_rank_test_rejects(seed: int) -> None:
    """The interval inverts the two-sided exact signed-rank test: 0 lies outside it iff scipy's p <= 1 - coverage."""
    values = list(np.random.default_rng(seed).normal(0.6, 1.0, size=8 + seed % 5))
    found = median_interval(values)
    p = stats.wilcoxon(values, method="exact").pvalue
    assert (not found["low"] <= 0 <= found["high"]) == (p <= 1 - found["coverage"] + 1e-12)


def test_steps_to_reach_interpolates_between_evaluations() -> None:
    """Linear interpolation between the last evaluation short of the target and the first at or past it; higher
    is better for metrics; reached at the first evaluation is flagged as a bound; never reached gives None."""
    assert steps_to_reach([10, 20, 30], [0.9, 0.7, 0.5], 0.6, lower_is_better=True) == {"steps": 25.0, "bound": False}
    assert steps_to_reach([10, 20, 30], [0.5, 0.7, 0.8], 0.75, lower_is_better=False)["steps"] == pytest.approx(25.0)
    assert steps_to_reach([10, 20], [0.5, 0.4], 0.6, lower_is_better=True) == {"steps": 10.0, "bound": True}
    assert steps_to_reach([10, 20], [0.9, 0.8], 0.6, lower_is_better=True) == {"steps": None, "bound": False}
    after_nan = steps_to_reach([10, 20], [math.nan, 0.5], 0.6, lower_is_better=True)  # NaN never reaches
    assert after_nan == {"steps": 20.0, "bound": True}


def _seed_record(seed: int, losses: list[float], accuracy: list[float]) -> dict:
    evals = [
        {"step": 10 * (i + 1), "loss": v, "accuracy": a} for i, (v, a) in enumerate(zip(losses, accuracy, strict=True))
    ]
    return {"spec": {"seed": seed}, "evals": evals, "final": evals[-1]}


def test_steps_to_target_uses_loras_final_seed_mean() -> None:
    """Target = LoRA's final seed-mean; LoRA+'s seed-mean curve and each seed's curve are interpolated to it;
    speed-up = N / steps."""
    lora = [_seed_record(1, [0.8, 0.7, 0.55], [0.6, 0.7, 0.8]), _seed_record(2, [0.8, 0.7, 0.65], [0.6, 0.7, 0.8])]
    plus = [_seed_record(1, [0.7, 0.5, 0.45], [0.7, 0.9, 0.9]), _seed_record(2, [0.7, 0.6, 0.55], [0.7, 0.8, 0.85])]
    loss = steps_to_target(lora, plus, "loss", total=30)
    assert loss["target"] == pytest.approx(0.6)
    assert loss["loraplus"]["steps"] == pytest.approx(10 + 10 * 0.1 / 0.15)  # mean curve 0.7 → 0.55 over steps 10-20
    assert loss["loraplus"]["speedup"] == pytest.approx(30 / (10 + 10 * 0.1 / 0.15))
    assert loss["per_seed"][1]["steps"] == pytest.approx(15.0) and loss["per_seed"][2]["steps"] == pytest.approx(20.0)
    assert loss["lora"]["steps"] == pytest.approx(30.0)
    accuracy = steps_to_target(lora, plus, "accuracy", total=30)
    assert accuracy["target"] == pytest.approx(0.8)
    assert accuracy["loraplus"]["steps"] == pytest.approx(10 + 10 * 0.1 / 0.15)  # mean 0.7 → 0.85


def test_ladder_steps_are_at_most_215_percent_apart() -> None:
    """η_A values are 10^(k/3) to three digits; the ladder step is recovered from the value."""
    assert [ladder_lr(k) for k in range(-11, -6)] == [2.15e-4, 4.64e-4, 1e-3, 2.15e-3, 4.64e-3]
    assert all(ladder_step(ladder_lr(k)) == k for k in range(-15, 0))
    # 10^(1/3) = 2.154; three-digit rounding makes 4.64 / 2.15 = 2.158
    assert max(ladder_lr(k + 1) / ladder_lr(k) for k in range(-15, 0)) < 2.16
    assert Protocol().lrs == (2.15e-4, 4.64e-4, 1e-3, 2.15e-3, 4.64e-3)


def test_promotion_keeps_the_best_quarter_and_at_least_two() -> None:
    """⌈n/4⌉ lowest rung losses (at least 2, at most n) continue; a diverged cell (NaN) ranks last."""
    five = {(lr, 1.0): loss for lr, loss in zip([1, 2, 3, 4, 5], [0.5, 0.3, math.nan, 0.4, 0.6], strict=True)}
    assert promote(five, 0.25, 2) == [(2, 1.0), (4, 1.0)]
    grid = {(lr, ratio): lr * ratio for lr in range(1, 6) for ratio in (2, 4, 8, 16, 32)}
    assert len(promote(grid, 0.25, 2)) == 7 and promote(grid, 0.25, 2)[0] == (1, 2)
    assert promote({(1, 1.0): math.nan}, 0.25, 2) == [(1, 1.0)]


def test_extension_only_from_an_edge() -> None:
    """A choice at the smallest η_A extends one ladder step down, at the largest one step up, else nothing."""
    lrs = [1e-3, 2.15e-3, 4.64e-3]
    assert extension(lrs, 1e-3) == 4.64e-4 and extension(lrs, 4.64e-3) == 1e-2 and extension(lrs, 2.15e-3) is None


def _complete(arm: str, ratios: tuple, lrs: tuple, loss, max_extensions: int = 3):
    """Play the search to the end with ``loss(lr, ratio)`` as both rung and final loss; returns (state, rounds)."""
    rung, full, rounds = {}, {}, 0
    while not (state := search_arm(arm, ratios, lrs, rung, full, 0.25, 2, max_extensions)).complete:
        rung |= {c: loss(*c) for c in state.todo_rung}
        full |= {c: loss(*c) for c in state.todo_full}
        assert not (set(state.todo_full) - set(state.promoted)), "only promoted cells run to N"
        rounds += 1
    return state, rounds


def test_search_extends_the_grid_until_the_optimum_is_interior() -> None:
    """With the optimum beyond the top of the grid, the arm adds 1e-2 (its best is then the edge again) and
    2.15e-2, and chooses 1e-2; the other arm's grid is untouched by this one's extensions."""

    def bowl(lr: float, ratio: float) -> float:
        return (math.log10(lr) + 2) ** 2 + 0.01 * abs(math.log2(ratio) - 2)

    state, _ = _complete("loraplus", (2.0, 4.0, 8.0), Protocol().lrs, bowl)
    assert state.choice == (1e-2, 4.0) and state.extensions == [1e-2, 2.15e-2] and not state.capped
    assert len(state.rung_loss) == 7 * 3 and state.lrs[-1] == 2.15e-2
    down, _ = _complete("lora", (1.0,), Protocol().lrs, lambda lr, r: (math.log10(lr) + 4) ** 2)
    assert down.choice == (1e-4, 1.0) and down.extensions == [1e-4, 4.64e-5]


def test_search_says_capped_when_extensions_run_out() -> None:
    """With the optimum far off the grid and one extension allowed, the choice stays on the edge: capped."""
    state, _ = _complete("lora", (1.0,), Protocol().lrs, lambda lr, r: -lr, max_extensions=1)
    assert state.choice == (1e-2, 1.0) and state.capped and state.extensions == [1e-2]


def test_horizon_bias_compares_the_finalists_rung_ranking_with_their_ranking_at_n() -> None:
    """Short trials that favour a larger rate show as factors above 1: here rung 0 ranks (2.15e-3, λ 2) first of
    the three finalists, N ranks (1e-3, λ 8) first, so η_A ×2.15 and B's rate ×0.5375; cells stopped at rung 0
    do not count, and one finalist gives no comparison."""
    rung_loss = {(1e-3, 8.0): 0.40, (2.15e-3, 2.0): 0.35, (4.64e-4, 16.0): 0.45, (1e-2, 1.0): 0.10}
    full = {(1e-3, 8.0): 0.30, (2.15e-3, 2.0): 0.33, (4.64e-4, 16.0): 0.31}
    state = ArmSearch("loraplus", [4.64e-4, 1e-3, 2.15e-3, 1e-2], (1.0, 2.0, 8.0, 16.0), rung_loss, full)
    bias = horizon_bias(state)
    assert bias is not None and bias["rung_best"] == [2.15e-3, 2.0] and bias["full_best"] == [1e-3, 8.0]
    assert bias["lr_factor"] == pytest.approx(2.15) and bias["b_factor"] == pytest.approx(2.15 * 2 / 8)
    assert bias["finalists"] == 3
    state.full_loss = {(1e-3, 8.0): 0.30}
    assert horizon_bias(state) is None


def test_selection_split_is_fixed_disjoint_and_never_dev(glue_dir: Path) -> None:
    """The selection split holds `selection_rows` train rows, the same for every run seed, none in the training
    rows; evaluate_on='dev' trains on the same rows and validates on GLUE dev."""

    def rows(seed: int, on: str) -> tuple[list, list]:
        data = SelectionGlueDataModule("mrpc", "unused", str(glue_dir), evaluate_on=on, selection_rows=400, seed=seed)
        return data._read("train"), data._read("validation")

    train0, held0 = rows(0, "selection")
    train3, held3 = rows(3, "selection")
    train_dev, dev = rows(3, "dev")
    assert len(held0) == 400 and held0 == held3 and train0 == train3 == train_dev
    assert not {texts for texts, _ in held0} & {texts for texts, _ in train0}
    assert len(train0) + len(held0) == 3667 and len(dev) == 408


def test_prefix_then_resume_equals_the_uninterrupted_run(tmp_path: Path, tiny_bert_dir: Path, glue_dir: Path) -> None:
    """A rung run (stops at N/4, checkpoint) resumed to N gives the uninterrupted run's exact train losses and
    evaluations, across an epoch boundary (48 rows, batch 4: 12 steps an epoch, N = 16)."""
    recipe = replace(smoke_recipe("sst2"), steps=16)
    paths = Paths(tmp_path / "out", tmp_path / "ckpt", glue_dir, str(tiny_bert_dir))
    cell = {"task": "sst2", "init": "standard", "lr": 1e-2, "ratio": 8.0, "seed": 0}
    straight = train(RunSpec(**cell, kind="full"), recipe, paths)
    rung = train(RunSpec(**cell, kind="rung"), recipe, paths)
    assert paths.checkpoint(RunSpec(**cell, kind="rung")).exists() and rung["final"]["step"] == 4
    resumed = train(RunSpec(**cell, kind="full"), recipe, paths, prefix=rung)
    assert resumed["resumed_from"] == 4
    assert resumed["train"] == straight["train"] and len(straight["train"]) == 16
    assert resumed["evals"] == straight["evals"] and [e["step"] for e in resumed["evals"]] == [4, 8, 12, 16]


def test_smoke_run_writes_records_and_report_then_resumes(tmp_path: Path, tiny_bert_dir: Path, glue_dir: Path,
                                                          capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    """Every phase on a tiny BERT (≈ 20 s): a pilot, rung and full selection runs scored on the selection split only,
    the chosen cells on seeds 1 and 2 scored on dev (paired), the auto variants on the same seeds (their searches
    scored on held-out training rows, never dev), summary/figures/report; a rerun trains nothing."""
    out = tmp_path / "out"
    argv = ["--out", str(out), "--smoke", "--tasks", "sst2", "--model", str(tiny_bert_dir), "--glue-dir",
            str(glue_dir), "--max-extensions", "1"]  # fmt: skip
    assert main(argv) == 0
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").rglob("*.json"))]
    kinds = [r["spec"]["kind"] for r in records]
    assert kinds.count("pilot") == 1 and kinds.count("rung") >= 2 and kinds.count("full") >= 2
    assert all(r["evaluate_on"] == ("dev" if r["spec"]["kind"] in ("seed", "auto") else "selection") for r in records)
    auto = [r for r in records if r["spec"]["kind"] == "auto"]
    assert sorted((r["spec"]["variant"], r["spec"]["seed"]) for r in auto) == sorted(
        (v, s) for v in VARIANTS for s in (1, 2)
    )
    searched = [r["search"] for r in auto if r["spec"]["variant"] in ("auto", "auto-ratio")]
    assert len(searched) == 4 and all(s["scored_on"] == "held-out training rows" for s in searched)
    seeds = [r["spec"] for r in records if r["spec"]["kind"] == "seed"]
    assert sorted((s["ratio"] == 1, s["seed"]) for s in seeds) == [(False, 1), (False, 2), (True, 1), (True, 2)]
    assert all(r["resumed_from"] == 2 for r in records if r["spec"]["kind"] == "full")
    summary = json.loads((out / "summary.json").read_text())["sst2-standard"]
    assert set(summary["arms"]) == {"lora", "loraplus"} and summary["paired"]["loss"]["keys"] == [1, 2]
    assert summary["arms"]["lora"]["cells_rung"] == len(summary["arms"]["lora"]["lrs"])
    assert set(summary["auto"]) == set(VARIANTS)
    assert summary["auto"]["auto"]["paired"]["best_cell"]["loss"]["keys"] == [1, 2]
    default = {"seed": 1, "lr": DEFAULT_LR, "ratio": DEFAULT_RATIO, "extra_steps": 0}
    assert summary["auto"]["default"]["chosen"][0] == default
    assert "auto − best_cell: loss" in (out / "report.md").read_text()
    for name in ("figures/curves_sst2-standard.png", "figures/selection_sst2-standard.png", "report.md"):
        assert (out / name).stat().st_size > 0
    capsys.readouterr()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    assert main(argv) == 0
    assert "start " not in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}


def test_replay_remakes_each_search_exactly_and_names_records_the_code_no_longer_makes(
    tmp_path: Path, tiny_bert_dir: Path, glue_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """``--phases replay`` after the smoke recipe's ``auto-ratio`` and ``default`` runs: each search is made again
    without training (``fit`` stops before its first step) and gives the record's trials, scores and choice
    exactly, so it exits 0; a fixed variant has nothing to replay. A trial score moved by a relative 1e-9 (another
    CPU's rounding) is the same under the default tolerance, which the line reports, and a difference with
    ``--replay-rtol 0``; a score moved by 1e-3 or a changed choice is always named (the cell and its scores; the
    choice) with exit status 1, and nothing is rewritten."""
    out = tmp_path / "out"
    argv = ["--out", str(out), "--smoke", "--tasks", "sst2", "--model", str(tiny_bert_dir), "--glue-dir",
            str(glue_dir), "--variants", "auto-ratio,default"]  # fmt: skip
    assert main([*argv, "--phases", "auto"]) == 0
    capsys.readouterr()
    assert main([*argv, "--phases", "replay"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said == [f"replay sst2-standard-auto-ratio-seed{s}: the same trials, scores and choice" for s in (1, 2)]

    folder = out / "runs" / "sst2" / "auto"
    first, second = (folder / f"sst2-standard-auto-ratio-seed{s}.json" for s in (1, 2))
    records = [json.loads(p.read_text()) for p in (first, second)]
    trial = records[0]["search"]["trials"][0]
    trial["scores"][0] *= 1 + 1e-9
    first.write_text(json.dumps(records[0]))
    assert main([*argv, "--phases", "replay"]) == 0
    assert "seed1: the same trials, scores and choice (scores within a relative 1.0e-09" in capsys.readouterr().out
    assert main([*argv, "--phases", "replay", "--replay-rtol", "0"]) == 1
    cell = f"sst2-standard-auto-ratio-seed1: η_A {trial['lr']:g}, λ {trial['ratio']:g}: {trial['steps']} steps"
    assert cell in capsys.readouterr().err

    trial["scores"][0] *= 1 + 1e-3
    records[1]["search"]["chosen"]["ratio"] = 64.0
    for path, record in zip((first, second), records, strict=True):
        path.write_text(json.dumps(record))
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    assert main([*argv, "--phases", "replay"]) == 1
    said = capsys.readouterr()
    assert cell in said.err
    assert "sst2-standard-auto-ratio-seed2: chosen: {'lr': 0.001, 'ratio': 64.0} → now" in said.err
    assert "seed1: chosen" not in said.err and "seed2: η_A" not in said.err
    assert stamps == {p: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    assert main([*argv, "--phases", "replay", "--replay-rtol", "-1"]) == 2
    assert "`--replay-rtol=-1.0` must be >= 0" in capsys.readouterr().err


def test_auto_variants_search_the_grids_space_within_the_budget_they_need() -> None:
    """The random cell is a fixed draw from the auto search space; each search variant gets 10 % of N, or the least
    its plan accepts where that is more; ``auto-lr-rows`` is ``auto-lr`` with its search rows drawn with the seed;
    an unknown variant is refused."""
    protocol, recipe = Protocol(), RECIPES["sst2"]
    space = search_space(protocol)
    assert len(space) == 5 * 6 and (2.15e-3, 1.0) in space and (4.64e-3, 32.0) in space
    draws = [random_cell(protocol, "sst2", "standard", seed) for seed in (1, 2, 3, 4, 5)]
    assert draws == [random_cell(protocol, "sst2", "standard", seed) for seed in (1, 2, 3, 4, 5)]
    assert all(cell in space for cell in draws) and len(set(draws)) > 1
    budgets = {v: dict(variant_spec(v, "sst2", "standard", 1, protocol, recipe).settings).get("search_budget")
               for v in ("auto", "auto-ratio", "auto-lr")}  # fmt: skip
    assert budgets == {"auto": 186, "auto-ratio": 40, "auto-lr": 40}  # 30 cells need 93 × 2 steps; 10 % of 400
    auto = dict(variant_spec("auto", "sst2", "standard", 1, protocol, recipe).settings)
    settings = SearchSettings(**{k.removeprefix("search_"): v for k, v in auto.items()})
    assert settings.plan(len(space), recipe.steps)[0].steps == 2  # the shortest plan the search accepts
    lr_only, rows = (variant_spec(v, "sst2", "standard", 7, protocol, recipe) for v in ("auto-lr", "auto-lr-rows"))
    assert dict(lr_only.settings)["search_seed"] == 0  # one draw of rows for every seed
    assert rows.settings == (*lr_only.settings[:-1], ("search_seed", 7))  # the same search, its rows drawn per seed
    assert (rows.lr, rows.ratio, rows.run_id) == ("auto", DEFAULT_RATIO, "sst2-standard-auto-lr-rows-seed7")
    with pytest.raises(ValueError, match="unknown auto variant 'grid'"):
        variant_spec("grid", "sst2", "standard", 1, protocol, recipe)


def test_records_match_their_recipe_across_added_settings() -> None:
    """A record matches the recipe it was made with, also after a setting was added to `Recipe` (at its default);
    a changed setting, or an added one away from its default, does not match."""
    from dataclasses import asdict

    from benchmarks.evidence.runner import same_recipe
    from benchmarks.evidence.tasks import RECIPES

    recipe = RECIPES["sst2"]
    older = {k: v for k, v in json.loads(json.dumps(asdict(recipe))).items() if k not in ("pilot_lr", "pilot_ratio")}
    assert same_recipe(older, recipe)
    assert not same_recipe(older | {"steps": 200}, recipe)
    assert not same_recipe(older, replace(recipe, pilot_lr=1e-3))


def test_pilot_cell_is_the_recipes_when_set(tmp_path: Path) -> None:
    """CoLA's pilot runs at its own cell (η_A 2.15e-4, λ 16); SST-2's at the grid's middle with the protocol's λ."""
    from benchmarks.evidence.runner import Runner
    from benchmarks.evidence.tasks import RECIPES

    runner = Runner(Paths(tmp_path, tmp_path, tmp_path, "unused"), RECIPES, Protocol(), ["standard"], None)
    cola, sst2 = runner.pilot_spec("cola", "standard"), runner.pilot_spec("sst2", "standard")
    assert (cola.lr, cola.ratio) == (2.15e-4, 16.0)
    assert (sst2.lr, sst2.ratio) == (1e-3, 8.0)


def test_more_seeds_extend_a_folders_protocol_and_anything_else_is_refused(tmp_path: Path) -> None:
    """A folder made with seeds 1..5 accepts a command with seeds 1..10 (and records it), still accepts 1..5,
    and refuses another η_A grid."""
    from benchmarks.evidence.runner import Runner

    def runner(protocol: Protocol) -> Runner:
        return Runner(Paths(tmp_path, tmp_path, tmp_path, "unused"), RECIPES, protocol, ["standard"], None)

    runner(Protocol()).check_protocol()
    runner(Protocol(seeds=tuple(range(1, 11)))).check_protocol()
    assert json.loads((tmp_path / "protocol.json").read_text())["seeds"] == list(range(1, 11))
    runner(Protocol()).check_protocol()  # fewer seeds: a prefix of the record, which stays
    assert json.loads((tmp_path / "protocol.json").read_text())["seeds"] == list(range(1, 11))
    with pytest.raises(SystemExit, match="records another protocol"):
        runner(Protocol(lrs=(1e-3,))).check_protocol()


def test_selection_heatmap_draws_diverged_and_missing_cells(tmp_path: Path) -> None:
    """The selection heatmap is drawn with a diverged cell (its colour scale capped at twice the best), with a cell
    not yet run, and before any cell has a rung loss."""
    from benchmarks.evidence.figures import plot_selection

    def cell(lr: float, ratio: float, rung: float | None, full: float | None = None) -> dict:
        return {"lr": lr, "ratio": ratio, "rung_loss": rung, "full_loss": full}

    arms = {"lora": {"grid": [cell(1e-3, 1.0, 1.2, 1.0), cell(2e-3, 1.0, 22.4)], "choice": {"lr": 1e-3, "ratio": 1.0}},
            "loraplus": {"grid": [cell(1e-3, 4.0, None)], "choice": None}}  # fmt: skip
    plot_selection("t", arms, tmp_path / "a.png")
    plot_selection("t", {"lora": {"grid": [cell(1e-3, 1.0, None)], "choice": None}}, tmp_path / "b.png")
    assert (tmp_path / "a.png").stat().st_size > 1000 and (tmp_path / "b.png").stat().st_size > 1000


def test_the_evidence_pages_quote_the_committed_summary() -> None:
    """The SST-2 numbers the docs quote (choice, paired difference, accuracy, crossing step, early-rung losses)
    are those of benchmarks/results/evidence/summary.json, as `--phases report` writes it."""
    repo = Path(__file__).resolve().parents[1]
    sst2 = json.loads((repo / "benchmarks/results/evidence/summary.json").read_text())["sst2-standard"]
    pages = [(repo / "docs/benchmarks" / name).read_text().replace("−", "-") for name in ("evidence.md", "index.md")]
    loss = sst2["paired"]["loss"]
    quoted = f"{loss['mean']:.4f} ± {loss['half_width']:.4f}"
    assert all(quoted in page for page in pages), quoted
    arms = sst2["arms"]
    assert (arms["lora"]["choice"], arms["loraplus"]["choice"]) == ({"lr": 0.00215, "ratio": 1.0},
                                                                    {"lr": 0.00215, "ratio": 4.0})  # fmt: skip
    accuracy = {a: arms[a]["seeds"]["final"]["accuracy"]["mean"] for a in arms}
    assert f"dev accuracy is {accuracy['loraplus']:.3f} against {accuracy['lora']:.3f}" in pages[0]
    crossing = sst2["steps_to_target"]["loss"]["loraplus"]
    assert f"step {crossing['steps']:.0f} of 400 ({crossing['speedup']:.2f}×)" in pages[0]
    rung = {(c["lr"], c["ratio"]): c["rung_loss"] for a in arms.values() for c in a["grid"]}
    assert f"0.650 and LoRA+ with\nλ = 32 is at {rung[(0.000464, 32.0)]:.3f}" in pages[0]
    assert f"{rung[(0.000215, 1.0)]:.3f} against {rung[(0.000215, 32.0)]:.3f}" in pages[0]


@pytest.mark.parametrize("page", ["README.md", "docs/benchmarks/index.md"])
def test_the_headline_tables_quote_the_committed_summary(page: str) -> None:
    """Every task's headline row (each arm's mean ± half-width, LoRA+'s λ, the paired difference) is what
    benchmarks/results/evidence/summary.json holds, rounded as printed."""
    repo = Path(__file__).resolve().parents[1]
    summary = json.loads((repo / "benchmarks/results/evidence/summary.json").read_text())
    rows = [line for line in (repo / page).read_text().replace("−", "-").splitlines() if line.startswith("| ")]
    grids = {key: results for key, results in summary.items() if results["runs"]}  # STS-B has no grid
    assert sorted(grids) == ["cola-standard", "instruct-standard", "mrpc-standard", "sst2-standard"]
    for key, results in grids.items():
        arms, paired = results["arms"], results["paired"]["loss"]
        losses = [arms[a]["seeds"]["final"]["loss"] for a in ("lora", "loraplus")]
        cells = [f"{loss['mean']:.3f} ± {loss['half_width']:.3f}" for loss in losses]
        cells[1] += f" (λ = {arms['loraplus']['choice']['ratio']:g})"
        cells.append(f"{paired['mean']:+.4f} ± {paired['half_width']:.4f}")
        assert any(all(f"| {c} |" in row for c in cells) for row in rows), (page, key, cells)


def test_auto_targets_and_the_short_horizon_bias_from_hand_made_records() -> None:
    """The zero-tuning targets read the paired intervals (best cell: includes 0 or below; random: below 0; extra
    steps at most 10 %), and the η_A the trials ranked best is placed in ladder steps from the best grid cell's,
    also where the search fell back to the defaults (seed 1: trials' best 4.64e-3, trained with 1e-3)."""

    def record(variant: str, seed: int, loss: float, lr: float, extra: int) -> dict:
        search = {"chosen": {"lr": lr, "ratio": 4.0}, "extra_steps": extra} if variant == "auto" else None
        if search and seed == 1:
            search |= {"chosen": {"lr": 1e-3, "ratio": 4.0}, "best_cell": {"lr": lr, "ratio": 4.0, "score": 0.7}}
        spec = {"variant": variant, "seed": seed, "lr": lr, "ratio": 4.0}
        return {"spec": spec, "final": {"loss": loss}, "search": search}

    auto = [record("auto", s, 0.40 + 0.001 * s, 4.64e-3 if s == 1 else 2.15e-3, 40) for s in (1, 2, 3)]
    rand = [record("random", s, 0.60 + 0.05 * s, 1e-3, 0) for s in (1, 2, 3)]
    best = [record("", s, 0.40 + 0.0012 * s, 2.15e-3, 0) for s in (1, 2, 3)]
    summary = summarise_auto(auto + rand, best, ["loss"], steps=400, reference_lr={"auto": 2.15e-3})
    assert summary["auto"]["targets"] == {"as_good_as_best_cell": True, "beats_random": True, "within_budget": True}
    assert [c["lr_steps_from_best"] for c in summary["auto"]["chosen"]] == [1, 0, 0]
    text = "\n".join(markdown_auto(summary, None))
    assert "| 0.001, 4 (best trial 0.00464, 4); 0.00215, 4; 0.00215, 4 |" in text
    assert (
        "- auto − random: loss -0.2980 ± 0.1217 (n = 3; loss lower on 3 seeds, higher on 0, signed-rank p 0.25)" in text
    )
    assert (
        summary["random"]["targets"]["beats_random"] is None
        and "lr_steps_from_best" not in summary["random"]["chosen"][0]
    )
    worse = [record("auto", s, 0.45 + 0.001 * s, 2.15e-3, 60) for s in (1, 2, 3)]
    assert summarise_auto(worse, best, ["loss"], steps=400)["auto"]["targets"] == {
        "as_good_as_best_cell": False, "beats_random": None, "within_budget": False}  # fmt: skip


def test_a_searched_lr_is_measured_against_the_grids_best_at_the_lambda_it_searched_at() -> None:
    """``auto`` is placed against the best cell's η_A; ``auto-lr`` (λ fixed at the default) against the best η_A at
    N among the default λ's cells, here 1e-3 although plain LoRA's 2.15e-3 is the best cell; without a default-λ
    cell run to N it falls back to the best cell's."""
    lora = ArmSearch("lora", [1e-3, 2.15e-3], (1.0,), full_loss={(2.15e-3, 1.0): 0.45, (1e-3, 1.0): 0.47})
    plus = ArmSearch("loraplus", [1e-3, 2.15e-3], (DEFAULT_RATIO, 8.0),
                     full_loss={(1e-3, DEFAULT_RATIO): 0.46, (2.15e-3, 8.0): 0.50})  # fmt: skip
    lora.choice, plus.choice = (2.15e-3, 1.0), (1e-3, DEFAULT_RATIO)
    assert reference_lrs({"lora": lora, "loraplus": plus}) == {"auto": 2.15e-3, "auto-lr": 1e-3, "auto-lr-rows": 1e-3}
    del plus.full_loss[(1e-3, DEFAULT_RATIO)]
    plus.choice = (2.15e-3, 8.0)
    assert reference_lrs({"lora": lora, "loraplus": plus}) == {"auto": 2.15e-3, "auto-lr": 2.15e-3,
                                                               "auto-lr-rows": 2.15e-3}  # fmt: skip
    plus.choice = None
    assert reference_lrs({"lora": lora, "loraplus": plus}) is None


def test_an_auto_record_made_with_other_settings_is_refused(tmp_path: Path) -> None:
    """An auto variant's run id does not name its settings: a record made with other defaults is refused (not
    silently reused), one made with the current settings is read back."""
    from dataclasses import asdict

    from benchmarks.evidence.runner import Runner

    recipe = RECIPES["sst2"]
    runner = Runner(Paths(tmp_path, tmp_path, tmp_path, "unused"), RECIPES, Protocol(), ["standard"], None)
    spec = variant_spec("default", "sst2", "standard", 1, Protocol(), recipe)
    record = json.loads(json.dumps({"spec": asdict(spec), "recipe": asdict(recipe), "final": {}}))
    path = runner.paths.record(spec)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    assert runner.run(spec) == record
    path.write_text(json.dumps(record | {"spec": record["spec"] | {"lr": 2e-4}}))  # made with older defaults
    with pytest.raises(SystemExit, match="move the record out of `runs/`"):
        runner.run(spec)


def test_a_claimed_run_is_skipped_while_its_process_lives_and_taken_over_when_it_died(tmp_path: Path) -> None:
    """Two processes on one task share the work: a run claimed by a live process is skipped (None), one whose
    claimant died is trained here; a finished run's record is read without claiming."""
    import os
    import socket
    from dataclasses import asdict

    from benchmarks.evidence.runner import Runner, claim, release

    recipe = RECIPES["sst2"]
    runner = Runner(Paths(tmp_path, tmp_path, tmp_path, "unused"), RECIPES, Protocol(), ["standard"], None)
    spec = variant_spec("default", "sst2", "standard", 1, Protocol(), recipe)
    path = runner.paths.record(spec)
    claim_file = path.with_name(path.name + ".claim")
    path.parent.mkdir(parents=True)
    claim_file.write_text(f"{socket.gethostname()} {os.getppid()}")  # a live process
    assert runner.run(spec) is None  # held by a live process: skipped, nothing trained
    assert not claim(path)
    dead = next(pid for pid in range(4_000_000, 3_000_000, -1) if not Path(f"/proc/{pid}").exists())
    claim_file.write_text(f"{socket.gethostname()} {dead}")
    assert claim(path)  # its claimant is gone: taken over
    release(path)
    assert not path.with_name(path.name + ".claim").exists()
    record = json.loads(json.dumps({"spec": asdict(spec), "recipe": asdict(recipe), "final": {}}))
    path.write_text(json.dumps(record))
    assert runner.run(spec) == record


def test_every_committed_result_is_quoted_as_summary_json_has_it() -> None:
    """Every task's paired LoRA+ − LoRA dev-loss interval (in the evidence page, the ratio guide, the benchmarks
    index and the README), every zero-tuning variant's interval against the best grid cell (but the random pick's)
    and ``lr: auto``'s against the random pick (both rows: the default and drawn per seed; in the evidence page and
    the ratio guide), are quoted as
    summary.json has them, so the prose cannot drift from the records when the report is regenerated."""
    repo = Path(__file__).resolve().parents[1]
    summary = json.loads((repo / "benchmarks/results/evidence/summary.json").read_text())
    evidence, guide, index, readme = (
        (repo / name).read_text().replace("−", "-")
        for name in ("docs/benchmarks/evidence.md", "docs/guides/choosing-ratio.md", "docs/benchmarks/index.md",
                     "README.md")
    )  # fmt: skip

    def quoted(diff: dict) -> str:
        return f"{abs(diff['mean']):.4f} ± {diff['half_width']:.4f}"

    checked = 0
    for key, task in summary.items():
        if task.get("paired", {}).get("loss", {}).get("n", 0) >= 5:
            assert all(quoted(task["paired"]["loss"]) in page for page in (evidence, guide, index, readme)), key
            checked += 1
        for variant, info in task.get("auto", {}).items():
            diff = info["paired"].get("best_cell", {}).get("loss") if variant != "random" else None
            if diff and diff["n"] >= 4:
                assert quoted(diff) in evidence and quoted(diff) in guide, (key, variant, quoted(diff))
                checked += 1
            against_random = info["paired"].get("random", {}).get("loss")
            if variant in ("auto-lr", "auto-lr-rows") and against_random and against_random["n"] >= 5:
                assert quoted(against_random) in evidence and quoted(against_random) in guide, (key, "random")
                checked += 1
    assert checked >= 2


def test_bad_options_are_refused_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An unknown auto variant (or task) is refused with exit status 2, naming the option and the choices."""
    assert main(["--out", str(tmp_path), "--phases", "report", "--variants", "default,best"]) == 2
    err = capsys.readouterr().err
    assert "`--variants` holds ['best']" in err and "'auto-ratio'" in err
    assert not (tmp_path / "runs").exists()


def test_the_defaults_are_the_evidence_pages_pair_and_the_quickstarts() -> None:
    """The package's default (η_A, λ) is the pair the evidence page justifies and the quickstart runs, and the
    page's selection losses for it are those of the committed full-length selection runs of that cell."""
    import yaml

    repo = Path(__file__).resolve().parents[1]
    page = (repo / "docs/benchmarks/evidence.md").read_text()
    assert f"**η<sub>A</sub> = {DEFAULT_LR:.0e} with λ = {DEFAULT_RATIO:g}**".replace("e-0", "e-") in page
    quickstart = yaml.safe_load((repo / "configs/quickstart.yaml").read_text())["model"]
    assert (float(quickstart["lr"]), float(quickstart["ratio"])) == (DEFAULT_LR, DEFAULT_RATIO)
    runs = repo / "benchmarks/results/evidence/runs"
    for task, label in (("sst2", "SST-2"), ("mrpc", "MRPC"), ("cola", "CoLA"), ("instruct", "instructions (SmolLM2)")):
        spec = RunSpec(task, "standard", DEFAULT_LR, DEFAULT_RATIO, 0, "full")
        loss = json.loads((runs / task / "full" / f"{spec.run_id}.json").read_text())["final"]["loss"]
        assert f"| {label} | {loss:.3f}" in page, (task, loss)


def test_budgets_phase_searches_each_seed_again_with_longer_trials_and_reads_outcomes_from_the_runs(
    tmp_path: Path, tiny_bert_dir: Path, glue_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """``--phases budgets`` after the smoke recipe's ``auto-lr-rows`` and ``default`` runs: each seed is searched
    again, without training, with its budget of steps doubled (the record under ``budgets/``; the smoke grid's one
    η_A leaves nothing to halve, so the rungs' lengths are the engine tests' concern), a rerun skips what exists,
    and ``budgets/report.md`` shows per seed each budget's choice with the dev loss of the run that trained that
    cell on that seed (the defaults' run where the choice is the default cell); a seed without an ``auto-lr-rows``
    record is not searched, and a factor of 0 is refused. ``--phases outcomes`` trains, as an outcome run, a choice
    whose run is gone, to the same dev loss, and only once."""
    out = tmp_path / "out"
    argv = ["--out", str(out), "--smoke", "--tasks", "sst2", "--model", str(tiny_bert_dir), "--glue-dir",
            str(glue_dir), "--variants", "auto-lr-rows,default"]  # fmt: skip
    assert main([*argv, "--phases", "auto"]) == 0
    assert main([*argv, "--phases", "budgets", "--budget-factors", "2"]) == 0
    folder = out / "runs" / "sst2" / "auto"
    for seed in (1, 2):
        base = json.loads((folder / f"sst2-standard-auto-lr-rows-seed{seed}.json").read_text())
        scaled = json.loads((out / "budgets" / "sst2" / f"sst2-standard-auto-lr-rows-budgetx2-seed{seed}.json")
                            .read_text())  # fmt: skip
        assert scaled["search"]["budget_steps"] == 2 * base["search"]["budget_steps"]
        assert dict(scaled["spec"]["settings"])["search_seed"] == seed
    capsys.readouterr()
    assert main([*argv, "--phases", "budgets", "--budget-factors", "2"]) == 0
    assert "start budget search" not in capsys.readouterr().out
    runs = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    losses = outcomes(runs)
    default = json.loads((folder / "sst2-standard-default-seed1.json").read_text())
    assert losses[(1, DEFAULT_LR, DEFAULT_RATIO)] == pytest.approx(default["final"]["loss"], rel=1e-6)
    report = (out / "budgets" / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and all(row.count("→") == 2 for row in rows)
    (folder / "sst2-standard-auto-lr-rows-seed2.json").unlink()  # a seed without its own search is not searched
    scaled_two = out / "budgets" / "sst2" / "sst2-standard-auto-lr-rows-budgetx2-seed2.json"
    scaled_two.unlink()
    assert main([*argv, "--phases", "budgets", "--budget-factors", "2"]) == 0
    assert not scaled_two.exists()
    assert main([*argv, "--phases", "budgets", "--budget-factors", "0,2"]) == 2
    searched = folder / "sst2-standard-auto-lr-rows-seed1.json"  # the one run of seed 1's choice (the grid's η_A)
    gone = json.loads(searched.read_text())
    lr = gone["search"]["chosen"]["lr"]
    searched.unlink()
    assert main([*argv, "--phases", "outcomes"]) == 0  # trains that cell as an outcome run, as the run gone did
    trained = out / "runs" / "sst2" / "outcome" / f"sst2-standard-lr{lr:.3g}-ratio{DEFAULT_RATIO:g}-seed1.json"
    assert json.loads(trained.read_text())["final"]["loss"] == pytest.approx(gone["final"]["loss"], rel=1e-6)
    assert "start outcome" in capsys.readouterr().out
    assert main([*argv, "--phases", "outcomes"]) == 0
    assert "start outcome" not in capsys.readouterr().out  # every choice has its run now
    assert main([*argv, "--phases", "report"]) == 0  # the grid's run count leaves that outcome run out
    assert json.loads((out / "summary.json").read_text())["sst2-standard"]["outcome_runs"]["runs"] == 1
    assert "- 1 outcome runs: cells a budgets search or the step-down rule chose" in (out / "report.md").read_text()


def test_scaled_budget_names_the_factor_and_refuses_a_budget_that_is_not_steps() -> None:
    """The scaled spec keeps every other setting, multiplies the steps and gets its own run id."""
    spec = RunSpec("sst2", "standard", "auto", 4.0, 3, "auto", "auto-lr-rows", (("search_budget", 40), ("x", 1)))
    scaled = scaled_budget(spec, 2.5)
    assert scaled.settings == (("search_budget", 100), ("x", 1))
    assert scaled.run_id == "sst2-standard-auto-lr-rows-budgetx2.5-seed3"
    with pytest.raises(ValueError, match="search_budget in steps"):
        scaled_budget(replace(spec, settings=(("search_budget", 0.1),)), 2)


def test_budget_differences_pair_each_budgets_choices_with_the_best_cell_and_random_by_seed() -> None:
    """Each budget's choices are paired by seed with the runs of the best cell (any run that trained it), of
    the random pick and of the defaults; a choice without a run is counted, not paired."""

    def run(seed: int, lr: float, loss: float, variant: str | None = None) -> dict:
        spec = {"seed": seed, "kind": "auto" if variant else "seed", "lr": lr, "ratio": 4.0, "variant": variant}
        return {"spec": spec, "final": {"loss": loss}}

    def searched(seed: int, lr: float, steps: int) -> dict:
        search = {"chosen": {"lr": lr, "ratio": 4.0}, "extra_steps": steps, "total_steps": 100}
        return {"spec": {"seed": seed}, "search": search}

    runs = [run(s, 1e-3, 0.5 + s / 100) for s in (1, 2, 3)] + [run(s, 2e-3, 0.6) for s in (1, 2)]
    runs += [run(s, 4e-3, 0.9, "random") for s in (1, 2, 3)]
    base = [searched(s, 2e-3, 10) for s in (1, 2)] + [searched(3, 8e-3, 10)]
    lines = budget_differences(base, {2.0: [searched(s, 1e-3, 20) for s in (1, 2, 3)]}, runs, (1e-3, 4.0))
    assert lines[0].startswith("- budget ×1 (10.0% extra steps): 2 of 3 choices have a run; − best cell 0.0850 ± ")
    assert "(n = 2; lower on 0, higher on 2" in lines[0] and "− random -0.3000 ± 0.0000 (n = 2" in lines[0]
    assert "− defaults 0.0850 ± " in lines[0]  # the default cell (1e-3, λ 4) is this test's best cell too
    assert lines[1].startswith("- budget ×2 (20.0% extra steps): 3 of 3 choices have a run; − best cell 0.0000")


def test_the_step_down_rule_is_replayed_on_keep_records_from_the_runs_of_the_cells_it_picks() -> None:
    """A ``keep`` record whose best cell is the largest η_A searched is read as its next value below (a fallback,
    or a best cell inside the values, as itself); the changes are listed with each run's loss difference, and the
    paired differences take the stepped-down cells' runs."""
    lrs = (1e-3, 2e-3, 4e-3)

    def searched(seed: int, best: float, fell_back: bool = False) -> dict:
        chosen = 1e-3 if fell_back else best
        search = {"rungs": [{"cells": 3, "steps": 2}], "trials": [{"lr": lr, "ratio": 4.0} for lr in lrs],
                  "best_cell": {"lr": best, "ratio": 4.0}, "chosen": {"lr": chosen, "ratio": 4.0},
                  "fell_back": fell_back, "extra_steps": 10, "total_steps": 100}  # fmt: skip
        return {"spec": {"seed": seed}, "search": search}

    def run(seed: int, lr: float, loss: float, variant: str | None = None) -> dict:
        spec = {"seed": seed, "kind": "auto" if variant else "seed", "lr": lr, "ratio": 4.0, "variant": variant}
        return {"spec": spec, "final": {"loss": loss}}

    base = [searched(1, 4e-3), searched(2, 2e-3), searched(3, 4e-3, fell_back=True), searched(4, 4e-3)]
    assert [stepped_cell(r) for r in base] == [(2e-3, 4.0), (2e-3, 4.0), (1e-3, 4.0), (2e-3, 4.0)]
    assert stepped_cell({"spec": {"lr": 1e-3, "ratio": 8.0}, "search": None}) == (1e-3, 8.0)  # a fixed run
    runs = [run(1, 4e-3, 0.6), run(1, 2e-3, 0.45), run(2, 2e-3, 0.5), run(3, 1e-3, 0.55), run(4, 4e-3, 0.7)]
    runs += [run(s, 1e-3, 0.9, "random") for s in (1, 2, 3, 4)]
    lines = step_down_changes(base, {}, runs)
    assert lines == ["- budget ×1: 2 of 4 choices stepped down: -0.1500 (seed 1), – (seed 4)"]
    paired = budget_differences(base, {}, runs, None, cell_of=stepped_cell)
    assert paired[0].startswith("- budget ×1 (10.0% extra steps): 3 of 4 choices have a run; − random -0.4000")


def test_last_rung_moves_count_per_rate_and_budget_how_often_the_held_out_loss_rose() -> None:
    """Per η_A and budget: of the trials that reached a second rung, on how many the last rung raised the held-out
    loss, and the median change; a trial cut after its first rung, or one that diverged, is not counted."""

    def searched(*trials: tuple[float, list[float | None]]) -> dict:
        steps = {1: 2, 2: 4, 3: 8}
        return {"search": {"trials": [{"lr": lr, "steps": steps[len(sc)], "scores": sc} for lr, sc in trials]}}

    base = [searched((1e-3, [0.7]), (2e-3, [0.6, 0.5]), (4e-3, [0.5, 0.4])),
            searched((1e-3, [0.7, 0.65]), (2e-3, [0.6]), (4e-3, [0.5, None]))]  # fmt: skip
    longer = [searched((1e-3, [0.7, 0.6, 0.5]), (2e-3, [0.6, 0.5, 0.45]), (4e-3, [0.5, 0.3, 0.45]))]
    lines = last_rung_moves(base, {2.0: longer})
    assert lines[0] == "| η_A | budget ×1 (trials ≤ 4 steps) | budget ×2 (trials ≤ 8 steps) |"
    assert lines[2] == "| 0.001 | rose on 0 of 1, median -0.050 | rose on 0 of 1, median -0.100 |"
    assert lines[3] == "| 0.002 | rose on 0 of 1, median -0.100 | rose on 0 of 1, median -0.050 |"
    assert lines[4] == "| 0.004 | rose on 0 of 1, median -0.100 | rose on 1 of 1, median +0.150 |"


def test_a_budget_scaled_below_the_default_plan_gets_shorter_first_rungs() -> None:
    """Halving the causal task's 24 steps over 5 η_A values leaves 12, which 2-step first rungs cannot pay for:
    the scaled spec searches with ``search_min_steps=1`` (5 × 1, 3 × 2, 2 × 4 = 12 steps); a budget that pays for
    no rung at all is refused."""
    lrs = ("search_lrs", (2.15e-4, 4.64e-4, 1e-3, 2.15e-3, 4.64e-3))
    spec = RunSpec("instruct", "standard", "auto", 4.0, 1, "auto", "auto-lr-rows", (lrs, ("search_budget", 24)))
    assert scaled_budget(spec, 0.5).settings == (lrs, ("search_budget", 12), ("search_min_steps", 1))
    assert scaled_budget(spec, 2).settings == (lrs, ("search_budget", 48))
    with pytest.raises(ValueError, match="a budget of 2 steps pays for no rung of 5 cells"):
        scaled_budget(spec, 0.1)


def test_rows_phase_searches_one_run_again_on_other_rows_without_training(
    tmp_path: Path, tiny_bert_dir: Path, glue_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """``--phases rows`` after the smoke recipe's ``auto-ratio`` runs: seed 1's search is made again, without
    training, once per ``--rows-seeds`` value. With ``search_seed`` 0, the rows of the ``auto`` phase's record,
    it gives that record's trials, scores and choice exactly; with another it trains and scores on other rows,
    so its scores differ. A rerun skips what exists; ``rows/report.md`` holds the record's row and both searches;
    a variant that searches nothing, a run seed outside ``--seeds`` and an unreadable seed list are refused."""
    out = tmp_path / "out"
    argv = ["--out", str(out), "--smoke", "--tasks", "sst2", "--model", str(tiny_bert_dir), "--glue-dir",
            str(glue_dir), "--variants", "auto-ratio", "--seeds", "2"]  # fmt: skip
    assert main([*argv, "--phases", "auto"]) == 0
    assert main([*argv, "--phases", "rows", "--rows-variant", "auto-ratio", "--rows-seeds", "0,3"]) == 0
    stored = json.loads((out / "runs" / "sst2" / "auto" / "sst2-standard-auto-ratio-seed1.json").read_text())
    folder = out / "rows" / "sst2"
    same, other = (json.loads((folder / f"sst2-standard-auto-ratio-searchseed{k}-seed1.json").read_text())
                   for k in (0, 3))  # fmt: skip
    assert not list((out / "runs" / "sst2" / "auto").glob("*searchseed*"))  # nothing trained
    assert same["search"] == stored["search"]
    assert dict(other["spec"]["settings"])["search_seed"] == 3 and other["search"]["search_seed"] == 3
    scores = [t["scores"] for t in other["search"]["trials"]]
    assert scores != [t["scores"] for t in stored["search"]["trials"]]
    capsys.readouterr()
    assert main([*argv, "--phases", "rows", "--rows-variant", "auto-ratio", "--rows-seeds", "0,3"]) == 0
    assert "start rows search" not in capsys.readouterr().out
    report = (out / "rows" / "report.md").read_text()
    assert "## sst2: `auto-ratio`, seed 1, standard init" in report
    table = [line for line in report.splitlines() if line.startswith(("| 0", "| 3"))]
    assert [line.split(" | ")[0] for line in table] == ["| 0 (`auto` phase)", "| 0", "| 3"]
    assert "- search_seed 0, 3: trains " in report
    assert main([*argv, "--phases", "rows", "--rows-variant", "default"]) == 2
    assert "`--rows-variant=default` searches nothing" in capsys.readouterr().err
    assert main([*argv, "--phases", "rows", "--rows-run-seed", "3"]) == 2
    assert "`--rows-run-seed=3` is not one of the seeds 1..2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv, "--phases", "rows", "--rows-seeds", "one"])


def test_with_rows_seed_names_the_seed_and_refuses_a_run_that_searches_nothing() -> None:
    """The spec keeps every other setting, replaces ``search_seed`` and gets its own run id."""
    spec = RunSpec("mrpc", "standard", "auto", 4.0, 1, "auto", "auto-lr", (("search_budget", 40), ("search_seed", 0)))
    moved = with_rows_seed(spec, 5)
    assert moved.settings == (("search_budget", 40), ("search_seed", 5))
    assert moved.run_id == "mrpc-standard-auto-lr-searchseed5-seed1"
    with pytest.raises(ValueError, match="a searched spec"):
        with_rows_seed(RunSpec("mrpc", "standard", 1e-3, 4.0, 1, "auto", "default"), 5)
    with pytest.raises(ValueError, match="a seed >= 0"):
        with_rows_seed(spec, -1)


def test_rows_table_and_counts_read_each_search_as_kept_and_as_stepped_down() -> None:
    """A best trial at the largest η_A trains one value below under ``step_down``; a fall-back trains the defaults'
    cell either way and is counted as one; λ is left out where every search fixed it."""
    lrs = (1e-3, 2e-3, 4e-3)

    def searched(rows_seed: int, best: float, fell_back: bool = False) -> dict:
        search = {"requested": {"lr": "auto", "ratio": 4.0}, "rungs": [{"cells": 3, "steps": 2}],
                  "trials": [{"lr": lr, "ratio": 4.0} for lr in lrs], "best_cell": {"lr": best, "ratio": 4.0,
                  "score": 0.5}, "chosen": {"lr": 1e-3 if fell_back else best, "ratio": 4.0},
                  "constant_score": 0.6, "fell_back": fell_back}  # fmt: skip
        return {"spec": {"seed": 1, "settings": [["search_seed", rows_seed]]}, "search": search}

    records = [searched(2, 4e-3), searched(1, 2e-3), searched(3, 4e-3, fell_back=True), searched(4, 4e-3)]
    assert choice_counts(records) == "0.004 ×2, 0.002 ×1, 0.001 ×1 (1 by falling back)"
    assert choice_counts(records, stepped_cell) == "0.002 ×3, 0.001 ×1 (1 by falling back)"
    table = rows_table(records[1:], reference=records[0])
    assert table[2] == "| 2 (`auto` phase) | 0.004 (0.5000) | 0.6000 | 0.004 | 0.002 |"
    assert table[3:5] == ["| 1 | 0.002 (0.5000) | 0.6000 | 0.002 | 0.002 |",
                          "| 3 | 0.004 (0.5000) | 0.6000 | 0.001 (fell back) | 0.001 |"]  # fmt: skip


def test_untrained_phase_scores_the_base_model_before_any_step(
    tmp_path: Path, tiny_llama_dir: Path, glue_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """``--phases untrained`` on the smoke causal task: a record with the selection and test files' scores, made
    before any step. With the standard init (B = 0) that is the base model's score: its token accuracy equals the
    share of the selection file's response tokens the plain transformers model (no adapters) predicts right, by
    hand. A rerun skips the record."""
    from transformers import AutoModelForCausalLM

    out = tmp_path / "out"
    argv = ["--out", str(out), "--smoke", "--tasks", "instruct", "--causal-model", str(tiny_llama_dir),
            "--glue-dir", str(glue_dir), "--phases", "untrained"]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "untrained" / "instruct-standard.json").read_text())
    assert set(record["scores"]) == {"selection", "test"}
    assert all(math.isfinite(s["loss"]) and 0 <= s["token_accuracy"] <= 1 for s in record["scores"].values())

    paths = Paths(out, out / "_ckpt", glue_dir, "unused", str(tiny_llama_dir))
    _, data = build_run(RunSpec("instruct", "standard", 1e-3, 4.0, 0, "pilot"), smoke_recipe("instruct"), paths)
    data.setup("validate")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    correct = tokens = 0
    with torch.no_grad():
        for batch in data.val_dataloader():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            predicted, labels = logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
            correct += int(((predicted == labels) & (labels != -100)).sum())
            tokens += int((labels != -100).sum())
    assert tokens > 0
    assert record["scores"]["selection"]["token_accuracy"] == pytest.approx(correct / tokens, rel=1e-6)
    capsys.readouterr()
    assert main(argv) == 0
    assert "untrained instruct" not in capsys.readouterr().out


def test_the_fall_back_bar_paragraph_quotes_the_records() -> None:
    """The choosing-ratio guide's case for a bar without a margin: SST-2's small leads that chose the grid's best
    (seeds 4 and 10 of ``auto-lr-rows``) and MRPC's seed 5, a lead won by chance, as the committed records have
    them."""
    repo = Path(__file__).resolve().parents[1]
    page = " ".join((repo / "docs/guides/choosing-ratio.md").read_text().split())

    def record(task: str, variant: str, seed: int) -> dict:
        path = repo / "benchmarks/results/evidence/runs" / task / "auto" / f"{task}-standard-{variant}-seed{seed}.json"
        return json.loads(path.read_text())

    leads = []
    for seed in (4, 10):
        search = record("sst2", "auto-lr-rows", seed)["search"]
        assert search["chosen"]["lr"] == 0.00215 and not search["fell_back"]
        leads.append(f"{search['constant_score'] - search['best_cell']['score']:.4f}")
    gain = record("sst2", "default", 4)["final"]["loss"] - record("sst2", "auto-lr-rows", 4)["final"]["loss"]
    assert f"by only {leads[0]} and {leads[1]}" in page and f"seed 4's run ended {gain:.4f} below" in page
    mrpc = record("mrpc", "auto-lr", 5)
    loss = mrpc["final"]["loss"] - record("mrpc", "default", 5)["final"]["loss"]
    assert mrpc["search"]["chosen"]["lr"] == 0.00215
    assert f"MRPC's seed 5 (`search_seed: 0`) trained 2.15e-3 and ended {loss:.4f} above" in page


def test_the_untrained_floor_the_pages_quote_is_the_committed_record() -> None:
    """The evidence page's untrained SmolLM2 token accuracy on the selection file (the causal arm's floor) is the
    ``untrained`` phase's record, and the recipe's learning threshold clears it."""
    repo = Path(__file__).resolve().parents[1]
    record = json.loads((repo / "benchmarks/results/evidence/untrained/instruct-standard.json").read_text())
    accuracy = record["scores"]["selection"]["token_accuracy"]
    page = " ".join((repo / "docs/benchmarks/evidence.md").read_text().split())
    assert f"the untrained model gets {accuracy:.3f} of the selection file's response tokens" in page
    assert RECIPES["instruct"].learn_threshold > accuracy


def test_the_guides_rows_sentence_is_the_rows_records() -> None:
    """The choosing-ratio guide's "searched again on 8 other draws" counts are those of the committed ``rows``
    records of each task (seed 1, ``search_seed`` 1–8), as searched and, for SST-2, under ``step_down``."""
    repo = Path(__file__).resolve().parents[1]
    guide = " ".join((repo / "docs/guides/choosing-ratio.md").read_text().split())
    names = {"0.00464": "4.64e-3", "0.00215": "2.15e-3", "0.001": "1e-3", "0.000464": "4.64e-4", "0.000215": "2.15e-4"}

    def as_guide(counts: str) -> str:
        return ", ".join(f"{names[part.split(' ', 1)[0]]} {part.split(' ', 1)[1]}" for part in counts.split(", "))

    for task, label in (("sst2", "SST-2"), ("mrpc", "MRPC"), ("cola", "CoLA"), ("instruct", "the causal task")):
        records = read_records(repo / "benchmarks/results/evidence/rows" / task)
        assert sorted(rows_seed_of(r) for r in records) == list(range(1, 9)), task
        assert f"{label} {as_guide(choice_counts(records))}" in guide, task
    sst2 = read_records(repo / "benchmarks/results/evidence/rows/sst2")
    assert f"the default `step_down` trains as {as_guide(choice_counts(sst2, stepped_cell))}" in guide


def test_outcomes_train_the_step_down_cell_of_a_top_edge_choice_on_the_regression_task(
    tmp_path: Path, tiny_bert_dir: Path, glue_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """The STS-B recipe (regression: one output, MSE, Pearson) runs the smoke ``auto`` phase end to end; where an
    ``auto-lr-rows`` search's best cell is the largest η_A it searched, ``--phases outcomes`` trains the cell
    ``search_edge: step_down`` picks instead (one value below), once, and ``budgets/report.md`` (no ``budgets``
    search made) lists the change with the loss difference of the two runs; the report has no grid table."""
    if not (glue_dir / "STS-B" / "train.tsv").exists():
        pytest.skip(f"STS-B files not found under {glue_dir}")
    out = tmp_path / "out"
    argv = ["--out", str(out), "--smoke", "--tasks", "stsb", "--model", str(tiny_bert_dir), "--glue-dir",
            str(glue_dir), "--variants", "auto-lr-rows,default"]  # fmt: skip
    assert main([*argv, "--phases", "auto"]) == 0
    folder = out / "runs" / "stsb" / "auto"
    record_path = folder / "stsb-standard-auto-lr-rows-seed1.json"
    record = json.loads(record_path.read_text())
    assert set(record["final"]) >= {"loss", "pearson", "spearman"} and record["recipe"]["task"] == "stsb"
    chosen = record["search"]["chosen"]["lr"]  # the smoke grid has one η_A: edit in two smaller ones (an end
    below = ladder_lr(ladder_step(chosen) - 2)  # needs 3 values), neither the default η_A (the `default` run's)
    search = record["search"]
    search["trials"] = [{**search["trials"][0], "lr": ladder_lr(ladder_step(chosen) - k)} for k in (3, 2, 0)]
    search["best_cell"], search["fell_back"] = {"lr": chosen, "ratio": DEFAULT_RATIO}, False
    search["rungs"] = [{"cells": 3, "steps": 1}]
    record_path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main([*argv, "--phases", "outcomes"]) == 0
    trained = out / "runs" / "stsb" / "outcome" / f"stsb-standard-lr{below:.3g}-ratio{DEFAULT_RATIO:g}-seed1.json"
    stepped = json.loads(trained.read_text())
    assert (stepped["spec"]["lr"], stepped["spec"]["seed"]) == (below, 1)
    assert capsys.readouterr().out.count("start outcome") == 1  # seed 2's choice is not on an edge
    assert main([*argv, "--phases", "outcomes"]) == 0
    assert "start outcome" not in capsys.readouterr().out
    report = (out / "budgets" / "report.md").read_text()
    difference = stepped["final"]["loss"] - record["final"]["loss"]
    assert f"- budget ×1: 1 of 2 choices stepped down: {difference:+.4f} (seed 1)" in report
    assert main([*argv, "--phases", "report"]) == 0  # a task without a grid: its zero-tuning runs only
    text = (out / "report.md").read_text()
    assert "No grid: this task has no selection or seed runs" in text and "| auto-lr-rows | 2 |" in text
    assert not (out / "figures" / "selection_stsb-standard.png").exists()


def test_the_head_bias_task_is_sts_b_with_its_head_started_at_the_label_mean(
    tmp_path: Path, tiny_bert_dir: Path, glue_dir: Path
) -> None:
    """``stsb-mean`` is the STS-B recipe but for ``head_bias: label_mean``: it trains on STS-B's rows, keeps its
    records in its own folder (so no outcome of one counts for the other), and its run differs from the STS-B run
    of the same seed from the first evaluation on; ``label_mean`` is refused on a task without a regression head."""
    if not (glue_dir / "STS-B" / "train.tsv").exists():
        pytest.skip(f"STS-B files not found under {glue_dir}")
    assert replace(RECIPES["stsb"], head_bias="label_mean") == RECIPES["stsb-mean"]
    assert smoke_recipe("stsb-mean").task == "stsb" and smoke_recipe("stsb-mean").problems() == []
    assert replace(RECIPES["sst2"], head_bias="label_mean").problems() == [
        "sst2: head_bias 'label_mean' starts a regression head; only stsb has one."
    ]
    out, finals = tmp_path / "out", {}
    for task in ("stsb", "stsb-mean"):
        argv = ["--out", str(out), "--smoke", "--tasks", task, "--model", str(tiny_bert_dir), "--glue-dir",
                str(glue_dir), "--variants", "default", "--seeds", "2", "--phases", "auto"]  # fmt: skip
        assert main(argv) == 0
        record = json.loads((out / "runs" / task / "auto" / f"{task}-standard-default-seed1.json").read_text())
        assert record["recipe"]["task"] == "stsb" and record["recipe"]["head_bias"] == RECIPES[task].head_bias
        finals[task] = [e["loss"] for e in record["evals"]]
    assert all(a != b for a, b in zip(finals["stsb"], finals["stsb-mean"], strict=True))


def test_the_sts_b_paragraphs_are_the_records() -> None:
    """The evidence page's and the guide's STS-B numbers are those of the committed records: every default-budget
    search fell back (best trials and the mean's scores as quoted), the defaults' dev loss and correlation over the
    5 seeds, seed 1's run equal to the ``default`` variant's at every evaluation, the untrained MSE, and the
    four-times-budget searches (4 fell back, seed 1's choice and its outcome run)."""
    repo = Path(__file__).resolve().parents[1]
    results = repo / "benchmarks/results/evidence"
    evidence = " ".join((repo / "docs/benchmarks/evidence.md").read_text().split())
    guide = " ".join((repo / "docs/guides/choosing-ratio.md").read_text().split())
    runs = read_records(results / "runs/stsb")
    searched = sorted((r for r in runs if r["spec"].get("variant") == "auto-lr-rows"), key=lambda r: r["spec"]["seed"])
    assert [r["spec"]["seed"] for r in searched] == [1, 2, 3, 4, 5] and all(r["search"]["fell_back"] for r in searched)
    best = [r["search"]["best_cell"]["score"] for r in searched]
    prior = [r["search"]["constant_score"] for r in searched]
    quoted = f"scored {min(best):.2f}–{max(best):.2f}"
    assert f"{quoted} on its held-out rows against {min(prior):.2f}–{max(prior):.2f}" in evidence
    assert f"{quoted} against {min(prior):.2f}–{max(prior):.2f}" in guide
    lrs = [r["search"]["best_cell"]["lr"] for r in searched]
    assert (lrs.count(0.00464), lrs.count(0.00215)) == (4, 1) and "4.64e-3 on 4 seeds, 2.15e-3 on 1)" in evidence
    loss = t_interval([r["final"]["loss"] for r in searched])
    pearson = t_interval([r["final"]["pearson"] for r in searched])
    assert f"dev loss {loss['mean']:.3f} ± {loss['half_width']:.3f}" in evidence
    assert f"Pearson correlation {pearson['mean']:.3f} ± {pearson['half_width']:.3f}" in evidence
    default = json.loads((results / "runs/stsb/auto/stsb-standard-default-seed1.json").read_text())
    assert default["evals"] == searched[0]["evals"]
    untrained = json.loads((results / "untrained/stsb-standard.json").read_text())["scores"]
    assert f"{untrained['selection']['loss']:.2f} on the selection split and {untrained['dev']['loss']:.2f}" in evidence
    scaled = sorted(read_records(results / "budgets/stsb"), key=lambda r: r["spec"]["seed"])
    kept = [r for r in scaled if not r["search"]["fell_back"]]
    assert len(scaled) == 5 and [r["spec"]["seed"] for r in kept] == [1]
    assert f"four times the budget still fell back on {len(scaled) - len(kept)} seeds of {len(scaled)}" in guide
    gaps = [r["search"]["best_cell"]["score"] - r["search"]["constant_score"] for r in scaled if r not in kept]
    assert f"0.{round(min(gaps) * 1000):03d}–0.{round(max(gaps) * 1000):03d} above the mean's score" in evidence
    search = kept[0]["search"]
    assert search["chosen"]["lr"] == 0.000464
    assert f"chose 4.64e-4 ({search['best_cell']['score']:.3f} against {search['constant_score']:.3f})" in evidence
    outcome = json.loads((results / "runs/stsb/outcome/stsb-standard-lr0.000464-ratio4-seed1.json").read_text())
    gap = outcome["final"]["loss"] - default["final"]["loss"]
    assert f"{outcome['final']['loss']:.3f}, {gap:.3f} above the defaults' {default['final']['loss']:.3f}" in evidence
