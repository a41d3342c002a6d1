"""The batches of an ``lr="auto"`` / ``ratio="auto"`` search: the run's own data, never its loaders' positions.

Trial and scoring batches are collated from index orders of our own over the *datasets* of the
loaders the trainer was given (a data module's ``train_dataloader()`` / ``val_dataloader()``, or the
loaders passed to ``fit``), with the loaders' own batch size and ``collate_fn``. No loader is
iterated, so the training loader's position, its sampler and every random generator stay as they
were. Under DDP each rank takes every ``world_size``-th index: its own shard, as in training.

- **Trial batches**: a permutation of the training rows seeded with ``search_seed`` (by default the run's
  seed: :func:`~lit_loraplus.training.search.rows_seed`).
- **Scoring batches**: rows of the validation set in a permutation seeded alike (never its first rows: a
  validation file sorted by label would score every cell on one class); without one (or when its batches
  carry no ``labels``, e.g. MMLU questions), or with ``score_on="train"``, rows held out from the front of
  the trial permutation, which no trial trains on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, IterableDataset


def _first_loader(loaders: Any) -> Any:
    """The first loader of what a ``*_dataloader()`` hook may return (a loader, a list, a dict, a CombinedLoader)."""
    if isinstance(loaders, CombinedLoader):
        loaders = loaders.flattened
    if isinstance(loaders, Mapping):
        loaders = list(loaders.values())
    if isinstance(loaders, Sequence):
        loaders = loaders[0] if loaders else None
    return loaders


_SEARCH = ("`lr='auto'`/`ratio='auto'` draws its batches", "set `model.lr` and `model.ratio`")


def _source_loader(source: Any, what: str, needs: tuple[str, str] = _SEARCH) -> DataLoader | None:
    """The first loader of a Lightning data source (what ``fit`` was given), or None if it defines none.

    ``needs`` is what reads the loader's dataset and the other way out, for the error."""
    if not source.is_defined():
        return None
    loader = _first_loader(source.dataloader())
    if loader is None:
        return None
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        raise ValueError(
            f"{needs[0]} from the {what} loader's dataset by index, but it is "
            f"{type(loader).__name__} over {type(getattr(loader, 'dataset', None)).__name__}: give a DataLoader "
            f"over a map-style dataset (one with __len__ and __getitem__), or {needs[1]}."
        )
    return loader


def training_label_mean(trainer: L.Trainer) -> tuple[float, int]:
    """The mean of the training rows' labels, read from the training loader's dataset by index (every row, so
    every rank gets the same number; no loader is iterated).

    Args:
        trainer: The fitting trainer.

    Returns:
        ``(mean, rows)``.

    Raises:
        ValueError: Without training data, for an iterable dataset, or for a row whose ``labels`` is not one
            number (a regression target).
    """
    needs = ("`head_bias='label_mean'` reads the labels", "set `model.head_bias` to 'model'")
    train = _source_loader(trainer.fit_loop._data_source, "training", needs)
    if train is None or not len(train.dataset):
        raise ValueError(f"{needs[0]} of the training rows, but `fit` was given none: give it training data.")
    total = 0.0
    for index in range(len(train.dataset)):
        row = train.dataset[index]
        label = row.get("labels") if isinstance(row, Mapping) else None
        if isinstance(label, torch.Tensor) and label.numel() == 1:
            label = label.item()
        if isinstance(label, bool) or not isinstance(label, (int, float)):
            raise ValueError(
                f"{needs[0]} of the training rows, but row {index} has `labels`={label!r} (not one number: rows "
                "must be dicts whose 'labels' is a regression target): fix the data, or "
                f"{needs[1]}."
            )
        total += float(label)
    return total / len(train.dataset), len(train.dataset)


def _batch_size(loader: DataLoader) -> int:
    size = loader.batch_size or getattr(loader.batch_sampler, "batch_size", None)
    if not size:
        raise ValueError(
            "`lr='auto'`/`ratio='auto'` needs the loader's batch size, but its batch sampler has none: give the "
            "DataLoader a `batch_size`, or set `model.lr` and `model.ratio`."
        )
    return size


def _collate(loader: DataLoader, rows: list[int], size: int) -> list[Any]:
    """Batches of ``size`` rows (the last one may be shorter), as ``loader`` would collate them."""
    return [loader.collate_fn([loader.dataset[i] for i in rows[k : k + size]]) for k in range(0, len(rows), size)]


def _has_labels(batch: Any) -> bool:
    return isinstance(batch, Mapping) and batch.get("labels") is not None


