"""lr/ratio="auto": the plan and its budget (pure), the search inside fit (exact restore, bit-identical training
with the choice, resume without a new search, logging, export), tasks and training settings, DDP ranks agreeing."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

import lit_loraplus.training.module as module_file
from lit_loraplus.callbacks import AdapterCheckpoint, AdapterExport
from lit_loraplus.cli import LoraPlusCLI
from lit_loraplus.core.halving import SearchOutcome, Trial, successive_halving
from lit_loraplus.core.rng import rng_state
from lit_loraplus.core.search import (
    Rung,
    SearchSettings,
    default_cell,
    halving_rungs,
    keep_best,
    lr_ladder,
    plan_cost,
    search_ends,
    step_down,
)
from lit_loraplus.core.settings import DEFAULT_LR, DEFAULT_RATIO
from lit_loraplus.data import GlueDataModule, InstructionDataModule, TextClassificationDataModule
from lit_loraplus.training import LoraPlusModule
from lit_loraplus.training.search import rows_seed, search_strategy_problems
from lit_loraplus.training.search_data import constant_loss
from lit_loraplus.training.search_report import SEARCH_FILE, describe, edge_warning, prior_warning

# --- the plan, the budget and the halving loop (pure) ---------------------------------------------------------------


def test_the_default_ladder_is_the_benchmarks_10_to_the_k_thirds_around_the_default_lr() -> None:
    """lr="auto" tries five rungs of the 10^(k/3) ladder (three significant digits), two either side of the rung
    nearest the module's default η_A (1e-3): the evidence benchmark's η_A grid; the default λ values are 2^0..2^5."""
    assert DEFAULT_LR == 1e-3 and lr_ladder() == (2.15e-4, 4.64e-4, 1e-3, 2.15e-3, 4.64e-3)
    assert lr_ladder(2e-4) == (4.64e-5, 1e-4, 2.15e-4, 4.64e-4, 1e-3)
    assert lr_ladder(1e-3, 3) == (1e-4, 2.15e-4, 4.64e-4, 1e-3, 2.15e-3, 4.64e-3, 1e-2)
    grid = SearchSettings().grid("auto", "auto")
    assert len(grid) == 30 and grid[0] == (2.15e-4, 1.0) and grid[-1] == (4.64e-3, 32.0)
    assert SearchSettings(ratios=[8, 2]).grid(3e-4, "auto") == [(3e-4, 2.0), (3e-4, 8.0)]


def test_halving_rungs_and_their_cost() -> None:
    """Cells halve (rounded up) while more than two are left, each rung twice as long; cells continue from where
    they stopped, so a plan costs s·Σ n_i·(2^i − 2^(i−1)): 13 s for 6 cells, 15 s for 7, 165 s for 42."""
    assert [(r.cells, r.steps) for r in halving_rungs(6, 2)] == [(6, 2), (3, 4), (2, 8)]
    assert plan_cost(halving_rungs(6, 2)) == 6 * 2 + 3 * 2 + 2 * 4 == 26
    assert plan_cost(halving_rungs(7, 1)) == 15 and plan_cost(halving_rungs(42, 1)) == 165
    assert [r.cells for r in halving_rungs(42, 1)] == [42, 21, 11, 6, 3, 2]
    assert halving_rungs(2, 5) == halving_rungs(2, 5)[:1]  # two cells: one rung


def test_budget_for_a_300_step_run() -> None:
    """At the default 10 % of a 300-step run (30 steps), λ alone (6 cells: rungs of 2, 4, 8 steps, 26 steps) and
    η_A alone (5 cells: 24 steps) fit; both together (30 cells) need 186 and are refused before any training,
    with the numbers and the fixes. An int budget is a number of steps; one cell needs no trials."""
    settings = SearchSettings()
    assert settings.budget_steps(300) == 30 and SearchSettings(budget=45).budget_steps(300) == 45
    ratio_only = settings.plan(6, 300)
    assert [(r.cells, r.steps) for r in ratio_only] == [(6, 2), (3, 4), (2, 8)] and plan_cost(ratio_only) == 26
    lr_only = settings.plan(5, 300)
    assert [(r.cells, r.steps) for r in lr_only] == [(5, 2), (3, 4), (2, 8)] and plan_cost(lr_only) == 24
    message = (
        r"`search_budget=0.1` allows 30 extra optimizer steps \(0.1 × the run's 300\), but searching 30 cells "
        r"\(η_A, λ\) by successive halving needs at least 186: 2 steps for every cell.*"
        r"`model.search_budget=186` \(steps\) or 0.62 \(a fraction of the run\).*`model.search_lrs`.*fix `model.lr`"
    )
    with pytest.raises(ValueError, match=message):
        settings.plan(30, 300)
    assert SearchSettings(budget=186).plan(30, 300)[0].steps == 2
    assert "search_min_steps" not in str(pytest.raises(ValueError, settings.plan, 30, 300).value)  # 30 < 1 × 93
    assert settings.plan(1, 10) == []
    with pytest.raises(ValueError, match=r"Invalid search settings: `budget=0` must be .* `halving=1` must be"):
        SearchSettings(budget=0, halving=1)


def test_min_steps_one_halves_the_least_budget_of_a_short_run() -> None:
    """A 120-step run at the default 10 % (12 steps) cannot search 5 η_A values with first rungs of 2 steps (24
    needed); the error says that 1-step first rungs fit, and ``min_steps=1`` plans them: 5 × 1, 3 × 2, 2 × 4."""
    with pytest.raises(ValueError, match=r"needs at least 24.*first rung of 1 step: `model.search_min_steps=1`"):
        SearchSettings().plan(5, 120)
    rungs = SearchSettings(min_steps=1).plan(5, 120)
    assert [(r.cells, r.steps) for r in rungs] == [(5, 1), (3, 2), (2, 4)] and plan_cost(rungs) == 12


def test_the_fallback_cell_is_the_searched_value_nearest_each_default() -> None:
    """A search that cannot tell falls back to the defaults (η_A 1e-3, λ 4) where they were searched, else to the
    nearest searched value by ratio (the smaller on a tie); a fixed setting keeps its one value."""
    assert default_cell(SearchSettings().grid("auto", "auto")) == (DEFAULT_LR, DEFAULT_RATIO)
    assert default_cell(SearchSettings(ratios=[1, 2, 16]).grid(3e-4, "auto")) == (3e-4, 2.0)
    assert default_cell(SearchSettings(lrs=[5e-4, 2e-3], ratios=[2, 8]).grid("auto", "auto")) == (5e-4, 2.0)
    assert default_cell([(1e-7, 4.0), (2e-7, 4.0)]) == (2e-7, 4.0)


@pytest.mark.parametrize("best_lr", [2.15e-3, 1e-3], ids=["passed-over", "best-is-default"])
def test_a_fallback_names_the_cell_it_passed_over_only_when_there_is_one(best_lr: float) -> None:
    """The console line and warning of a search that fell back: with another best cell they name it and offer
    ``search_fallback: false``; where the best cell is the defaults' own cell they say so, with nothing passed
    over and no setting that would change the run."""
    trials = [Trial(lr, 4.0, 6, [score]) for lr, score in ((1e-3, 0.70 if best_lr != 1e-3 else 0.69), (2.15e-3, 0.69))]
    best = next(t for t in trials if t.lr == best_lr)
    outcome = SearchOutcome({"lr": "auto", "ratio": 4.0}, 1e-3, 4.0, best, trials, [Rung(2, 6)], 12, 120, 1.0,
                            "held-out training rows", 4, constant_score=0.638, fell_back=True)  # fmt: skip
    chose, warning = describe(outcome)[1], prior_warning(outcome)
    assert chose.startswith("lit-loraplus: auto chose η_A=0.001, λ=4, falling back to the cell nearest the defaults")
    assert "did no better than a constant prediction (0.6380)" in chose and "0.6900" in chose
    assert warning is not None and "`search_budget`" in warning
    if best_lr == 1e-3:
        assert "which is also its best cell" in chose
        assert "instead of" not in warning and "search_fallback" not in warning
        assert "(η_A=0.001, λ=4) is close to a guess; it is also the cell nearest the defaults" in warning
    else:
        assert "its best cell (η_A=0.00215, λ=4, held-out loss 0.6900)" in chose
        assert "nearest the defaults (η_A=0.001, λ=4) instead of the best cell (η_A=0.00215, λ=4)" in warning
        assert "`search_fallback: false`" in warning


def _outcome(requested: dict, cells: list[tuple[float, float]], best: tuple[float, float], **kw) -> SearchOutcome:
    """A finished search over ``cells`` (8-step trials) whose best cell is ``best``."""
    trials = [Trial(lr, ratio, 8, [0.5 if (lr, ratio) == best else 0.6]) for lr, ratio in cells]
    winner = next(t for t in trials if (t.lr, t.ratio) == best)
    return SearchOutcome(requested, *best, winner, trials, [Rung(len(cells), 8)], 64, 640, 1.0, "validation rows", 4,
                         **kw)  # fmt: skip


@pytest.mark.parametrize(
    "requested, best, at_edge",
    [
        ({"lr": "auto", "ratio": 4.0}, (4.64e-3, 4.0), {"lr": "largest"}),
        ({"lr": "auto", "ratio": 4.0}, (2.15e-4, 4.0), {"lr": "smallest"}),
        ({"lr": "auto", "ratio": 4.0}, (1e-3, 4.0), {}),
        ({"lr": 1e-3, "ratio": "auto"}, (1e-3, 32.0), {"ratio": "largest"}),
        ({"lr": 1e-3, "ratio": "auto"}, (1e-3, 1.0), {}),  # λ = 1 is plain LoRA: nothing below it to search
        ({"lr": "auto", "ratio": "auto"}, (4.64e-3, 32.0), {"lr": "largest", "ratio": "largest"}),
    ],
    ids=["lr-largest", "lr-smallest", "lr-inside", "ratio-largest", "ratio-one", "both"],
)
def test_a_choice_at_an_end_of_the_searched_values_is_recorded_and_warned(requested, best, at_edge) -> None:
    """A best cell at an end of a searched setting's values is recorded (``at_edge``) and warned: at the largest,
    with the next value below to compare and the longest trial's steps (short trials favour larger values); at the
    smallest, with the setting to widen. Values inside, λ = 1, and settings that were not searched say nothing."""
    lrs = [2.15e-4, 4.64e-4, 1e-3, 2.15e-3, 4.64e-3] if requested["lr"] == "auto" else [requested["lr"]]
    ratios = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0] if requested["ratio"] == "auto" else [requested["ratio"]]
    outcome = _outcome(requested, [(a, b) for a in lrs for b in ratios], best)
    assert outcome.at_edge == at_edge and outcome.to_dict()["at_edge"] == at_edge
    warning = edge_warning(outcome)
    assert (warning is None) is (not at_edge)
    if at_edge.get("lr") == "largest":
        assert "η_A=0.00464 is the largest of the 5 values it searched (0.000215 to 0.00464)" in warning
        assert "the trials (8 steps at most)" in warning and "compare a run at η_A=0.00215" in warning
    if at_edge.get("ratio") == "largest":
        assert "λ=32 is the largest of the 6 values it searched (1 to 32)" in warning
        assert "compare a run at λ=16" in warning and "`model.search_ratios`" in warning
    if at_edge.get("lr") == "smallest":
        assert "η_A=0.000215 is the smallest of the 5 values" in warning and "`model.search_lrs`" in warning


@pytest.mark.parametrize(
    "cells, best, below",
    [
        ([(lr, 4.0) for lr in (2.15e-4, 1e-3, 4.64e-3)], (4.64e-3, 4.0), (1e-3, 4.0)),
        ([(lr, 4.0) for lr in (2.15e-4, 1e-3, 4.64e-3)], (2.15e-4, 4.0), (2.15e-4, 4.0)),
        ([(lr, 4.0) for lr in (2.15e-4, 1e-3, 4.64e-3)], (1e-3, 4.0), (1e-3, 4.0)),
        ([(1e-3, r) for r in (1.0, 4.0, 16.0, 32.0)], (1e-3, 32.0), (1e-3, 16.0)),
        ([(a, b) for a in (1e-4, 1e-3, 1e-2) for b in (2.0, 8.0, 32.0)], (1e-2, 32.0), (1e-3, 8.0)),
        ([(1e-3, 4.0), (2.15e-3, 4.0)], (2.15e-3, 4.0), (2.15e-3, 4.0)),
    ],
    ids=["lr-largest", "lr-smallest", "inside", "ratio-largest", "both-largest", "two-values"],
)
def test_step_down_moves_only_a_largest_value_one_value_below(cells, best, below) -> None:
    """``search_edge: step_down`` moves each setting at the largest of 3 or more searched values to the next value
    below; a smallest value, a value inside, and a setting of two values (no end) keep theirs."""
    assert step_down(cells, best) == below


def test_a_stepped_down_choice_says_so_on_the_console_and_in_its_record() -> None:
    """The console names the choice, the best cell and why it was passed over; the warning names the value trained
    with and ``search_edge=keep``; the record holds ``stepped_down`` beside ``at_edge``."""
    cells = [(lr, 4.0) for lr in (2.15e-4, 4.64e-4, 1e-3, 2.15e-3, 4.64e-3)]
    outcome = _outcome({"lr": "auto", "ratio": 4.0}, cells, (4.64e-3, 4.0), stepped_down=True)
    outcome.lr = 2.15e-3
    chose = describe(outcome)[1]
    assert (
        "auto chose η_A=0.00215, λ=4, one value below its best cell (η_A=0.00464, λ=4, held-out loss 0.5000)" in chose
    )
    warning = edge_warning(outcome)
    assert "η_A=0.00464, its best cell's, is the largest of the 5 values" in warning
    assert "The run trains with the next value below, η_A=0.00215" in warning and "search_edge=keep" in warning
    record = outcome.to_dict()
    assert record["stepped_down"] is True and record["chosen"]["lr"] == 2.15e-3 and record["at_edge"]["lr"] == "largest"


def test_no_end_is_reported_for_two_values_or_a_fallback() -> None:
    """Of two searched values every choice is an end, so none is reported; a search that fell back trains with the
    defaults' cell, not the trials' choice, so its end is not the search's either."""
    assert search_ends([(1e-4, 4.0), (1e-3, 4.0), (1e-2, 4.0)], (1e-2, 4.0)) == {"lr": "largest"}
    assert search_ends([(1e-3, r) for r in (0.5, 1.0, 2.0)], (1e-3, 0.5)) == {}  # λ below 1 is no end either
    assert search_ends([(1e-3, r) for r in (2.0, 4.0, 8.0)], (1e-3, 2.0)) == {"ratio": "smallest"}
    two = _outcome({"lr": "auto", "ratio": 4.0}, [(1e-3, 4.0), (2.15e-3, 4.0)], (2.15e-3, 4.0))
    assert two.at_edge == {} and edge_warning(two) is None
    cells = [(lr, 4.0) for lr in (4.64e-4, 1e-3, 2.15e-3)]
    fell = _outcome({"lr": "auto", "ratio": 4.0}, cells, (2.15e-3, 4.0), constant_score=0.4, fell_back=True)
    assert fell.at_edge == {} and edge_warning(fell) is None


