"""Test-only plugins and callbacks for the scale tests' `lit-loraplus` subprocesses (tests/ is on PYTHONPATH)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from lit_loraplus.cli import LoraPlusCLI
from lit_loraplus.data import GlueDataModule
from lit_loraplus.training import AtomicCheckpointIO


class BlockAtStep(Callback):
    """Stop making progress at the start of ``step``: touch ``flag`` and sleep until killed from outside.

    Lets a test SIGKILL the process at a known step: checkpoints written before ``step`` are complete.

    Args:
        step: Global step at whose start the process blocks.
        flag: File created when it blocks.
    """

    def __init__(self, step: int, flag: str) -> None:
        self.step = step
        self.flag = flag

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step >= self.step:
            Path(self.flag).touch()
            while True:
                time.sleep(1)


class TornWriteCheckpointIO(AtomicCheckpointIO):
    """Simulate a crash in the middle of the ``crash_at``-th checkpoint write: half the bytes, then ``os._exit``.

    Args:
        crash_at: 1-based index of the save that dies half-way.
    """

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.saves = 0

    def _write(self, f: IO[bytes], data: memoryview) -> None:
        self.saves += 1
        if self.saves < self.crash_at:
            f.write(data)
            return
        f.write(data[: len(data) // 2])
        f.flush()
        os._exit(3)


class RankRecorder(Callback):
    """Per rank: every step's group learning rates (``<path>.rank<r>.jsonl``) and the final trainable weights
    (``<path>.rank<r>.pt``).

    Args:
        path: Path prefix.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        rows = [
            ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
        ]
        row = {"step": trainer.global_step, "lrs": {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}}
        row["rows"] = rows  # the unpadded examples of this rank's batch
        with open(f"{self.path}.rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = {n: p.detach().clone() for n, p in pl_module.named_parameters() if p.requires_grad}
        torch.save(state, f"{self.path}.rank{trainer.global_rank}.pt")


class SkewGroupsOnRank(Callback):
    """Make one rank's LoRA+ group description differ (as a different adapter file on one node would).

    Args:
        rank: The rank whose ``lora_B`` learning rate is doubled in the description.
    """

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank == self.rank:
            for group in pl_module._group_description:
                if group["name"] == "lora_B":
                    group["lr"] *= 2


class UnshuffledGlue(GlueDataModule):
    """GlueDataModule whose training loader keeps file order, ``eval_batch_size`` rows per batch per process.

    Under DDP it brings its own ``DistributedSampler(shuffle=False)`` (Lightning keeps a DistributedSampler it is
    given; its own would shuffle), so global batch k holds rows [kB, (k+1)B) exactly as one process with batch B.
    """

    def train_dataloader(self) -> StatefulDataLoader:
        loader = self._loader("train")
        if self.trainer is None or self.trainer.world_size == 1:
            return loader
        sampler = DistributedSampler(
            loader.dataset, num_replicas=self.trainer.world_size, rank=self.trainer.global_rank, shuffle=False
        )
        return StatefulDataLoader(
            loader.dataset, batch_size=self.eval_batch_size, sampler=sampler, collate_fn=loader.collate_fn
        )


class LossRecorder(Callback):
    """Keeps every training step's loss."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def fit_tiny(tmp: Path, model: Path, glue: Path, *extra: str, callbacks: list[Callback] = ()) -> LoraPlusCLI:
    """`LoraPlusCLI` in this process: the tiny model on 8 SST-2 rows in one batch, lr 1e-2 constant, CPU, no
    logger or checkpoint; `extra` flags and `callbacks` are added, then it fits."""
    args = [
        f"--model.model={model}",
        "--model.r=4",
        "--model.lr=0.01",
        "--model.lr_schedule=constant",
        "--data=lit_loraplus.data.GlueDataModule",
        "--data.task=sst2",
        f"--data.data_dir={glue}",
        "--data.train_subset=8",
        "--data.batch_size=8",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp}",
        "--trainer.max_steps=3",
        "--trainer.limit_val_batches=0",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]
    cli = LoraPlusCLI(args=args, run=False)
    cli.trainer.callbacks.extend(callbacks)
    cli.trainer.fit(cli.model, cli.datamodule)
    return cli
