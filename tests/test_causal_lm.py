"""Causal LM through LoraPlusModule: instruction tuning, perplexity metrics, MMLU scoring, generation."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
from lightning.pytorch.loggers import CSVLogger

from lit_loraplus.callbacks import JsonlPredictionWriter
from lit_loraplus.data import InstructionDataModule, MMLUDataModule
from lit_loraplus.training import LoraPlusModule


@pytest.fixture
def instructions(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"prompt": f"what {c} is true", "response": f"the {c} answer is yes"} for c in ("red", "blue") * 8]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_instruction_tuning_logs_perplexity_and_token_accuracy(tmp_path, tiny_llama_dir, instructions) -> None:
    """A tiny Llama fine-tunes 4 steps on instruction data; validation logs loss, perplexity = exp(token
    loss) and token accuracy in [0, 1]; prompt tokens carry no loss in the batches it trains on."""
    data = InstructionDataModule(str(instructions), str(tiny_llama_dir), batch_size=4, val_fraction=0.25)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()
    module = LoraPlusModule(str(tiny_llama_dir), task=data.task, metrics=data.metrics, r=4, lr=1e-2)
    trainer = L.Trainer(
        max_steps=4,
        logger=CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, data)
    metrics = trainer.validate(module, data, verbose=False)[0]
    assert 0 <= metrics["val/token_accuracy"] <= 1
    assert metrics["val/perplexity"] > 1
    # Perplexity is exp of the token-weighted mean loss; with equal-length rows the batch-mean loss matches.
    assert math.isfinite(metrics["val/loss"]) and metrics["val/perplexity"] == pytest.approx(
        math.exp(metrics["val/loss"]), rel=0.2
    )


def test_mmlu_validate_through_the_module(tiny_llama_dir, mmlu_dir) -> None:
    """`validate` with MMLUDataModule scores every question of the chosen subjects: accuracy in [0, 1]
    overall and per category, over the right number of questions."""
    subjects = ["abstract_algebra", "anatomy", "high_school_geography"]
    data = MMLUDataModule(str(mmlu_dir), str(tiny_llama_dir), k_shot=1, subjects=subjects, batch_size=8)
    module = LoraPlusModule(str(tiny_llama_dir), task=data.task, metrics=data.metrics, r=4)
    trainer = L.Trainer(logger=False, enable_progress_bar=False)
    metrics = trainer.validate(module, data, verbose=False)[0]
    assert 0 <= metrics["val/mmlu_accuracy"] <= 1
    assert {"val/mmlu_accuracy/STEM", "val/mmlu_accuracy/social sciences"} <= metrics.keys()
    expected = sum(len(open(mmlu_dir / "val" / f"{s}_val.csv").read().splitlines()) for s in subjects)
    assert metrics["val/mmlu_accuracy/questions"] == expected


def test_predict_writes_generated_text(tmp_path, tiny_llama_dir, instructions) -> None:
    """`predict` on a causal LM writes one JSON line per prompt with the generated continuation."""
    data = InstructionDataModule(str(instructions), str(tiny_llama_dir), batch_size=4, val_fraction=0.25)
    module = LoraPlusModule(str(tiny_llama_dir), task="causal_lm", r=4, max_new_tokens=5)
    out = tmp_path / "preds.jsonl"
    trainer = L.Trainer(logger=False, enable_progress_bar=False, callbacks=[JsonlPredictionWriter(str(out))])
    trainer.predict(module, data, return_predictions=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(data.datasets["predict"]) == 4  # the held-out quarter of 16 rows
    assert all(isinstance(r["generated"], str) and r["prompt"].startswith("what") for r in rows)