def test_keep_best_breaks_ties_by_order_and_drops_diverged_cells() -> None:
    """The lowest scores survive, in cell order; equal scores go to the earlier cell; inf/NaN never survive."""
    assert keep_best([0.3, 0.1, 0.2, 0.1], 2) == [1, 3]
    assert keep_best([0.3, 0.3, 0.3], 1) == [0]
    assert keep_best([math.inf, 0.5, math.nan], 2) == [1]


def test_successive_halving_on_a_known_score() -> None:
    """With a score that falls with training and is lowest at η_A = 1e-3, the loop trains every cell 2 steps, the
    best half on to 4 and 8, picks the known best, and trains exactly the plan's cost; a cell whose training
    diverges is scored inf and dropped; if every finalist diverged the error says what to change."""
    cells = [(lr, 1.0) for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)]
    steps = dict.fromkeys(range(len(cells)), 0)

    def train(c: int, until: int) -> int:
        taken, steps[c] = until - steps[c], until
        return taken

    def score(alive: list[int]) -> list[float]:
        return [math.inf if c == 5 else abs(math.log10(cells[c][0]) + 3) + 1 / steps[c] for c in alive]

    rungs = halving_rungs(len(cells), 2)
    trials, best = successive_halving(cells, rungs, train, score)
    assert (best.lr, best.ratio) == (1e-3, 1.0) and best.steps == 8
    assert sum(t.steps for t in trials) == plan_cost(rungs) == 26
    assert [len(t.scores) for t in trials] == [1, 2, 3, 3, 1, 1] and trials[5].scores == [math.inf]
    with pytest.raises(RuntimeError, match=r"Every cell of the search's last rung diverged.*`model.search_lrs`"):
        successive_halving(cells, rungs, train, lambda alive: [math.inf] * len(alive))


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"ratio": "auto", "search_budget": 0}, r"`search_budget=0` must be a fraction .* or a number of steps"),
        ({"ratio": "auto", "search_budget": True}, r"`search_budget=True` must be"),
        ({"ratio": "auto", "search_ratios": [4, 4]}, r"`search_ratios` repeats \[4\]"),
        ({"lr": "auto", "search_lrs": [], "search_lr_factor": 0}, r"`search_lrs=\[\]`.*`search_lr_factor=0`"),
        ({"lr": "fast"}, r"`lr='fast'` must be a positive finite number"),
        ({"ratio": "auto", "search_score_on": "dev"}, r"`search_score_on='dev'` must be one of \['auto', 'valid"),
        ({"ratio": "auto", "search_fallback": "yes"}, r"`search_fallback='yes'` must be true or false"),
        ({"lr": "auto", "search_edge": "down"}, r"`search_edge='down'` must be one of \['step_down', 'keep'\]"),
        ({"ratio": "auto", "search_seed": -1}, r"`search_seed=-1` must be an integer >= 0"),
        ({"lr": "auto", "search_score_batches": 0}, r"`search_score_batches=0` must be an integer >= 1"),
        ({"lr": "auto", "search_min_steps": 0}, r"`search_min_steps=0` must be an integer >= 1"),
    ],
)
def test_search_settings_are_checked_with_the_others(settings, match) -> None:
    """Bad search settings are refused at construction with the others (all problems in one error, before any
    model is loaded)."""
    with pytest.raises(ValueError, match=r"^Invalid LoraPlusModule settings: .*" + match):
        LoraPlusModule("unused", **settings)


