"""A tiny PEFT LoRA LightningModule for the callback tests, and the DDP run they launch as a subprocess.

``strategy="ddp"`` inside pytest would re-launch pytest as rank 1, so the DDP test runs::

    OMP_NUM_THREADS=1 python tests/ddp_callbacks_script.py --devices 2 --out DIR

which trains 2 CPU processes (gloo) with both monitors and writes ``DIR/metrics.csv`` (rank 0) and
``DIR/calls_rank<r>.json``: the ``lora/`` keys each rank handed to its logger.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger
from peft import LoraConfig, get_peft_model
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from transformers import BertConfig, BertForSequenceClassification

from lit_loraplus.callbacks import FeatureLearningMonitor, UpdateNormMonitor
from lit_loraplus.core.optim import configure_loraplus_optimizers, create_loraplus_optimizer

VOCAB = 128
LAYERS = [f"bert.encoder.layer.{i}.attention.self.{m}" for i in (0, 1) for m in ("query", "value")]


def read_rows(out: Path) -> list[dict[str, float]]:
    """metrics.csv as one dict per logged step (rows of the same step merged), empty cells dropped."""
    by_step: dict[float, dict[str, float]] = {}
    with open(out / "metrics.csv") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if v != ""}
            by_step.setdefault(values["step"], {}).update(values)
    return [by_step[s] for s in sorted(by_step)]


def lora_bert(
    hidden: int = 32,
    targets: tuple[str, ...] = ("query", "value"),
    init2: bool = False,
    dora: bool = False,
    seed: int = 0,
) -> torch.nn.Module:
    """A 2-layer BERT classifier from a config, dropout 0, wrapped with LoRA r=4, α=8, LoRA dropout 0.

    ``init2=True`` re-initialises as the paper's Init[2] (B Kaiming-uniform, A = 0); ``dora`` uses DoRA.
    """
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2,
    )
    lora = LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=8, lora_dropout=0.0, target_modules=list(targets), use_dora=dora
    )
    model = get_peft_model(BertForSequenceClassification(config), lora)
    if init2:
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_embedding_A" in name:
                torch.nn.init.zeros_(p.data)
            elif "lora_B" in name or "lora_embedding_B" in name:
                torch.nn.init.kaiming_uniform_(p.data, a=5**0.5)
    return model


class TokenTask(Dataset):
    """Synthetic token sequences; the label is whether token 1 is in the lower half of the vocabulary."""

    def __init__(self, n: int = 64, seq: int = 16, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, seq), generator=g)
        self.labels = (self.ids[:, 1] < VOCAB // 2).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


class LoraModule(pl.LightningModule):
    """Any LightningModule around a PEFT model; ``configure_optimizers`` uses lit_loraplus.

    Args:
        model: A PEFT LoRA model taking ``**batch`` and returning ``.loss``.
        lr: η_A.
        ratio: λ.
        sgd: Plain SGD (no momentum) instead of AdamW + constant schedule.
        grads: Gradients to inject after backward, by parameter name (replacing the real ones).
    """

    def __init__(
        self, model: torch.nn.Module, lr: float = 1e-2, ratio: float = 4.0, sgd: bool = False, grads: dict | None = None
    ) -> None:
        super().__init__()
        self.model, self.lr, self.ratio, self.sgd, self.grads = model, lr, ratio, sgd, grads or {}
        self.train_modes: list[bool] = []  # model.training seen by each training_step

    def forward(self, **batch: Any) -> Any:
        return self.model(**batch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.train_modes.append(all(m.training for m in self.model.modules()))
        return self.model(**batch).loss

    def on_after_backward(self) -> None:
        for name, p in self.model.named_parameters():
            if name in self.grads:
                p.grad = self.grads[name].clone()

    def configure_optimizers(self) -> Any:
        if self.sgd:
            return create_loraplus_optimizer(self.model, torch.optim.SGD, lr=self.lr, ratio=self.ratio)
        return configure_loraplus_optimizers(
            self.model, lr=self.lr, ratio=self.ratio, total_steps=1000, lr_schedule="constant"
        )


def trainer(out: Path, callbacks: list, max_steps: int, logger: Any = None, **kwargs: Any) -> pl.Trainer:
    """A quiet CPU trainer logging to ``out`` with a CSVLogger (unless ``logger`` is given)."""
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=CSVLogger(out, name="", version="") if logger is None else logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1,
        **kwargs,
    )


class RecordingCSVLogger(CSVLogger):
    """A CSVLogger that records, on every rank, the ``lora/`` keys it is asked to log."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lora_calls: list[list[str]] = []

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:  # not rank-zero-only: records all
        self.lora_calls.append(sorted(k for k in metrics if k.startswith("lora/")))
        super().log_metrics(metrics, step)  # rank-zero-only itself


def run(devices: int, out: Path, global_batch: int = 8, steps: int = 3) -> None:
    """Train ``steps`` steps on one global batch order: DDP ranks take interleaved halves of each batch."""
    model = LoraModule(lora_bert(), lr=1e-2, ratio=4.0)
    data, rank = TokenTask(n=global_batch * steps), int(os.environ.get("LOCAL_RANK", "0"))
    # Rank r takes samples r, r + devices, ... of each global batch; Lightning's own sampler would shuffle.
    sampler = DistributedSampler(data, num_replicas=devices, rank=rank, shuffle=False)
    loader = DataLoader(data, batch_size=global_batch // devices, sampler=sampler)
    logger = RecordingCSVLogger(out, name="", version="")
    callbacks = [
        UpdateNormMonitor(log_every_n_steps=1),
        FeatureLearningMonitor(log_every_n_steps=1, probe_batch_size=2),
    ]
    kwargs = {"strategy": "ddp", "devices": devices} if devices > 1 else {"devices": 1}
    trainer(out, callbacks, steps, logger=logger, use_distributed_sampler=False, **kwargs).fit(model, loader)
    (out / f"calls_rank{rank}.json").write_text(json.dumps(logger.lora_calls))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    run(args.devices, args.out)
