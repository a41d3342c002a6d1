"""GLUE: the nine tasks, from the original TSV download or from the hub (``nyu-mll/glue``)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lit_loraplus.core.resources import resolve_path
from lit_loraplus.data.base import Example, TokenizedDataModule, encode_texts
from lit_loraplus.data.files import read_table, require_columns, require_file

if TYPE_CHECKING:
    from datasets import DatasetDict

HUB_ID = "nyu-mll/glue"
TextsAndLabel = tuple[tuple[str, ...], int | float]


@dataclass(frozen=True)
class GlueTask:
    """How one GLUE task is laid out, in the TSV download and on the hub.

    Attributes:
        folder: Folder of the task in the GLUE download (``SST-2``).
        hub_fields: Text fields in ``nyu-mll/glue`` (one, or a pair).
        tsv_fields: The same fields' column names in the TSV files.
        tsv_label: Label column of the TSV files (the label is the hub's ``label`` field).
        label_names: Class names in the hub's id order; empty for regression (STS-B).
        metrics: Task metrics, as named in the data modules' ``metrics``.
        columns: Column names of a TSV without a header row (CoLA), else None.
    """

    folder: str
    hub_fields: tuple[str, ...]
    tsv_fields: tuple[str, ...]
    tsv_label: str
    label_names: tuple[str, ...]
    metrics: tuple[str, ...] = ("accuracy",)
    columns: tuple[str, ...] | None = None


_PAIR = ("sentence1", "sentence2")
_NLI2 = ("entailment", "not_entailment")
GLUE_TASKS: dict[str, GlueTask] = {
    "cola": GlueTask(
        "CoLA",
        ("sentence",),
        ("sentence",),
        "label",
        ("unacceptable", "acceptable"),
        ("accuracy", "matthews"),
        columns=("source", "label", "orig_label", "sentence"),
    ),
    "sst2": GlueTask("SST-2", ("sentence",), ("sentence",), "label", ("negative", "positive")),
    "mrpc": GlueTask(
        "MRPC", _PAIR, ("#1 String", "#2 String"), "Quality", ("not_equivalent", "equivalent"), ("accuracy", "f1")
    ),
    "qqp": GlueTask(
        "QQP",
        ("question1", "question2"),
        ("question1", "question2"),
        "is_duplicate",
        ("not_duplicate", "duplicate"),
        ("accuracy", "f1"),
    ),
    "stsb": GlueTask("STS-B", _PAIR, _PAIR, "score", (), ("pearson", "spearman")),
    "mnli": GlueTask(
        "MNLI", ("premise", "hypothesis"), _PAIR, "gold_label", ("entailment", "neutral", "contradiction")
    ),
    "qnli": GlueTask("QNLI", ("question", "sentence"), ("question", "sentence"), "label", _NLI2),
    "rte": GlueTask("RTE", _PAIR, _PAIR, "label", _NLI2),
    "wnli": GlueTask("WNLI", _PAIR, _PAIR, "label", ("not_entailment", "entailment")),
}
# Split name (the hub's) -> file in the task folder of the TSV download.
_FILES = {
    "train": "train.tsv",
    "validation": "dev.tsv",
    "validation_matched": "dev_matched.tsv",
    "validation_mismatched": "dev_mismatched.tsv",
}
_MNLI_DEV = {
    "matched": ["validation_matched"],
    "mismatched": ["validation_mismatched"],
    "both": ["validation_matched", "validation_mismatched"],
}


def load_glue_from_hub(task: str) -> DatasetDict:
    """``datasets.load_dataset("nyu-mll/glue", task)``, with an error that says what to do offline.

    Args:
        task: A key of :data:`GLUE_TASKS`.

    Returns:
        The task's ``datasets.DatasetDict``.

    Raises:
        ConnectionError: When the hub cannot serve the task (offline, unreachable, not cached).
    """
    import datasets  # imported here: only the hub path needs it

    try:
        return datasets.load_dataset(HUB_ID, task)
    except Exception as err:  # any failure here means "no data"; the cause is chained
        offline = datasets.config.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("", "0")
        why = "offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)" if offline else "it failed"
        raise ConnectionError(
            f"GlueDataModule(task={task!r}, data_dir=None) loads {HUB_ID} from the Hugging Face hub, which is "
            f"unreachable: {why} ({type(err).__name__}: {err}). Pass `data_dir` pointing to the original GLUE "
            f"download (folders {', '.join(t.folder for t in GLUE_TASKS.values())}), or connect to the hub."
        ) from err


class GlueDataModule(TokenizedDataModule):
    """A GLUE task for sequence classification (STS-B: regression), from TSV files or the hub.

    Labels follow the hub's order (``nyu-mll/glue``): e.g. MNLI entailment=0, neutral=1,
    contradiction=2; QNLI/RTE entailment=0, not_entailment=1. Validation is the GLUE dev set (the
    test labels are hidden, so there is no test loader). ``metrics``: "accuracy" always, plus "f1"
    for MRPC/QQP and "matthews" for CoLA; ["pearson", "spearman"] for STS-B.

    Batches: ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` if the tokenizer makes them),
    ``labels`` (long; float for STS-B), padded per batch.

    Args:
        task: One of cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli.
        tokenizer: The model's tokenizer: a hub id or a local model folder.
        data_dir: Folder of the original GLUE download (``<data_dir>/SST-2/train.tsv``, ...,
            ``MNLI/dev_matched.tsv``); None loads ``nyu-mll/glue`` from the hub.
        mnli_dev: MNLI only: validate on the "matched" dev set, the "mismatched" one, or "both"
            (two validation loaders, in that order; names in ``val_splits``).
        **loader_kwargs: Settings of :class:`~lit_loraplus.data.base.TokenizedDataModule`
            (max_length, batch_size, eval_batch_size, num_workers, pin_memory, seed, train_subset,
            val_subset, group_by_length).

    Attributes:
        num_labels: Classes (1 for STS-B).
        task: "sequence_classification".
        metrics: The task metrics the model should compute.
        id2label: Class id -> name.
        val_splits: Names of the validation loaders.

    Example:
        >>> dm = GlueDataModule("sst2", "roberta-base", data_dir="glue_data")  # doctest: +SKIP
    """

    def __init__(
        self,
        task: str,
        tokenizer: str,
        data_dir: str | None = None,
        mnli_dev: Literal["matched", "mismatched", "both"] = "matched",
        **loader_kwargs: Any,
    ) -> None:
        super().__init__(tokenizer, **loader_kwargs)
        name = task.lower().replace("-", "")
        if name not in GLUE_TASKS:
            raise ValueError(f"`task={task!r}` is not a GLUE task: use one of {sorted(GLUE_TASKS)}.")
        if mnli_dev not in _MNLI_DEV or (name != "mnli" and mnli_dev != "matched"):
            raise ValueError(
                f"`mnli_dev={mnli_dev!r}`: use 'matched', 'mismatched' or 'both', and only with task='mnli'."
            )
        self.glue_task, self.spec = name, GLUE_TASKS[name]
        self.val_splits = _MNLI_DEV[mnli_dev] if name == "mnli" else ["validation"]
        self.data_dir = Path(resolve_path(data_dir)) if data_dir is not None else None
        if self.data_dir is not None:  # fail now, not at the end of the first epoch
            for split in ["train", *self.val_splits]:
                require_file(self.data_dir / self.spec.folder / _FILES[split], "data_dir")
        self.task = "sequence_classification"
        self.metrics = list(self.spec.metrics)
        self.num_labels = len(self.spec.label_names) or 1
        self.id2label = dict(enumerate(self.spec.label_names)) or {0: "score"}
        self._hub: DatasetDict | None = None

    def prepare_data(self) -> None:
        """Download the task from the hub (rank 0 only) when ``data_dir`` is None."""
        if self.data_dir is None:
            self._hub = load_glue_from_hub(self.glue_task)

    def _read(self, split: str) -> list[TextsAndLabel]:
        if self.data_dir is None:
            self._hub = self._hub or load_glue_from_hub(self.glue_task)
            rows = self._hub[split]
            texts = zip(*(rows[f] for f in self.spec.hub_fields), strict=True)
            return list(zip(texts, rows["label"], strict=True))
        path = self.data_dir / self.spec.folder / _FILES[split]
        columns, rows = read_table(
            require_file(path, "data_dir"),
            delimiter="\t",
            quoting=csv.QUOTE_NONE,  # GLUE text holds stray '"'
            fieldnames=list(self.spec.columns) if self.spec.columns else None,
            encoding="utf-8-sig",  # MRPC's header starts with a byte-order mark
        )
        wanted = {f"{self.glue_task} text {i}": f for i, f in enumerate(self.spec.tsv_fields)} | {
            "label": self.spec.tsv_label
        }
        require_columns(path, columns, rows, wanted)
        return [(tuple(r[f] for f in self.spec.tsv_fields), self._label(r[self.spec.tsv_label], path)) for r in rows]

    def _label(self, raw: str, path: Path) -> int | float:
        """A TSV label as the hub's id: a class name (MNLI, QNLI, RTE), a digit, or an STS-B score."""
        names = self.spec.label_names
        if not names:
            return float(raw)
        if raw in names:
            return names.index(raw)
        if raw.isdigit() and int(raw) < len(names):
            return int(raw)
        raise ValueError(f"{path}: label {raw!r} is not one of {list(names)} nor an id below {len(names)}.")

    def _encode(self, rows: list[TextsAndLabel]) -> list[Example]:
        labels = [label for _, label in rows]
        return encode_texts(self.tokenizer, [texts for texts, _ in rows], labels, self.max_length)