def test_fsdp_and_deepspeed_are_refused() -> None:
    """The search steps optimizers of its own, which sharded or engine-built optimizers do not allow."""
    assert search_strategy_problems("ddp") == []
    for strategy in ("fsdp", "deepspeed_stage_2"):
        (problem,) = search_strategy_problems(strategy)
        assert "not supported with" in problem and "set `model.lr` and `model.ratio`" in problem


def test_cli_and_yaml_take_auto(tmp_path) -> None:
    """`--model.lr=auto` / `ratio: auto` parse to "auto"; numbers stay numbers; an int budget is steps, a float a
    fraction; `search_fallback` is on unless set false; groups asked for before the search say why they do not
    exist yet."""
    yaml = "model:\n  ratio: auto\n  search_budget: 60\n  search_ratios: [2, 8]\n  search_fallback: false\n"
    (tmp_path / "auto.yaml").write_text(yaml)
    common = ["--model.model=unused", "--data=lit_loraplus.data.GlueDataModule", "--data.task=sst2"]
    common += ["--trainer.logger=false"]
    cli = LoraPlusCLI(args=[*common, "--config", str(tmp_path / "auto.yaml"), "--model.lr=auto"], run=False)
    h = cli.model.hparams
    assert (h.lr, h.ratio, h.search_budget, h.search_ratios) == ("auto", "auto", 60, [2.0, 8.0])
    assert h.search_fallback is False
    cli = LoraPlusCLI(args=[*common, "--model.lr=3e-4", "--model.ratio=auto", "--model.search_budget=0.2"], run=False)
    h = cli.model.hparams
    assert (h.lr, h.search_budget, h.search_fallback) == (3e-4, 0.2, True)
    with pytest.raises(RuntimeError, match=r"an 'auto' setting is chosen at the start of `fit`"):
        cli.model.group_settings  # noqa: B018


