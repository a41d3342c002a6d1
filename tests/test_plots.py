"""lit_loraplus.plots on the real metrics.csv of a short CSVLogger run with both monitors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ddp_callbacks_script import LAYERS, LoraModule, TokenTask, lora_bert, trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from torch.utils.data import DataLoader

from lit_loraplus.callbacks import FeatureLearningMonitor, UpdateNormMonitor
from lit_loraplus.tools.plots import plot_feature_terms, plot_learning_rates, plot_update_norms, read_metrics

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def metrics_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """metrics.csv of 4 steps with LearningRateMonitor and both LoRA monitors (every step)."""
    out = tmp_path_factory.mktemp("run")
    callbacks = [
        LearningRateMonitor(logging_interval="step"),
        UpdateNormMonitor(log_every_n_steps=1),
        FeatureLearningMonitor(log_every_n_steps=1, probe_batch_size=2),
    ]
    trainer(out, callbacks, max_steps=4).fit(LoraModule(lora_bert()), DataLoader(TokenTask(n=16), batch_size=4))
    return out / "metrics.csv"


def test_learning_rates_one_line_per_named_group(metrics_csv: Path, tmp_path: Path) -> None:
    """The LR figure has one line per optimizer group, named after the group, and lora_B's is λ× lora_A's."""
    fig = plot_learning_rates(metrics_csv, save_to=tmp_path / "lr.png")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert {"lora_A", "lora_B"} <= set(lines)
    assert lines["lora_B"].get_ydata()[0] == pytest.approx(4.0 * lines["lora_A"].get_ydata()[0])
    assert (tmp_path / "lr.png").stat().st_size > 0


def test_update_norms_a_and_b_per_layer(metrics_csv: Path, tmp_path: Path) -> None:
    """One A and one B line per selected layer, with 4 logged steps each."""
    fig = plot_update_norms(metrics_csv, layers="value", save_to=tmp_path / "upd.png")
    labels = sorted(line.get_label() for line in fig.axes[0].get_lines())
    assert labels == sorted(f"{n} {m}" for n in LAYERS[1::2] for m in "AB")
    assert all(len(line.get_xdata()) == 4 for line in fig.axes[0].get_lines())
    assert (tmp_path / "upd.png").exists()


def test_feature_terms_figure(metrics_csv: Path) -> None:
    """Top panel: δ¹, δ², δ³, ΔZ_B of the mean; bottom: the balance, from step 2 on (undefined at step 1)."""
    fig = plot_feature_terms(metrics_csv)
    top, bottom = fig.axes
    assert [line.get_label() for line in top.get_lines()] == ["δ¹ (via A)", "δ² (via B)", "δ³", "ΔZ_B"]
    assert list(bottom.get_lines()[0].get_xdata()) == [2.0, 3.0, 4.0]
    assert read_metrics(metrics_csv)["lora/feature/dZ/mean"][0] == [1.0, 2.0, 3.0, 4.0]


def test_missing_columns_are_explained(metrics_csv: Path) -> None:
    """Asking for a layer that was not logged names what is missing."""
    with pytest.raises(ValueError, match=r"No feature terms for layer 'nope'"):
        plot_feature_terms(metrics_csv, layer="nope")


def test_missing_matplotlib_has_a_clear_error(metrics_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without matplotlib, drawing raises ImportError with the install command (import of the module works)."""
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'lit-loraplus\[plots\]'"):
        plot_learning_rates(metrics_csv)
