"""MMLU k-shot prompts (Hendrycks et al., 2021) from the original CSV files.

Scored by :mod:`lit_loraplus.evaluation.mmlu` (metric ``mmlu_accuracy``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from lit_loraplus.core.resources import resolve_path
from lit_loraplus.data.base import Example, TokenizedDataModule
from lit_loraplus.data.files import read_table, require_file
from lit_loraplus.evaluation.mmlu import CATEGORIES, SUBJECT_CATEGORY, SUBJECTS

LETTERS = ("A", "B", "C", "D")
COLUMNS = ["question", *LETTERS, "answer"]  # the CSVs have no header
Question = tuple[str, dict[str, str]]  # (subject, CSV row)


def format_question(row: dict[str, str], with_answer: bool) -> str:
    """``"Question\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:"``, plus ``" X\\n\\n"`` for an exemplar."""
    text = row["question"] + "".join(f"\n{letter}. {row[letter]}" for letter in LETTERS) + "\nAnswer:"
    return text + f" {row['answer']}\n\n" if with_answer else text


def build_prompt(subject: str, exemplars: list[dict[str, str]], row: dict[str, str]) -> str:
    """The standard k-shot prompt: header, answered exemplars, then the question ending in "Answer:"."""
    header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    return header + "".join(format_question(e, True) for e in exemplars) + format_question(row, False)


def answer_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token id of each letter A-D as it follows "Answer:" in the prompt (the space-prefixed " A" of
    BPE/SentencePiece vocabularies; the bare letter for WordPiece).

    Found by tokenizing ``"Answer: X"`` and keeping what follows the tokens of ``"Answer:"`` (its
    last token where the space is a token of its own).

    Raises:
        ValueError: If two letters map to the same token.
    """
    prefix = tokenizer("Answer:", add_special_tokens=False)["input_ids"]
    ids = []
    for letter in LETTERS:
        full = tokenizer(f"Answer: {letter}", add_special_tokens=False)["input_ids"]
        ids.append(full[len(prefix)] if full[: len(prefix)] == prefix and len(full) == len(prefix) + 1 else full[-1])
    if len(set(ids)) != len(LETTERS):
        raise ValueError(f"The tokenizer maps the answer letters {LETTERS} to tokens {ids}, not 4 distinct ones.")
    return ids