# --- the search inside fit ------------------------------------------------------------------------------------------

RATIOS = [1.0, 4.0, 16.0]  # 3 cells: rungs 3 × 2 and 2 × 4 steps = 10 extra steps


class Steps(Callback):
    """Every training step's batch and group learning rates, and the number of batches trained."""

    def __init__(self) -> None:
        self.rows: list[tuple[list, dict]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        lrs = {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}
        self.rows.append((batch["input_ids"].tolist(), lrs))


def glue(tiny_bert_dir: Path, glue_dir: Path, task: str = "sst2") -> GlueDataModule:
    return GlueDataModule(
        task, str(tiny_bert_dir), data_dir=str(glue_dir), batch_size=4, train_subset=96, val_subset=16
    )


def bert(tiny_bert_dir: Path, num_labels: int = 2, **settings) -> LoraPlusModule:
    """The tiny BERT with dropout on (model and LoRA), so any shift of the random generators shows; the same
    initial adapters every time (the seed is set before they are drawn)."""
    torch.manual_seed(0)
    return LoraPlusModule(str(tiny_bert_dir), num_labels=num_labels, r=4, dropout=0.1, **settings)


def fit(module: L.LightningModule, data, tmp: Path, steps: int = 6, ckpt_path: str | None = None, **trainer):
    """Fit on the CPU without validation or progress bar; return the trainer."""
    checkpoints = any(isinstance(c, ModelCheckpoint) for c in trainer.get("callbacks", []))
    settings = {"logger": False, "enable_checkpointing": checkpoints, "enable_progress_bar": False} | trainer
    settings |= {"enable_model_summary": False, "num_sanity_val_steps": 0, "limit_val_batches": 0}
    run = L.Trainer(max_steps=steps, default_root_dir=tmp, accelerator="cpu", **settings)
    if isinstance(data, L.LightningDataModule):
        run.fit(module, data, ckpt_path=ckpt_path)
    else:
        run.fit(module, train_dataloaders=data, ckpt_path=ckpt_path)
    return run


def trainable(module: L.LightningModule) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and any(".lora_B." in k for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_auto_trains_bit_identically_to_its_choice_and_restores_everything(
    tmp_path, tiny_bert_dir, glue_dir, monkeypatch
):
    """A ratio="auto" run (dropout on, shuffled batches) searches λ ∈ {1, 4, 16} in 10 extra steps, then trains
    exactly as a run with that λ fixed: the same batches and group learning rates at every step and bit-identical
    final adapters. Around the real search, inside fit, the trainable weights, buffers, module modes and every
    random generator are exactly as before it; no gradient is left behind."""
    around = {}
    real_search = module_file.search

    def watched(module, trainer, total):
        state = (trainable(module), dict(module.named_buffers()), {n: m.training for n, m in module.named_modules()})
        around["before"] = (*state, rng_state()["torch"])
        outcome = real_search(module, trainer, total)
        state = (trainable(module), dict(module.named_buffers()), {n: m.training for n, m in module.named_modules()})
        around["after"] = (*state, rng_state()["torch"])
        around["grads"] = [p.grad for p in module.parameters() if p.grad is not None]
        return outcome

    monkeypatch.setattr(module_file, "search", watched)
    auto, auto_steps = bert(tiny_bert_dir, ratio="auto", search_ratios=RATIOS, search_budget=10), Steps()
    fit(auto, glue(tiny_bert_dir, glue_dir), tmp_path / "auto", callbacks=[auto_steps])
    record = auto.search_record
    assert record["requested"] == {"lr": DEFAULT_LR, "ratio": "auto"} and record["extra_steps"] == 10
    assert [(r["cells"], r["steps"]) for r in record["rungs"]] == [(3, 2), (2, 4)]
    assert record["scored_on"] == "validation rows" and record["chosen"]["ratio"] in RATIOS
    assert auto.hparams.ratio == record["chosen"]["ratio"] and auto.hparams_initial.ratio == "auto"
    before, after = around["before"], around["after"]
    assert_same_weights(before[0], after[0])
    assert before[1].keys() == after[1].keys() and all(torch.equal(before[1][k], after[1][k]) for k in before[1])
    assert before[2] == after[2] and torch.equal(before[3], after[3]) and around["grads"] == []

    fixed, fixed_steps = bert(tiny_bert_dir, ratio=record["chosen"]["ratio"]), Steps()
    fit(fixed, glue(tiny_bert_dir, glue_dir), tmp_path / "fixed", callbacks=[fixed_steps])
    assert auto_steps.rows == fixed_steps.rows and len(auto_steps.rows) == 6
    assert_same_weights(trainable(auto), trainable(fixed))


def test_search_seed_follows_the_run_seed_unless_set_and_is_recorded(
    tmp_path, tiny_bert_dir, glue_dir, monkeypatch
) -> None:
    """``search_seed`` decides the shuffle of the training rows the trials train on. Unset, it is the run's seed
    as ``seed_everything`` left it (``PL_GLOBAL_SEED``), 0 where no seed was set: the unseeded default searches
    exactly as an explicit 0 does even in a run seeded 7, and a run seeded 7 exactly as an explicit 7 does in an
    unseeded one; 0 and 7 score the same cells differently. The record names the seed the rows came from.
    (The initial adapters are the same in every case: ``bert`` seeds torch itself.)"""
    records = {}
    for name, run_seed, extra in (("unseeded", None, {}), ("zero", "7", {"search_seed": 0}),
                                  ("seeded", "7", {}), ("seven", None, {"search_seed": 7})):  # fmt: skip
        if run_seed is None:
            monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
        else:
            monkeypatch.setenv("PL_GLOBAL_SEED", run_seed)
        module = bert(tiny_bert_dir, ratio="auto", search_ratios=RATIOS, search_budget=10, **extra)
        fit(module, glue(tiny_bert_dir, glue_dir), tmp_path / name, 2)
        records[name] = module.search_record
    scores = {name: [t["scores"] for t in record["trials"]] for name, record in records.items()}
    assert scores["unseeded"] == scores["zero"] != scores["seeded"] == scores["seven"]
    assert [record["search_seed"] for record in records.values()] == [0, 0, 7, 7]


@pytest.mark.parametrize(
    ("setting", "env", "expected"), [(None, None, 0), (None, "12", 12), (3, "12", 3), (0, "12", 0)]
)
def test_rows_seed_is_the_setting_else_the_run_seed_else_0(monkeypatch, setting, env, expected) -> None:
    """``rows_seed``: an explicit ``search_seed`` wins; unset, Lightning's ``PL_GLOBAL_SEED``; without one, 0."""
    if env is None:
        monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    else:
        monkeypatch.setenv("PL_GLOBAL_SEED", env)
    assert rows_seed(setting) == expected


def test_search_score_batches_sets_the_scoring_rows_and_is_recorded(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """``search_score_batches`` is how many validation batches score each cell: 1 batch and the default 4 score
    the same trials (validation rows do not change the trial rows) on different rows, so the first rung's scores
    differ, and the record names the count."""
    records = {}
    for name, extra in (("default", {}), ("one", {"search_score_batches": 1})):
        module = bert(tiny_bert_dir, ratio="auto", search_ratios=RATIOS, search_budget=10, **extra)
        fit(module, glue(tiny_bert_dir, glue_dir), tmp_path / name, 2)
        records[name] = module.search_record
    assert [r["score_batches"] for r in records.values()] == [4, 1]
    assert all(r["scored_on"] == "validation rows" for r in records.values())
    first = {name: [t["scores"][0] for t in r["trials"]] for name, r in records.items()}
    assert first["default"] != first["one"]


def test_search_min_steps_reaches_the_search(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """``search_min_steps`` is the module's: a 5-step budget over 3 λ values is refused at the default (needs 10)
    and searched with first rungs of 1 step when set to 1, before the run's own steps."""
    data = glue(tiny_bert_dir, glue_dir)
    with pytest.raises(ValueError, match=r"allows 5 extra .* needs at least 10.*`model.search_min_steps=1`"):
        fit(bert(tiny_bert_dir, ratio="auto", search_ratios=[2, 4, 8], search_budget=5), data, tmp_path / "a", 2)
    module = bert(tiny_bert_dir, ratio="auto", search_ratios=[2, 4, 8], search_budget=5, search_min_steps=1)
    run = fit(module, data, tmp_path / "b", 2)
    assert [(r["cells"], r["steps"]) for r in module.search_record["rungs"]] == [(3, 1), (2, 2)]
    assert module.search_record["extra_steps"] == 5
    assert run.global_step == 2 and module.hparams.search_min_steps == 1


def test_one_cell_is_chosen_without_trials(tmp_path, tiny_bert_dir, glue_dir, caplog) -> None:
    """lr="auto" over a single η_A: it is taken as it is, no step is spent, and the console says so."""
    module = bert(tiny_bert_dir, lr="auto", search_lrs=[1e-3])
    fit(module, glue(tiny_bert_dir, glue_dir), tmp_path, 2)
    assert module.hparams.lr == 1e-3 and module.search_record["extra_steps"] == 0
    assert f"auto has one cell, η_A=0.001, λ={DEFAULT_RATIO:g}: nothing to search" in caplog.text


def test_too_small_a_budget_is_refused_before_any_step(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """lr and ratio both "auto" (30 cells) in a 300-step run at the default 10 %: a ValueError with what the
    search needs, raised before any batch is trained."""
    steps = Steps()
    with pytest.raises(ValueError, match=r"`search_budget=0.1` allows 30 .* needs at least 186"):
        fit(
            bert(tiny_bert_dir, lr="auto", ratio="auto"),
            glue(tiny_bert_dir, glue_dir),
            tmp_path,
            300,
            callbacks=[steps],
        )
    assert steps.rows == []


def test_resume_keeps_the_choice_without_searching_again(tmp_path, tiny_bert_dir, glue_dir, monkeypatch) -> None:
    """An lr="auto", ratio="auto" run checkpoints at step 3; a new module built as the config says ("auto") and
    resumed from that checkpoint takes the chosen values from it, never searches (the search is made to fail),
    keeps the record and ends bit-identical to the uninterrupted run. Exporting the checkpoint writes the record
    to loraplus.json; loading it gives a module with the chosen numbers."""
    settings = {"lr": "auto", "ratio": "auto", "search_lrs": [1e-3, 1e-2], "search_ratios": [1.0, 8.0]}
    settings["search_budget"] = 12  # 4 cells: rungs 4 × 2 and 2 × 4 steps

    def checkpointing(folder: Path) -> AdapterCheckpoint:
        return AdapterCheckpoint(dirpath=str(folder), every_n_train_steps=3, save_top_k=-1, preempt_signals=[])

    whole = bert(tiny_bert_dir, **settings)
    fit(
        whole,
        glue(tiny_bert_dir, glue_dir),
        tmp_path,
        callbacks=[checkpointing(tmp_path / "a")],
    )
    chosen = whole.search_record["chosen"]
    (step3,) = (tmp_path / "a").glob("*step=3.ckpt")

    def no_search(*args, **kwargs):
        raise AssertionError("a resumed run searched again")

    monkeypatch.setattr(module_file, "search", no_search)
    resumed = bert(tiny_bert_dir, **settings)
    fit(
        resumed,
        glue(tiny_bert_dir, glue_dir),
        tmp_path,
        ckpt_path=str(step3),
        callbacks=[checkpointing(tmp_path / "b")],
    )
    assert {"lr": resumed.hparams.lr, "ratio": resumed.hparams.ratio} == chosen
    assert resumed.search_record == whole.search_record
    assert_same_weights(trainable(whole), trainable(resumed))

    loaded = LoraPlusModule.load_from_checkpoint(step3, map_location="cpu")
    assert (loaded.hparams.lr, loaded.hparams.ratio) == (chosen["lr"], chosen["ratio"])
    loaded.save_adapter(str(tmp_path / "export"))
    exported = json.loads((tmp_path / "export" / "loraplus.json").read_text())
    assert exported["search"] == whole.search_record and exported["settings"]["ratio"] == chosen["ratio"]


def test_the_search_is_logged_at_step_zero_and_written_beside_the_logs(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """With a CSVLogger and an offline W&B logger: the summary (η_A, λ, score, extra steps) is one row at step 0,
    before the training rows, in order; loraplus_search.json (every trial) is in the CSV folder and the W&B run's
    files; AdapterExport writes the record into loraplus.json."""
    from lightning.pytorch.loggers import WandbLogger

    loggers = [CSVLogger(tmp_path / "logs"), WandbLogger(save_dir=str(tmp_path / "logs"), offline=True)]
    module = bert(tiny_bert_dir, ratio="auto", search_ratios=RATIOS, search_budget=10)
    export = AdapterExport(output_dir=str(tmp_path / "adapter"))
    fit(module, glue(tiny_bert_dir, glue_dir), tmp_path, logger=loggers, log_every_n_steps=1, callbacks=[export])
    rows = list(csv.DictReader(open(Path(loggers[0].log_dir) / "metrics.csv")))
    summary = [r for r in rows if r.get("search/ratio")]
    assert len(summary) == 1 and summary[0]["step"] == "0"
    assert float(summary[0]["search/ratio"]) == module.hparams.ratio and summary[0]["search/extra_steps"] == "10"
    assert rows[0] is summary[0] and [int(r["step"]) for r in rows] == sorted(int(r["step"]) for r in rows)
    for folder in (Path(loggers[0].log_dir), Path(loggers[1].experiment.dir)):
        record = json.loads((folder / SEARCH_FILE).read_text())
        assert record == module.search_record and len(record["trials"]) == 3
    assert json.loads((tmp_path / "adapter" / "loraplus.json").read_text())["search"] == module.search_record


@pytest.fixture
def instructions(tmp_path) -> Path:
    path = tmp_path / "train.jsonl"
    rows = [{"prompt": f"what {c} is true", "response": f"the {c} answer is yes"} for c in ("red", "blue") * 16]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.mark.parametrize(
    "case",
    [
        "regression",
        "causal_lm",
        "no_validation",
        "scored_on_train",
        "accumulation_and_clipping",
        "bf16_mixed",
        "loraplus_init",
    ],
)
def test_auto_works_across_tasks_and_training_settings(
    case, tmp_path, tiny_bert_dir, tiny_llama_dir, glue_dir, instructions
):
    """STS-B regression, a causal LM on instructions, a run given only a train loader (scored on held-out training
    rows), a run whose validation data the search must not see (``search_score_on="train"``), gradient accumulation
    with clipping, bf16 autocast and the paper's init all search and train: every trial is scored with a finite
    loss, the plan's steps are spent and the run then trains its steps."""
    settings, trainer, data = {"lr": "auto", "search_lrs": [1e-3, 1e-2], "search_budget": 6}, {}, None
    if case == "scored_on_train":
        settings["search_score_on"] = "train"
    if case == "regression":
        module, data = bert(tiny_bert_dir, num_labels=1, **settings), glue(tiny_bert_dir, glue_dir, "stsb")
    elif case == "causal_lm":
        data = InstructionDataModule(str(instructions), str(tiny_llama_dir), batch_size=4, val_fraction=0.25)
        module = LoraPlusModule(str(tiny_llama_dir), task="causal_lm", r=4, **settings)
    else:
        module, data = (
            bert(tiny_bert_dir, init="loraplus" if case == "loraplus_init" else "standard", **settings),
            glue(tiny_bert_dir, glue_dir),
        )
    if case == "no_validation":
        data.setup("fit")
        data = data.train_dataloader()
    trainer = {
        "accumulation_and_clipping": {"accumulate_grad_batches": 2, "gradient_clip_val": 0.5},
        "bf16_mixed": {"precision": "bf16-mixed"},
    }.get(case, {})
    steps = Steps()
    fit(module, data, tmp_path, 4, callbacks=[steps], **trainer)
    record = module.search_record
    assert record["extra_steps"] == 6 and [(r["cells"], r["steps"]) for r in record["rungs"]] == [(2, 3)]
    assert all(t["steps"] == 3 and math.isfinite(t["scores"][0]) for t in record["trials"])
    held_out = case in ("no_validation", "scored_on_train")
    assert record["scored_on"] == ("held-out training rows" if held_out else "validation rows")
    assert module.hparams.lr in (1e-3, 1e-2) and len(steps.rows) == 4 * trainer.get("accumulate_grad_batches", 1)


def test_scoring_on_validation_without_validation_data_is_refused(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """``search_score_on="validation"`` with only a train loader fails before any trial, naming the setting and
    the two ways out."""
    data = glue(tiny_bert_dir, glue_dir)
    data.setup("fit")
    module = bert(tiny_bert_dir, lr="auto", search_lrs=[1e-3, 1e-2], search_budget=6, search_score_on="validation")
    with pytest.raises(ValueError, match=r"`search_score_on='validation'`.* no validation data.*'train'"):
        fit(module, data.train_dataloader(), tmp_path, 4)
    assert module.search_record is None


def test_the_constant_baseline_is_the_label_balance_entropy_or_the_target_variance() -> None:
    """Scoring rows 3:1 → the entropy of (0.75, 0.25) for a classifier, whatever the batching; targets 1, 3 | 2, 2
    → variances 1 and 0, averaged over the batches as a score is; no baseline for a causal LM, multi-label targets
    or a batch without labels."""
    three_to_one = [{"labels": torch.tensor([0, 0, 1, 0])}, {"labels": torch.tensor([1, 0, 0, 0])}]
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert constant_loss(three_to_one, "sequence_classification", 2) == pytest.approx(entropy)
    targets = [{"labels": torch.tensor([1.0, 3.0])}, {"labels": torch.tensor([2.0, 2.0])}]
    assert constant_loss(targets, "sequence_classification", 1) == pytest.approx(0.5)
    assert constant_loss(three_to_one, "causal_lm", None) is None
    assert constant_loss([{"labels": torch.tensor([[1.0, 0.0]])}], "sequence_classification", 2) is None
    assert constant_loss([*three_to_one, {"input_ids": torch.ones(1, 2)}], "sequence_classification", 2) is None


def _reviews(tmp_path: Path) -> Path:
    """Train (32 rows) and validation files (16, as many as the search scores on: 4 batches of 4) whose labels are
    3:1 in every batch of 4 rows."""
    rows = [(f"{w} film number {i}", w) for i in range(8) for w in ("good", "good", "good", "bad")]
    for name, kept in (("train.csv", rows), ("val.csv", rows[:16])):
        with open(tmp_path / name, "w", newline="") as f:
            csv.writer(f).writerows([("text", "label"), *kept])
    return tmp_path


@pytest.mark.parametrize(
    "settings, warned, chosen",
    [
        ({"lr": "auto", "search_lrs": [1e-7, 2e-7]}, True, (2e-7, DEFAULT_RATIO)),
        ({"lr": "auto", "search_lrs": [1e-7, 2e-7], "search_fallback": False}, True, "best"),
        ({"lr": 1e-7, "ratio": "auto", "search_ratios": [1, 4, 16]}, True, (1e-7, DEFAULT_RATIO)),
        ({"lr": "auto", "search_lrs": [2e-2, 5e-2]}, False, None),
    ],
    ids=["falls-back", "fallback-off", "ratio-only", "learns"],
)
def test_a_search_that_learned_only_the_prior_says_so_and_trains_with_the_defaults(
    tmp_path, tiny_bert_dir, settings, warned, chosen
) -> None:
    """On 3:1 labels, trials at η_A 1e-7 move nothing: the best cell's held-out loss (about ln 2, the untrained
    head) is no better than predicting the 3:1 balance (0.5623), the record keeps that baseline, the run trains
    with the searched values nearest the defaults (η_A 2e-7 of [1e-7, 2e-7]; λ 4 with η_A fixed) and warns,
    naming the cell it passed over, or saying that its best cell was the defaults' own. With
    ``search_fallback=False`` it keeps the best cell and warns that the choice is close to a guess.
    At η_A 2e-2 the trials learn the words and beat the baseline: no warning, no fallback."""
    folder = _reviews(tmp_path)
    data = TextClassificationDataModule(
        str(folder / "train.csv"), str(tiny_bert_dir), val_file=str(folder / "val.csv"), batch_size=4
    )
    module = bert(tiny_bert_dir, search_budget=16, **settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(module, data, tmp_path, 4)
    record = module.search_record
    assert record["constant_score"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert (record["best_cell"]["score"] >= record["constant_score"]) is warned
    fell_back = warned and settings.get("search_fallback", True)
    assert record["fell_back"] is fell_back
    if chosen:
        chosen = (record["best_cell"]["lr"], record["best_cell"]["ratio"]) if chosen == "best" else chosen
        assert (record["chosen"]["lr"], record["chosen"]["ratio"]) == chosen
        assert (module.hparams.lr, module.hparams.ratio) == chosen  # what the run trained with and saves
    said = [str(w.message) for w in caught if "no better than predicting" in str(w.message)]
    assert len(said) == int(warned)
    passed_over = (record["best_cell"]["lr"], record["best_cell"]["ratio"]) != chosen
    if fell_back and passed_over:
        best = f"η_A={record['best_cell']['lr']:g}, λ={record['best_cell']['ratio']:g}"
        assert f"nearest the defaults (η_A={chosen[0]:g}, λ=4) instead of the best cell ({best})" in said[0]
        assert "`search_fallback: false`" in said[0] and "`search_budget`" in said[0]
    elif fell_back:  # its best cell was the defaults' own
        assert f"(η_A={chosen[0]:g}, λ=4) is close to a guess; it is also the cell nearest the defaults" in said[0]
        assert "search_fallback" not in said[0] and "`search_budget`" in said[0]
    elif warned:
        assert f"choice of `lr` (η_A={chosen[0]:g}, λ=4) is close to a guess" in said[0]


def test_validation_rows_sorted_by_label_still_score_every_class(tmp_path, tiny_bert_dir) -> None:
    """A validation file sorted by label (24 "good", then 8 "bad"; many corpora come so): the search scores on rows
    drawn from all of it, so its constant-prediction bar is the entropy of a mixed balance, not the 0 of one class
    (which no cell can beat, so every search would fall back), and the trials learn past it."""
    folder = _reviews(tmp_path)
    rows = [(f"{w} film number {i}", w) for w in ("good", "bad") for i in range(24 if w == "good" else 8)]
    with open(folder / "val.csv", "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    data = TextClassificationDataModule(
        str(folder / "train.csv"), str(tiny_bert_dir), val_file=str(folder / "val.csv"), batch_size=4
    )
    module = bert(tiny_bert_dir, lr="auto", search_lrs=[2e-2, 5e-2], search_budget=16)
    fit(module, data, tmp_path, 4)
    record = module.search_record
    assert record["scored_on"] == "validation rows" and record["constant_score"] > 0.2
    assert record["best_cell"]["score"] < record["constant_score"] and not record["fell_back"]


@pytest.mark.parametrize("edge, trained", [("step_down", 1e-2), ("keep", 5e-2)])
def test_a_run_whose_search_chose_the_largest_rate_warns_once_and_records_it(
    tmp_path, tiny_bert_dir, edge: str, trained: float
) -> None:
    """On words the model learns in a few steps, the largest of three η_A values (5e-2) wins its short trials,
    beating the constant prediction. By default (``search_edge: step_down``) the run trains with the next value
    below (1e-2): its hyperparameters and optimizer groups hold it. With ``keep`` it trains with 5e-2. Either way
    it records ``at_edge`` and warns once, naming the other value."""
    folder = _reviews(tmp_path)
    data = TextClassificationDataModule(
        str(folder / "train.csv"), str(tiny_bert_dir), val_file=str(folder / "val.csv"), batch_size=4
    )
    module = bert(tiny_bert_dir, lr="auto", search_lrs=[1e-3, 1e-2, 5e-2], search_budget=16, search_edge=edge)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = fit(module, data, tmp_path, 4)
    record = module.search_record
    assert record["best_cell"]["lr"] == max(t["lr"] for t in record["trials"]) == 5e-2 and not record["fell_back"]
    assert record["at_edge"] == {"lr": "largest"} and record["stepped_down"] is (edge == "step_down")
    assert record["chosen"]["lr"] == module.hparams.lr == trained
    groups = {g["name"]: g["initial_lr"] for g in trainer.optimizers[0].param_groups}
    assert groups["lora_A"] == trained and groups["lora_B"] == trained * 4
    said = [str(w.message) for w in caught if "at the edge of its search" in str(w.message)]
    assert len(said) == 1 and "is the largest of the 3 values" in said[0]
    if edge == "step_down":
        assert "η_A=0.05, its best cell's" in said[0] and "trains with the next value below, η_A=0.01" in said[0]
        assert "`model.search_edge=keep` trains with 0.05" in said[0]
    else:
        assert "η_A=0.05 is the largest" in said[0] and "compare a run at η_A=0.01" in said[0]


# --- DDP ------------------------------------------------------------------------------------------------------------

DDP_CONFIG = """\
model:
  r: 4
  ratio: auto
  search_ratios: [1, 4, 16]
  search_budget: 10
data:
  class_path: lit_loraplus.data.GlueDataModule
  init_args: {task: sst2, train_subset: 64, val_subset: 16, batch_size: 4}
trainer:
  accelerator: cpu
  devices: 2
  strategy: ddp
  max_steps: 4
  limit_val_batches: 0
  num_sanity_val_steps: 0
  enable_progress_bar: false
  enable_checkpointing: false
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {save_dir: logs, name: csv}
  callbacks:
    - class_path: scale_helpers.RankRecorder
      init_args: {path: record}
"""


@pytest.mark.subprocess
def test_ddp_ranks_search_on_their_shards_and_agree(tmp_path, tiny_bert_dir, glue_dir, cli) -> None:
    """Two CPU ranks (gloo) search λ on their own shards with the scores averaged over ranks: both choose the
    same λ, train every step with the same group learning rates and end with bit-identical adapters; rank 0
    alone writes the search record, which matches the rates trained with."""
    (tmp_path / "config.yaml").write_text(DDP_CONFIG)
    args = ["fit", "--config", "config.yaml", f"--model.model={tiny_bert_dir}", f"--data.init_args.data_dir={glue_dir}"]
    done = cli(tmp_path, *args)
    w0, w1 = (torch.load(tmp_path / f"record.rank{r}.pt", weights_only=True) for r in (0, 1))
    assert_same_weights(w0, w1)
    lrs0, lrs1 = ([json.loads(x)["lrs"] for x in (tmp_path / f"record.rank{r}.jsonl").open()] for r in (0, 1))
    assert lrs0 == lrs1 and len(lrs0) == 4
    (record_file,) = (tmp_path / "logs").rglob(SEARCH_FILE)
    record = json.loads(record_file.read_text())
    assert record["chosen"]["ratio"] in (1, 4, 16) and record["extra_steps"] == 10
    assert lrs0[0]["lora_B"] == pytest.approx(record["chosen"]["ratio"] * lrs0[0]["lora_A"])
    assert done.stderr.count("auto chose") == 1  # rank 0 prints
    assert ("falling back to the cell nearest the defaults" in done.stderr) is record["fell_back"]
