"""One run of the convergence benchmark: its settings, its JSON record, and training it with the package.

A run is one (task, init, η_A, λ, seed) cell: ``LoraPlusModule`` + a data module from
``lit_loraplus.data`` under a plain ``lightning.Trainer``, with the harness's ``CurveRecorder``
keeping (step, train loss), periodic held-out loss and task metrics, and the step/evaluation times
the budget arithmetic needs. The caller writes every record atomically when its run ends, so an
interrupted benchmark resumes by skipping the runs whose file exists.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from benchmarks.harness.curves import CurveRecorder
from benchmarks.harness.shapes import LLAMA_PROJECTIONS, MINILM_TARGETS
from lit_loraplus import LoraPlusModule
from lit_loraplus.data import GlueDataModule, InstructionDataModule, MMLUDataModule

GLUE_TASKS = ("sst2", "cola", "mrpc")
CAUSAL_TASK = "instruct"
TASK_METRIC = {"sst2": "accuracy", "cola": "matthews", "mrpc": "f1", CAUSAL_TASK: "token_accuracy"}
# Both inits on SST-2 only (the budget); PEFT's standard init elsewhere, since that is what users get.
TASK_INITS = {
    "sst2": ("standard", "loraplus"),
    "cola": ("standard",),
    "mrpc": ("standard",),
    CAUSAL_TASK: ("standard",),
}
GLUE_TARGETS = list(MINILM_TARGETS)
LLAMA_TARGETS = list(LLAMA_PROJECTIONS)


@dataclass(frozen=True)
class TaskSetting:
    """How long and on how much data one task's runs train.

    Attributes:
        steps: Optimizer steps per run (a multiple of ``eval_every``, so the last evaluation is the final one).
        eval_every: Steps between held-out evaluations (the resolution of the learning curves).
        batch_size: Training rows per step.
        max_length: Longest tokenized row.
        train_subset: Training rows kept (a seeded sample), None for all.
        val_subset: Held-out rows kept, None for all.
    """

    steps: int
    eval_every: int
    batch_size: int
    max_length: int
    train_subset: int | None
    val_subset: int | None


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid at one seed.

    Attributes:
        task: ``sst2``, ``cola``, ``mrpc`` or ``instruct``.
        init: ``standard`` (A random, B = 0) or ``loraplus`` (the paper's Init[2]).
        lr: η_A.
        ratio: λ = η_B / η_A (1 is plain LoRA).
        seed: Seed of the initialisation, the data subset and the shuffle order.
    """

    task: str
    init: str
    lr: float
    ratio: float
    seed: int

    @property
    def run_id(self) -> str:
        """File-name-safe identifier, e.g. ``sst2-standard-lr0.001-ratio16-seed0``."""
        return f"{self.task}-{self.init}-lr{self.lr:.3g}-ratio{self.ratio:g}-seed{self.seed}"


@dataclass(frozen=True)
class Paths:
    """Where the inputs are and where a benchmark writes (everything under ``out``).

    Attributes:
        out: The results folder.
        glue_dir: Folder of the GLUE TSV download.
        mmlu_dir: Folder of the MMLU CSVs.
        model: The encoder for the GLUE tasks (folder or ``pkg://`` path).
        causal_model: The causal LM folder (transformers format).
    """

    out: Path
    glue_dir: Path
    mmlu_dir: Path
    model: str
    causal_model: str

    def run_file(self, spec: RunSpec) -> Path:
        """The JSON record of a run."""
        return self.out / "runs" / f"{spec.run_id}.json"

    def adapter_dir(self, spec: RunSpec) -> Path:
        """Where a causal run's adapter is saved (for the MMLU phase)."""
        return self.out / "adapters" / spec.run_id

    def instruction_file(self, split: str) -> Path:
        """The instruction set built from GLUE training rows (``train`` or ``val``)."""
        return self.out / "instructions" / f"{split}.jsonl"


def read_runs(out: Path) -> list[dict[str, Any]]:
    """Every finished run record under ``out/runs``, in file-name order."""
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]


def _data_module(spec: RunSpec, setting: TaskSetting, paths: Paths, tokenizer: str) -> Any:
    loader = {
        "max_length": setting.max_length,
        "batch_size": setting.batch_size,
        "eval_batch_size": 2 * setting.batch_size,
        "seed": spec.seed,
        "train_subset": setting.train_subset,
        "val_subset": setting.val_subset,
    }
    if spec.task == CAUSAL_TASK:
        return InstructionDataModule(
            str(paths.instruction_file("train")), tokenizer, val_file=str(paths.instruction_file("val")), **loader
        )
    return GlueDataModule(spec.task, tokenizer, data_dir=str(paths.glue_dir), **loader)


