"""One run of the evidence benchmark: its identity, where its record and checkpoint live, and training it.

Every run trains under the full-length schedule (linear decay over N steps). A rung run stops at the
rung step and leaves a Lightning checkpoint; the full run of the same cell resumes from it to N, so a
promoted cell is exactly a full run (the package saves the RNG state and the train loader is a
``StatefulDataLoader``; ``tests/test_evidence.py`` checks prefix + resume = uninterrupted).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from typing_extensions import override

import lit_loraplus
from benchmarks.evidence.common import Record
from benchmarks.evidence.tasks import Recipe, SelectionGlueDataModule
from benchmarks.harness.curves import CurveRecorder
from lit_loraplus import LoraPlusModule

Kind = Literal["pilot", "rung", "full", "seed", "auto"]
SELECTION_SEED = 0  # every selection run (pilot, rung, full); seed runs use fresh seeds 1, 2, ...


@dataclass(frozen=True)
class RunSpec:
    """One run.

    Attributes:
        task: GLUE task key.
        init: ``standard`` (PEFT: A random, B = 0) or ``loraplus`` (the paper's Init[2]).
        lr: η_A.
        ratio: λ = η_B / η_A (1: plain LoRA).
        seed: Seed of the initialisation and the data order.
        kind: ``pilot``, ``rung`` (stops at the rung step), ``full`` (rung run continued to N), ``seed``
            (a chosen cell on a fresh seed, scored on GLUE dev) or ``auto`` (a variant of the zero-tuning
            comparison on a fresh seed, scored on GLUE dev: :mod:`benchmarks.evidence.auto`).
        variant: The ``auto`` run's variant (empty for the grid's runs).
        settings: Further ``LoraPlusModule`` arguments, as ``(name, value)`` pairs (the search's settings).
    """

    task: str
    init: str
    lr: float | str
    ratio: float | str
    seed: int
    kind: Kind
    variant: str = ""
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def run_id(self) -> str:
        """File-name-safe id, e.g. ``sst2-standard-lr0.001-ratio8-seed0`` or ``sst2-standard-auto-seed1``."""
        if self.variant:
            return f"{self.task}-{self.init}-{self.variant}-seed{self.seed}"
        return f"{self.task}-{self.init}-lr{self.lr:.3g}-ratio{self.ratio:g}-seed{self.seed}"

    @property
    def evaluate_on(self) -> Literal["selection", "dev"]:
        """The split a run is scored on: dev for seed and auto runs, the selection split for the rest."""
        return "dev" if self.kind in ("seed", "auto") else "selection"


@dataclass(frozen=True)
class Paths:
    """Inputs and outputs.

    Attributes:
        out: Results folder (records under ``runs/``).
        ckpt: Folder of the rung checkpoints (outside version control).
        glue_dir: GLUE TSV folder.
        model: Encoder folder or ``pkg://`` path.
    """

    out: Path
    ckpt: Path
    glue_dir: Path
    model: str

    def record(self, spec: RunSpec) -> Path:
        """The JSON record of a run: ``runs/<task>/<kind>/<run id>.json``."""
        return self.out / "runs" / spec.task / spec.kind / f"{spec.run_id}.json"

    def checkpoint(self, spec: RunSpec) -> Path:
        """The rung checkpoint of a cell (shared by its rung and full runs)."""
        return self.ckpt / spec.task / f"{spec.run_id}.ckpt"


class StopAndSave(L.Callback):
    """Stop training after optimizer step ``step`` (after that step's validation) and save a checkpoint there.

    The checkpoint is written after the validation because creating a validation loader's iterator draws
    from the global torch generator: saved earlier, the resumed run would miss that draw and its dropout
    masks would differ from an uninterrupted run's. Written atomically (temp file + ``os.replace``).

    Args:
        step: Global step to stop at; a validation must fall on it.
        path: Checkpoint file.
    """

    def __init__(self, step: int, path: Path) -> None:
        self.step, self.path = step, path

    @override
    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            trainer.should_stop = True  # Lightning still runs the validation due at this step

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == self.step and not trainer.sanity_checking:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            trainer.save_checkpoint(tmp)
            os.replace(tmp, self.path)


def build_run(spec: RunSpec, recipe: Recipe, paths: Paths) -> tuple[LoraPlusModule, SelectionGlueDataModule]:
    """The module and data of a run, seeded with its seed.

    The paper's GLUE recipe (App. C.1) but for length: PEFT's standard init unless ``spec.init`` says
    otherwise, r = α = 8, LoRA dropout 0.1, AdamW(0.9, 0.99, eps 1e-8), linear decay, no warm-up, no weight
    decay; targets and head learning rate from the recipe.

    Args:
        spec: The run.
        recipe: The task's settings.
        paths: Inputs.

    Returns:
        ``(LoraPlusModule, data module)``.
    """
    L.seed_everything(spec.seed, verbose=False)
    data = SelectionGlueDataModule(
        recipe.task, paths.model, data_dir=str(paths.glue_dir), evaluate_on=spec.evaluate_on,
        selection_rows=recipe.selection_rows, max_length=recipe.max_length, batch_size=recipe.batch_size,
        eval_batch_size=recipe.eval_batch_size, seed=spec.seed, train_subset=recipe.train_subset,
        val_subset=recipe.val_subset,
    )  # fmt: skip
    module = LoraPlusModule(
        paths.model, num_labels=data.num_labels, id2label=data.id2label, metrics=data.metrics, r=8, alpha=8.0,
        dropout=0.1, target_modules=list(recipe.target_modules), init=spec.init, lr=spec.lr, ratio=spec.ratio,
        lr_schedule="linear", warmup_steps=0, head_lr=recipe.head_lr,
        optimizer=functools.partial(torch.optim.AdamW, betas=(0.9, 0.99), eps=1e-8),
        **{name: list(value) if isinstance(value, tuple) else value for name, value in spec.settings},
    )  # fmt: skip
    return module, data


def eval_every(spec: RunSpec, recipe: Recipe) -> int:
    """Steps between evaluations: N / curve_points for pilot, seed and auto runs, the rung step for rung/full runs."""
    return recipe.steps // recipe.curve_points if spec.kind in ("pilot", "seed", "auto") else recipe.rung_step


def train(spec: RunSpec, recipe: Recipe, paths: Paths, prefix: Record | None = None) -> Record:
    """Train one run and return its record.

    Args:
        spec: The run. A ``rung`` run stops at the rung step and writes the cell's checkpoint; a ``full``
            run resumes from that checkpoint (or, if it is gone, trains from step 0: the same computation).
        recipe: The task's settings.
        paths: Inputs and outputs.
        prefix: For a ``full`` run, the cell's rung record (its curve is the start of this run's curve).

    Returns:
        ``spec``, ``recipe``, ``evaluate_on``, ``train`` ([step, loss]), ``evals``, ``final`` (the last
        evaluation), ``resumed_from`` (step), ``search`` (what an ``"auto"`` setting searched and chose, else
        None), ``timing`` and ``versions``.
    """
    started = (time.perf_counter(), time.process_time())
    module, data = build_run(spec, recipe, paths)
    recorder = CurveRecorder(nested=True)
    callbacks: list[L.Callback] = [recorder]
    checkpoint = paths.checkpoint(spec)
    if spec.kind == "rung":
        callbacks.append(StopAndSave(recipe.rung_step, checkpoint))
    resume = spec.kind == "full" and checkpoint.exists()
    trainer = L.Trainer(
        max_steps=recipe.steps,  # the schedule always spans N, also for a run that stops at the rung
        val_check_interval=eval_every(spec, recipe),
        check_val_every_n_epoch=None,  # count evaluation intervals across epochs
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=paths.ckpt / "_trainer",
    )
    trainer.fit(module, data, ckpt_path=str(checkpoint) if resume else None)
    train_curve, evals = recorder.train, recorder.evals
    if resume and prefix is not None:
        start = recipe.rung_step
        train_curve = [p for p in prefix["train"] if p[0] <= start] + [p for p in train_curve if p[0] > start]
        evals = [e for e in prefix["evals"] if e["step"] <= start] + [e for e in evals if e["step"] > start]
    return {
        "run_id": spec.run_id,
        "spec": asdict(spec),
        "recipe": asdict(recipe),
        "evaluate_on": spec.evaluate_on,
        "train": train_curve,
        "evals": evals,
        "final": evals[-1] if evals else {},
        "resumed_from": recipe.rung_step if resume else None,
        "search": module.search_record,
        "timing": recorder.timing(started) | {"torch_threads": torch.get_num_threads()},
        "versions": {"lit_loraplus": lit_loraplus.__version__, "torch": torch.__version__,
                     "lightning": L.__version__, "python": sys.version.split()[0]},
    }  # fmt: skip
