"""Logger plumbing shared by the LoRA monitors: validation, cadence, W&B sections, logging from rank 0."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lit_loraplus.core.checks import int_at_least, raise_problems


def check_log_every(value: object, owner: str) -> int:
    """Return ``value`` if it is an int >= 1, else raise ``ValueError`` quoting it."""
    raise_problems(int_at_least("log_every_n_steps", value, 1, "optimizer steps"), f"{owner} settings")
    return value


def check_names(given: Sequence[str], valid: Sequence[str], arg: str, owner: str) -> tuple[str, ...]:
    """Return ``given`` as a tuple, or raise ``ValueError`` listing the unknown and the valid names."""
    if isinstance(given, str):
        given = (given,)
    unknown = [s for s in given if s not in valid]
    if unknown or not given:
        raise ValueError(f"{owner}({arg}={list(given)!r}): unknown or empty {unknown}. Valid names: {list(valid)}.")
    return tuple(given)


def require_logger(trainer: pl.Trainer, owner: str) -> None:
    """Fail at setup, not mid-run, when the trainer has nowhere to send metrics."""
    if not trainer.loggers:
        raise MisconfigurationException(
            f"Cannot use {owner} callback with Trainer that has no logger. Add one, e.g. "
            "`Trainer(logger=CSVLogger('logs'))` or `WandbLogger(offline=True)`, or drop the callback."
        )


def define_wandb_sections(trainer: pl.Trainer, prefix: str) -> None:
    """Declare ``<prefix>*`` against ``trainer/global_step`` on every W&B logger (no-op for others)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            logger.experiment.define_metric(f"{prefix}*", step_metric="trainer/global_step")


def due(trainer: pl.Trainer, every: int) -> bool:
    """Whether the optimizer step about to run is a logged one (the first step always is), on rank 0.

    Under DDP the parameters and reduced gradients are identical on every rank, so rank 0 alone
    measures and logs; nothing here is a collective, so the other ranks never wait on it.
    """
    return trainer.is_global_zero and trainer.global_step % every == 0


def log_metrics(trainer: pl.Trainer, metrics: Mapping[str, float]) -> None:
    """Send ``metrics`` to every logger at ``step = trainer.global_step`` (optimizer steps taken)."""
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=trainer.global_step)


def log_layer_table(
    trainer: pl.Trainer, key: str, layers: list[str], columns: list[str], last: Mapping[str, float], prefix: str
) -> None:
    """Log the last value of ``<prefix><column>/<layer>`` for every layer as a ``wandb.Table`` on W&B loggers.

    Other loggers get nothing; nothing is logged when ``last`` is empty (no step was measured).
    """
    if not last:
        return
    rows = [[layer] + [last.get(f"{prefix}{c}/{layer}", float("nan")) for c in columns] for layer in layers]
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(key=key, columns=["layer", *columns], data=rows, step=trainer.global_step)


def setup_fit_logging(trainer: pl.Trainer, stage: str, owner: str) -> None:
    """A monitor's ``setup``: for ``fit``, require a logger and declare the ``lora/`` W&B section.

    Args:
        trainer: The trainer.
        stage: The stage being set up; other stages need nothing.
        owner: The callback's name, for the error.
    """
    if stage == "fit":
        require_logger(trainer, owner)
        define_wandb_sections(trainer, "lora/")
