"""``LoraPlusCLI``: LightningCLI wired for LoraPlusModule and the LoRA+ data modules.

The model states its name once: it is linked to the data module's tokenizer; the data module's
``task``, ``num_labels``, ``id2label`` and ``metrics`` are linked to the model. The optimizer is
``model.optimizer`` (a callable given the LoRA+ groups); a top-level ``optimizer:`` or
``lr_scheduler:`` — which plain LightningCLI would turn into one group over all parameters,
silently dropping LoRA+ — is refused.
"""

from __future__ import annotations

import os
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from lit_loraplus.callbacks import AdapterCheckpoint
from lit_loraplus.cli.console import describe_run, use_progress_lines
from lit_loraplus.data.base import TokenizedDataModule
from lit_loraplus.training.distributed import strategy_kind, strategy_problems
from lit_loraplus.training.module import LoraPlusModule
from lit_loraplus.training.precision import TRUE_HALF


class ConfigError(ValueError):
    """A configuration the CLI refuses before anything is built or trained (``lit-loraplus`` exits with code 2)."""


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Save ``config.yaml`` as LightningCLI does, and send the whole config to the logger (W&B, ...)."""

    @override
    def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if trainer.logger is not None:
            trainer.logger.log_hyperparams({"config": self.config.as_dict()})


class LoraPlusCLI(LightningCLI):
    """LightningCLI wired for LoRA+: links, refusal of top-level optimizers, strict ``--ckpt_path last``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", LoggerSaveConfigCallback)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("seed_everything_default", 0)
        # Crash-safe checkpoint files by default (see lit_loraplus.training.checkpoint_io); an explicit
        # `trainer.plugins` replaces this default, so keep AtomicCheckpointIO in it if you set plugins.
        trainer_defaults = dict(kwargs.pop("trainer_defaults", None) or {})
        trainer_defaults.setdefault("plugins", [{"class_path": "lit_loraplus.training.AtomicCheckpointIO"}])
        kwargs["trainer_defaults"] = trainer_defaults
        kwargs.setdefault("subclass_mode_data", True)
        # Our own optimizer handling: LightningCLI's would replace the LoRA+ groups.
        kwargs.setdefault("auto_configure_optimizers", False)
        super().__init__(LoraPlusModule, TokenizedDataModule, *args, **kwargs)

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.model", "data.init_args.tokenizer")
        for attribute in ("task", "num_labels", "id2label", "metrics"):
            parser.link_arguments(f"data.{attribute}", f"model.{attribute}", apply_on="instantiate")
        # Accepted only to be refused with a useful message (see before_instantiate_classes).
        for key in ("optimizer", "lr_scheduler"):
            parser.add_argument(
                f"--{key}", type=dict | str | None, default=None, help="Not supported: see --model.optimizer."
            )

    @override
    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        for key in ("optimizer", "lr_scheduler"):
            if config.get(key) is not None:
                raise ConfigError(
                    f"A top-level `{key}:` ({config.get(key)!r}) would replace LoRA+'s parameter groups with a single "
                    f"group over all parameters. Remove it and set `model.optimizer` (class_path/init_args without lr "
                    "or weight_decay) and the schedule with `model.lr_schedule`, `model.warmup_steps`, "
                    "`model.ratio_schedule`."
                )
        trainer = config.get("trainer")
        if trainer is None:
            return
        strategy = trainer.get("strategy")
        strategy = strategy.as_dict() if isinstance(strategy, Namespace) else strategy
        if problems := strategy_problems(strategy, trainer.get("accelerator")):
            raise ConfigError(" ".join(problems))
        if not strategy_kind(strategy):  # FSDP and DeepSpeed need their own precision plugins
            self._keep_adapters_fp32(trainer)

    @staticmethod
    def _keep_adapters_fp32(trainer: Namespace) -> None:
        """Swap ``precision: bf16-true``/``16-true`` for AdapterFP32Precision (LoRA matrices stay fp32)."""
        precision = str(trainer.get("precision"))
        if precision not in TRUE_HALF:
            return
        plugin = Namespace(
            class_path="lit_loraplus.training.precision.AdapterFP32Precision", init_args=Namespace(precision=precision)
        )
        plugins = trainer.get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
        trainer["plugins"] = [*plugins, plugin]
        trainer["precision"] = None

    def _resolve_ckpt_path(self) -> None:
        """``--ckpt_path last`` must find a last.ckpt; ``--ckpt_path auto`` resumes from one if it exists, else starts.

        ``auto`` is the requeue idiom: one command line serves the first launch and every relaunch of a
        preempted run. ``last`` stays strict, so a wrong folder is caught instead of silently starting over.
        """
        requested = self.config[self.subcommand].get("ckpt_path")
        if requested not in ("last", "auto"):
            return
        if requested == "auto" and self.subcommand != "fit":
            raise ConfigError(
                f"`--ckpt_path auto` resumes a `fit` if a checkpoint exists; `{self.subcommand}` needs a definite "
                "checkpoint: pass `--ckpt_path last` or a file."
            )
        folders = [AdapterCheckpoint.folder(cb, self.trainer) for cb in self.trainer.checkpoint_callbacks]
        found = [path for f in folders if os.path.exists(path := os.path.join(f, "last.ckpt"))]
        where = folders or "any folder (the trainer has no checkpoint callback)"
        if requested == "last" and not found:
            raise ConfigError(
                f"`--ckpt_path last` found no last.ckpt in {where}. "
                "Start without --ckpt_path (or with `--ckpt_path auto`), pass a checkpoint file, or point the "
                "checkpoint callback's `dirpath` at the run's folder."
            )
        if requested == "auto":
            self.config_init[self.subcommand]["ckpt_path"] = found[0] if found else None
            what = f"resuming from {found[0]}" if found else f"no last.ckpt in {where}: starting a new run"
            rank_zero_info(f"lit-loraplus: --ckpt_path auto: {what}")

    def before_fit(self) -> None:
        """Resolve ``--ckpt_path last``/``auto`` (Lightning would warn and start over) and say where the run writes."""
        self._resolve_ckpt_path()
        use_progress_lines(self.trainer)
        describe_run(self.trainer)

    def before_validate(self) -> None:
        """Refuse ``--ckpt_path last`` when there is nothing to evaluate."""
        self._resolve_ckpt_path()

    def before_test(self) -> None:
        """As :meth:`before_validate`."""
        self._resolve_ckpt_path()

    def before_predict(self) -> None:
        """As :meth:`before_validate`."""
        self._resolve_ckpt_path()
