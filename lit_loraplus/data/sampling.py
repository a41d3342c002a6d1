"""Resumable shuffles whose order depends only on (seed, epoch): plain, and grouped by length.

Both are ``DistributedSampler`` subclasses (Lightning keeps them under DDP instead of wrapping
them) whose state — the epoch, and the position inside it — goes into the ``StatefulDataLoader``'s
state, which Lightning checkpoints: a run resumed mid-epoch sees exactly the batches of the
uninterrupted run, in that epoch and every later one.

Length grouping: per-batch padding (:class:`~lit_loraplus.data.base.PadCollator`) pads every row
to the longest in its batch. With a plain shuffle a batch of 32 GLUE sentences is padded to its one
long outlier; grouping rows of similar length removes most of that padding (see the benchmarks'
fast paths) while the order stays random from epoch to epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler


class EpochOrderSampler(DistributedSampler):
    """Base of the resumable shuffles: :meth:`order` is a function of ``(seed, epoch)`` only.

    Every rank computes the same global order and takes the indices ``rank, rank + num_replicas, ...``
    (padded by repeating the first indices to a multiple of ``num_replicas``, like ``DistributedSampler``).

    Args:
        size: Rows in the dataset.
        seed: Seed of the order.
        num_replicas: Number of ranks (1: not distributed).
        rank: This process's rank.
    """

    def __init__(self, size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(size), num_replicas=num_replicas, rank=rank, shuffle=False, seed=seed)

    def generator(self) -> torch.Generator:
        """The generator of the current epoch's order."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)

    def order(self) -> list[int]:
        """All indices of the current epoch, in order (subclasses define it)."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        order += order[: self.total_size - len(order)]  # pad to a multiple of num_replicas
        return _Position(order[self.rank : self.total_size : self.num_replicas])

    def state_dict(self) -> dict[str, int]:
        """The epoch whose order is being served (``StatefulDataLoader`` saves it)."""
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore the epoch saved by :meth:`state_dict`."""
        self.epoch = state["epoch"]


class ShuffleSampler(EpochOrderSampler):
    """A plain random permutation per epoch, seeded by ``(seed, epoch)``: the training loaders' default.

    Example:
        >>> sampler = ShuffleSampler(6, seed=0)
        >>> first = list(sampler)
        >>> sampler.set_epoch(1)
        >>> sorted(first) == sorted(sampler) and first != list(sampler)
        True
    """

    def order(self) -> list[int]:
        """A random permutation of all indices for the current epoch."""
        return torch.randperm(len(self.dataset), generator=self.generator()).tolist()


class LengthGroupedSampler(EpochOrderSampler):
    """A seeded shuffle in which every run of ``batch_size`` indices holds rows of similar length.

    Each epoch: shuffle all indices; cut the permutation into mega-batches of
    ``batch_size × mega_batch_mult`` rows; sort each by length (longest first) and cut it into
    batches; shuffle the order of all batches (a short last batch stays last); move the batch that
    holds the longest row to the front, so that a batch too large for memory fails on the first
    step, not hours in. The order depends only on ``(seed, epoch)``; Lightning calls
    :meth:`set_epoch` every epoch. Resumable and distributed as every :class:`EpochOrderSampler`:
    the grouping is made for the *global* batch (``batch_size`` = per-device batch × ``num_replicas``),
    so each rank's batches come from the same length group.

    Args:
        lengths: The length (tokens) of every row, in dataset order.
        batch_size: Rows per global batch the grouping is made for.
        seed: Seed of the shuffle.
        mega_batch_mult: Batches per mega-batch. Larger groups tighter (less padding) but mixes
            lengths less across batches; 50 is Hugging Face ``Trainer``'s ``group_by_length`` value.
        num_replicas: Number of ranks (1: not distributed).
        rank: This process's rank.

    Raises:
        ValueError: If ``lengths`` is empty, ``batch_size`` / ``mega_batch_mult`` is below 1, or
            ``rank`` is not in ``[0, num_replicas)``.

    Example:
        >>> lengths = [5, 40, 6, 38, 7, 39]
        >>> order = LengthGroupedSampler(lengths, batch_size=2, seed=0).order()
        >>> [sorted(lengths[i] for i in order[k : k + 2]) for k in range(0, 6, 2)][0]  # longest batch first
        [39, 40]
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        mega_batch_mult: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if len(lengths) == 0:
            raise ValueError("LengthGroupedSampler(lengths=[]) has nothing to sample: the data split is empty.")
        for name, value in (("batch_size", batch_size), ("mega_batch_mult", mega_batch_mult)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LengthGroupedSampler({name}={value!r}) must be a positive integer.")
        self.lengths = list(lengths)
        super().__init__(len(self.lengths), seed=seed, num_replicas=num_replicas, rank=rank)
        self.batch_size, self.mega_batch_mult = batch_size, mega_batch_mult

    def order(self) -> list[int]:
        """All indices of the current epoch, batch after batch (see the class docstring)."""
        generator = self.generator()
        perm = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size * self.mega_batch_mult
        batches = []
        for start in range(0, len(perm), size):
            mega = sorted(perm[start : start + size], key=lambda i: -self.lengths[i])
            batches += [mega[i : i + self.batch_size] for i in range(0, len(mega), self.batch_size)]
        # Only the last batch can be short; it stays last so that every other run of `batch_size`
        # indices is one whole group.
        tail = [batches.pop()] if len(batches[-1]) < self.batch_size else []
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        if shuffled:
            longest = max(range(len(shuffled)), key=lambda b: self.lengths[shuffled[b][0]])
            shuffled.insert(0, shuffled.pop(longest))
        return [i for batch in shuffled + tail for i in batch]


class _Position(Iterator[int]):
    """An iterator over a fixed index list whose position is part of the loader's saved state."""

    def __init__(self, indices: list[int]) -> None:
        self.indices, self.position = indices, 0

    def __next__(self) -> int:
        if self.position >= len(self.indices):
            raise StopIteration
        self.position += 1
        return self.indices[self.position - 1]

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = state["position"]
