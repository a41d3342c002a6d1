"""End to end on real data: the packaged MiniLM (a real pretrained encoder) on GLUE SST-2 from
../shared/data/glue, and the offline quickstart exactly as the README runs it.

Marked slow (minutes on 2 CPU cores); CI runs them. Thresholds sit well below the values measured
with these exact settings and seeds (noted beside each case), so the tests are not flaky, yet
far above what an untrained model or a broken optimizer reaches.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import lightning as L
import pytest
from conftest import REPO

from lit_loraplus.data import GlueDataModule
from lit_loraplus.module import LoraPlusModule

pytestmark = pytest.mark.slow

# task, steps, metric, threshold. Measured with these settings (seed 0, 2 CPU cores): SST-2 dev accuracy
# 0.807 after 150 steps, 124 s (majority class 0.51). STS-B and CoLA are not here yet: with this model and
# <= 300 steps they stayed near chance in every setting tried (issue notes, 2026-11-29).
CASES = [
    ("sst2", 150, "val/accuracy", 0.70),
]


@pytest.mark.parametrize(("task", "steps", "metric", "threshold"), CASES, ids=[c[0] for c in CASES])
def test_minilm_learns_glue(task, steps, metric, threshold, minilm_path, glue_dir, tmp_path) -> None:
    """LoRA+ (λ = 16, standard init) on the real MiniLM lifts the task metric well past chance in a few
    hundred CPU steps."""
    L.seed_everything(0)
    data = GlueDataModule(task, str(minilm_path), data_dir=str(glue_dir), max_length=64, batch_size=32, val_subset=600)
    module = LoraPlusModule(
        str(minilm_path),
        num_labels=data.num_labels,
        id2label=data.id2label,
        metrics=data.metrics,
        target_modules=["query", "value"],
        lr=5e-4,
        ratio=16,
    )
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        val_check_interval=steps,  # one validation, after the last step (counted across epochs)
        check_val_every_n_epoch=None,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, data)
    value = float(trainer.callback_metrics[metric])
    print(f"{task}: {metric} = {value:.4f} after {steps} steps")
    assert value > threshold


def test_quickstart_runs_as_the_readme_says(tmp_path) -> None:
    """`lit-loraplus fit --config configs/quickstart.yaml`, offline, in a fresh folder: finishes, logs
    validation accuracy well above the majority class (0.42), and exports a PEFT adapter."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "lit_loraplus.cli", "fit", "--config", str(REPO / "configs/quickstart.yaml")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(next((tmp_path / "runs/quickstart").rglob("metrics.csv")))))
    accuracy = [float(r["val/accuracy"]) for r in rows if r.get("val/accuracy")]
    print("quickstart val/accuracy:", accuracy)
    assert len(accuracy) == 3 and accuracy[-1] > 0.6
    assert (tmp_path / "runs/quickstart/adapter/adapter_model.safetensors").exists()