class SearchData:
    """The search's trial batches and held-out scoring batches for this rank.

    Args:
        trainer: The fitting trainer (its data sources are read, its loaders never iterated).
        trial_batches: Training batches the longest trial needs (its steps × gradient accumulation).
        score_batches: Batches that score a cell.
        score_on: ``"validation"``, ``"train"`` or ``"auto"`` (see
            :attr:`~lit_loraplus.core.search.SearchSettings.score_on`).
        seed: The seed of the permutation of the training rows (:attr:`~lit_loraplus.core.search.SearchSettings.seed`).

    Attributes:
        trial: The trial batches, in order (CPU); a trial's step k uses the k-th ``accumulate_grad_batches`` of them.
        score: The scoring batches (CPU).
        scored_on: ``"validation rows"`` or ``"held-out training rows"``.

    Raises:
        ValueError: For data the search cannot index (an iterable dataset, a loader without a batch size), or
            ``score_on="validation"`` without labelled validation batches.
    """

    def __init__(
        self, trainer: L.Trainer, trial_batches: int, score_batches: int, score_on: str = "auto", seed: int = 0
    ) -> None:
        # Lightning keeps what `fit` was given in these sources; asking them for loaders builds new ones (a data
        # module's hook) or returns the given ones, which are only read here, never iterated.
        train = _source_loader(trainer.fit_loop._data_source, "training")
        if train is None:
            raise ValueError("`lr='auto'`/`ratio='auto'` needs training data: `fit` was given no train loader.")
        world, rank = trainer.world_size, trainer.global_rank
        size = _batch_size(train)
        order = torch.randperm(len(train.dataset), generator=torch.Generator().manual_seed(seed)).tolist()
        shard = order[rank::world]
        validation = [] if score_on == "train" else self._validation(trainer, score_batches, world, rank, seed)
        if score_on == "validation" and not validation:
            raise ValueError(
                "`search_score_on='validation'` scores the search on validation batches, but `fit` has no validation "
                "data whose batches carry `labels`: give it validation data, or set `model.search_score_on` to "
                "'train' (held-out training rows) or 'auto'."
            )
        self.score, self.scored_on = validation, "validation rows"
        if not self.score:
            held = min(score_batches * size, len(shard) // 2)
            self.score, self.scored_on = _collate(train, shard[:held], size), "held-out training rows"
            shard = shard[held:]
        rows = [shard[i % len(shard)] for i in range(trial_batches * size)]
        self.trial = _collate(train, rows, size)

    @staticmethod
    def _validation(trainer: L.Trainer, batches: int, world: int, rank: int, seed: int) -> list[Any]:
        """``batches`` batches of validation rows, drawn by a permutation seeded with ``seed`` from this rank's shard
        of it (whatever the rows' order in their file), or [] without labelled validation data."""
        loader = _source_loader(trainer.fit_loop.epoch_loop.val_loop._data_source, "validation")
        if loader is None:
            return []
        size = _batch_size(loader)
        order = torch.randperm(len(loader.dataset), generator=torch.Generator().manual_seed(seed)).tolist()
        rows = order[rank::world][: batches * size]
        score = _collate(loader, rows, size)
        return score if score and all(_has_labels(b) for b in score) else []


def constant_loss(batches: Sequence[Mapping[str, Any]], task: str, num_labels: int | None) -> float | None:
    """The held-out loss of the best constant prediction on the scoring batches, averaged as a cell's score is.

    A classifier that predicts the rows' label balance for every row scores the entropy of that balance (cross
    entropy); a regressor that predicts their mean scores their variance (mean squared error). A search whose best
    cell scores no better has learned nothing beyond the class prior, so its choice says little.

    Args:
        batches: The scoring batches (each with ``labels``).
        task: The module's task; only ``sequence_classification`` has a constant baseline here.
        num_labels: 1 for regression, else the number of classes.

    Returns:
        The mean over batches of each batch's mean loss under the constant prediction; None for other tasks,
        multi-label targets or batches without labels.
    """
    labels = [batch["labels"] for batch in batches if "labels" in batch]
    if task != "sequence_classification" or not labels or len(labels) < len(batches):
        return None
    if num_labels == 1:
        mean = torch.cat([y.double().flatten() for y in labels]).mean()
        return float(torch.stack([((y.double().flatten() - mean) ** 2).mean() for y in labels]).mean())
    if any(y.is_floating_point() for y in labels):
        return None
    counts = torch.bincount(torch.cat([y.flatten() for y in labels]), minlength=num_labels or 0).double()
    log_p = (counts / counts.sum()).log()
    return float(torch.stack([-log_p[y.flatten()].mean() for y in labels]).mean())