def build_run(spec: RunSpec, setting: TaskSetting, paths: Paths) -> tuple[Any, Any]:
    """The module and data module of one cell, seeded with its seed (shared by the runs and the ratio finder).

    GLUE arms follow the paper's GLUE recipe (App. C.1) apart from length and data: r = α = 8 on
    query/value, AdamW(0.9, 0.99, eps 1e-8), linear decay, no warm-up. The causal arm follows its
    Llama recipe (r 8, α 16, dropout 0.1, the 7 projections, AdamW(0.9, 0.999, eps 1e-6)) but decays
    linearly, as the short runs here need.

    Args:
        spec: The cell and seed.
        setting: Batch, length and subsets of the task.
        paths: Inputs.

    Returns:
        ``(LoraPlusModule, data module)``.
    """
    causal = spec.task == CAUSAL_TASK
    model = paths.causal_model if causal else paths.model
    L.seed_everything(spec.seed, verbose=False)
    data = _data_module(spec, setting, paths, model)
    if causal:
        optimizer = functools.partial(torch.optim.AdamW, betas=(0.9, 0.999), eps=1e-6)
        lora = {"task": "causal_lm", "r": 8, "alpha": 16.0, "dropout": 0.1, "target_modules": LLAMA_TARGETS}
    else:
        optimizer = functools.partial(torch.optim.AdamW, betas=(0.9, 0.99), eps=1e-8)
        lora = {"num_labels": data.num_labels, "id2label": data.id2label, "r": 8, "alpha": 8.0, "dropout": 0.1}
        lora["target_modules"] = GLUE_TARGETS
    module = LoraPlusModule(
        model, metrics=data.metrics, init=spec.init, lr=spec.lr, ratio=spec.ratio, lr_schedule="linear",
        optimizer=optimizer, **lora,
    )  # fmt: skip
    return module, data


def train_run(spec: RunSpec, setting: TaskSetting, paths: Paths, save_adapter: bool = False) -> dict[str, Any]:
    """Fine-tune one cell (:func:`build_run`) and return its record (settings, curves, final values, timings).

    Args:
        spec: The cell and seed.
        setting: Steps, evaluation cadence, batch, length and subsets of the task.
        paths: Inputs and outputs.
        save_adapter: Also save the trained adapter (causal runs: the MMLU phase scores it later).

    Returns:
        The run record written by the caller: ``spec``, ``setting``, ``train`` ([step, loss]), ``evals``,
        ``final`` (the last evaluation), ``timing`` (set-up, median wall and CPU seconds per step and per
        evaluation, the run's wall and CPU seconds).
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    module, data = build_run(spec, setting, paths)
    recorder = CurveRecorder()
    trainer = L.Trainer(
        max_steps=setting.steps,
        val_check_interval=setting.eval_every,
        check_val_every_n_epoch=None,  # count validation steps across epochs (small subsets)
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
        default_root_dir=paths.out / "_trainer",
    )
    trainer.fit(module, data)
    if save_adapter:
        module.save_adapter(str(paths.adapter_dir(spec)))
    timing = {
        "setup_s": recorder.first_step_at[0] - started if recorder.first_step_at else None,
        "setup_cpu_s": recorder.first_step_at[1] - cpu_started if recorder.first_step_at else None,
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu_started,
        "torch_threads": torch.get_num_threads(),
    }
    for key, values in (("step_s", recorder.step_times), ("step_cpu_s", recorder.step_cpu)):
        timing[key] = statistics.median(values) if values else None
    for key, values in (("eval_s", recorder.eval_times), ("eval_cpu_s", recorder.eval_cpu)):
        timing[key] = statistics.median(values) if values else None
    return {
        "spec": asdict(spec),
        "run_id": spec.run_id,
        "setting": asdict(setting),
        "metric": TASK_METRIC[spec.task],
        "train": recorder.train,
        "evals": recorder.evals,
        "final": recorder.evals[-1] if recorder.evals else {},
        "timing": timing,
    }


def mmlu_accuracy(
    paths: Paths, adapter: Path | None, k_shot: int, subset: int | None, subjects: list[str] | None, max_length: int
) -> dict[str, Any]:
    """MMLU val accuracy of the causal model, base or with a trained adapter, with its standard error.

    Args:
        paths: Inputs (``causal_model``, ``mmlu_dir``).
        adapter: A saved adapter folder, or None for the base model (LoRA's B·A = 0 at start).
        k_shot: Exemplars per prompt.
        subset: Questions sampled from val (None: all).
        subjects: Subjects (None: all 57).
        max_length: Longest prompt in tokens (exemplars are dropped to fit).

    Returns:
        ``{"accuracy", "n", "se"}`` with se = sqrt(p(1 − p)/n), ``k_shot``, and the wall and CPU seconds it took.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    model = paths.causal_model
    data = MMLUDataModule(
        str(paths.mmlu_dir), model, k_shot=k_shot, subjects=subjects, max_length=max_length, eval_batch_size=8,
        val_subset=subset,
    )  # fmt: skip
    module = LoraPlusModule(
        model, task="causal_lm", metrics=["mmlu_accuracy"], adapter=str(adapter) if adapter else None,
        target_modules=LLAMA_TARGETS,
    )  # fmt: skip
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    (metrics,) = trainer.validate(module, data, verbose=False)
    p, n = float(metrics["val/mmlu_accuracy"]), int(metrics["val/mmlu_accuracy/questions"])
    return {
        "accuracy": p,
        "n": n,
        "se": math.sqrt(p * (1 - p) / n),
        "k_shot": k_shot,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
    }
