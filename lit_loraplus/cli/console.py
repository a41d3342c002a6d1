"""What ``lit-loraplus`` prints: where a run writes, plain progress lines off a terminal, no known-harmless noise."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info

from lit_loraplus.callbacks import AdapterCheckpoint, AdapterExport, ProgressLines

# Third-party warnings that every run of the CLI triggers and that say nothing about the user's run. Each is
# (message regex, category); they are filtered only inside the `lit-loraplus` entry point, never on import.
KNOWN_HARMLESS = (
    (r".*`is_gradient_checkpointing` is deprecated", FutureWarning),  # transformers, called by PEFT
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated", Warning),  # torch pytree, called by Lightning
    (r".*'pin_memory' argument is set as true but no accelerator is found", UserWarning),  # torch on CPU
    (r".*The `srun` command is available on your system but is not used", Warning),  # Lightning outside SLURM
    (r".*'set_vital' is deprecated", UserWarning),  # torchdata's StatefulDataLoader, on every iterator
)


@contextmanager
def quiet_known_warnings() -> Iterator[None]:
    """Filter :data:`KNOWN_HARMLESS` warnings for the duration of a command (every other warning still shows)."""
    with warnings.catch_warnings():
        for message, category in KNOWN_HARMLESS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def use_progress_lines(trainer: L.Trainer) -> None:
    """Off a terminal, swap Lightning's progress bar (TQDM or Rich) for :class:`ProgressLines`: a bar redraws one
    line in place, which a log file shows as nothing, or as one long line, until the run ends.

    Args:
        trainer: The trainer, before ``fit``.
    """
    if sys.stdout.isatty() or any(isinstance(cb, ProgressLines) for cb in trainer.callbacks):
        return
    bars = [cb for cb in trainer.callbacks if isinstance(cb, ProgressBar)]
    if bars:
        for bar in bars:
            trainer.callbacks.remove(bar)
        trainer.callbacks.append(ProgressLines())


def describe_run(trainer: L.Trainer) -> None:
    """Say, in the run's first lines, where metrics, checkpoints and the adapter will be written.

    Args:
        trainer: The trainer, before ``fit``.
    """
    metrics = []
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            metrics.append(f"{logger.log_dir}/metrics.csv")
        elif isinstance(logger, WandbLogger):
            offline = getattr(logger, "_offline", False) or os.environ.get("WANDB_MODE") == "offline"
            offline = " (offline: upload later with `wandb sync <run folder>`)" if offline else ""
            metrics.append(f"W&B under {logger.save_dir or '.'}{offline}")
        else:
            metrics.append(f"{type(logger).__name__} under {logger.save_dir}")
    folders = [AdapterCheckpoint.folder(cb, trainer) for cb in trainer.checkpoint_callbacks]
    adapters = [cb.output_dir for cb in trainer.callbacks if isinstance(cb, AdapterExport)]
    rank_zero_info(f"lit-loraplus: metrics -> {'; '.join(metrics) or 'no logger'}")
    rank_zero_info(f"lit-loraplus: checkpoints -> {', '.join(folders) or 'none (checkpointing is off)'}")
    rank_zero_info(f"lit-loraplus: adapter -> {', '.join(adapters) or 'not exported (add AdapterExport)'}")