class MMLUDataModule(TokenizedDataModule):
    """MMLU k-shot multiple choice, for evaluating a causal LM (``trainer.validate`` / ``trainer.test``).

    Each question is prompted in the standard format: "The following are multiple choice questions
    (with answers) about {subject}.\\n\\n", the first ``k_shot`` questions of the subject's dev file
    with their answers, then the question ending in "Answer:". A prompt longer than
    ``max_length`` drops exemplars (last first) until it fits; a zero-shot prompt still too long
    keeps its last ``max_length`` tokens. Score the batches with
    :class:`~lit_loraplus.evaluation.mmlu.MMLUAccuracy` (metric ``mmlu_accuracy``).

    ``val_dataloader`` serves ``eval_split``; ``test_dataloader`` serves the test split. There is
    no training split. Batches: ``input_ids``, ``attention_mask`` (padded right), ``answer`` (B,)
    in 0-3, ``choice_ids`` (B, 4) (see :func:`answer_token_ids`), ``category`` (B,) index into
    ``categories``, ``subject`` (B,) index into ``subjects``.

    Args:
        data_dir: Folder of the original MMLU CSVs: ``dev/``, ``val/``, ``test/`` holding
            ``<subject>_<split>.csv`` (no header: question, A, B, C, D, answer).
        tokenizer: The model's tokenizer: a hub id or a local model folder.
        k_shot: Exemplars per prompt (0-5: the dev files hold 5 per subject).
        eval_split: Split of the validation loader: "val" (~1.5k questions, fast) or "test" (~14k).
        subjects: Subjects to evaluate (default: all 57).
        max_length: Longest prompt in tokens.
        **loader_kwargs: Other settings of :class:`~lit_loraplus.data.base.TokenizedDataModule`
            (eval_batch_size, num_workers, pin_memory, seed; ``val_subset`` samples questions of
            ``eval_split``).

    Attributes:
        num_labels: None (no classifier head).
        task: "causal_lm".
        metrics: ["mmlu_accuracy"].
        categories: The four super-categories, in ``category`` index order.
        subjects: The evaluated subjects, in ``subject`` index order.
        choice_ids: The four answer-letter token ids (after ``setup``).
    """

    test_splits = ["test"]

    def __init__(
        self,
        data_dir: str,
        tokenizer: str,
        k_shot: int = 5,
        eval_split: Literal["val", "test"] = "val",
        subjects: list[str] | None = None,
        max_length: int = 1024,
        **loader_kwargs: Any,
    ) -> None:
        super().__init__(tokenizer, max_length=max_length, **loader_kwargs)
        problems = []
        if not 0 <= k_shot <= 5:
            problems.append(f"`k_shot={k_shot!r}` must be in 0-5 (the dev files hold 5 exemplars a subject).")
        if eval_split not in ("val", "test"):
            problems.append(f"`eval_split={eval_split!r}` must be 'val' or 'test'.")
        unknown = sorted(set(subjects or []) - set(SUBJECTS))
        if unknown:
            problems.append(f"`subjects` holds unknown subjects {unknown}; valid ones: {SUBJECTS}.")
        if problems:
            raise ValueError("Invalid MMLUDataModule settings: " + " ".join(problems))
        self.data_dir, self.k_shot, self.eval_split = Path(resolve_path(data_dir)), k_shot, eval_split
        self.subjects = list(subjects) if subjects else SUBJECTS
        self.val_splits = [eval_split]
        for split in ["dev", eval_split] if k_shot else [eval_split]:  # fail now, naming the file
            for subject in self.subjects:
                self._file(split, subject)
        self.task, self.metrics = "causal_lm", ["mmlu_accuracy"]
        self.num_labels, self.id2label = None, {}
        self.categories = list(CATEGORIES)
        self.choice_ids: list[int] = []

    def _file(self, split: str, subject: str) -> Path:
        return require_file(self.data_dir / split / f"{subject}_{split}.csv", "data_dir")

    def _rows(self, split: str, subject: str) -> list[dict[str, str]]:
        return read_table(self._file(split, subject), fieldnames=COLUMNS)[1]

    def _read(self, split: str) -> list[Question]:
        return [(subject, row) for subject in self.subjects for row in self._rows(split, subject)]

    def _encode(self, rows: list[Question]) -> list[Example]:
        self.choice_ids = answer_token_ids(self.tokenizer)
        dev = {s: self._rows("dev", s)[: self.k_shot] if self.k_shot else [] for s in {s for s, _ in rows}}
        examples = []
        for subject, row in rows:
            for k in range(len(dev[subject]), -1, -1):  # drop exemplars until the prompt fits
                input_ids = self.tokenizer(build_prompt(subject, dev[subject][:k], row))["input_ids"]
                if len(input_ids) <= self.max_length:
                    break
            input_ids = input_ids[-self.max_length :]  # zero-shot and still too long: keep the end
            examples.append(
                {
                    "input_ids": input_ids,
                    "attention_mask": [1] * len(input_ids),
                    "answer": LETTERS.index(row["answer"].strip()),
                    "choice_ids": self.choice_ids,
                    "category": self.categories.index(SUBJECT_CATEGORY[subject]),
                    "subject": self.subjects.index(subject),
                }
            )
        return examples

    def train_dataloader(self) -> Any:
        """MMLU has no training split: a clear error instead of a loader."""
        raise ValueError("MMLUDataModule is for evaluation: use `trainer.validate` or `trainer.test`, not `fit`.")
