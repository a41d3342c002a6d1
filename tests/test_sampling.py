"""LengthGroupedSampler: a permutation per epoch, batches of similar length, longest batch first, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from lit_loraplus.data import LengthGroupedSampler, TextClassificationDataModule


def _lengths(n: int = 203, seed: int = 0) -> list[int]:
    return torch.randint(3, 120, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    """Every index once per epoch; the same (seed, epoch) gives the same order, another epoch or seed another."""
    lengths = _lengths()
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(len(lengths))) and len(sampler) == len(lengths)
    assert list(LengthGroupedSampler(lengths, batch_size=8, seed=3)) == first
    sampler.set_epoch(1)
    assert sorted(sampler) == list(range(len(lengths))) and list(sampler) != first
    assert list(LengthGroupedSampler(lengths, batch_size=8, seed=4)) != first


def test_batches_are_contiguous_runs_of_the_length_order_and_the_longest_comes_first() -> None:
    """With one mega-batch holding every row, each full batch is a run of the rows sorted by length, so
    padding is the least any batching can give; the batch holding the longest row is first and the one
    short batch (203 = 25 × 8 + 3) is last."""
    lengths = _lengths()
    order = LengthGroupedSampler(lengths, batch_size=8, seed=0, mega_batch_mult=100).order()
    batches = _batches(order, 8)
    assert [len(b) for b in batches] == [8] * 25 + [3]
    ranked = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    runs = [sorted(lengths[i] for i in ranked[k : k + 8]) for k in range(0, 200, 8)]
    assert sorted(sorted(lengths[i] for i in b) for b in batches[:-1]) == sorted(runs)
    assert max(lengths) == max(lengths[i] for i in batches[0])
    # Not simply sorted: batch order is shuffled.
    assert [max(lengths[i] for i in b) for b in batches[1:-1]] != sorted(
        (max(lengths[i] for i in b) for b in batches[1:-1]), reverse=True
    )


def test_grouping_cuts_padding_against_a_plain_shuffle() -> None:
    """Padded tokens (batch × longest row, summed over batches) with the default mega-batch of 50 batches:
    far fewer than under a random permutation of the same rows."""
    lengths = _lengths(2000)

    def padded(order: list[int]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in _batches(order, 16))

    grouped = padded(LengthGroupedSampler(lengths, batch_size=16).order())
    shuffled = padded(torch.randperm(2000, generator=torch.Generator().manual_seed(0)).tolist())
    assert sum(lengths) <= grouped < 0.7 * shuffled


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lengths": []}, r"lengths=\[\]\) has nothing to sample"),
        ({"batch_size": 0}, r"batch_size=0\) must be a positive integer"),
        ({"mega_batch_mult": 2.5}, r"mega_batch_mult=2.5\) must be a positive integer"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    """An empty split and non-positive or fractional sizes are refused, quoting the setting and value."""
    with pytest.raises(ValueError, match=match):
        LengthGroupedSampler(**{"lengths": [3, 4], "batch_size": 2, **kwargs})


def test_data_module_option_groups_the_train_loader(tmp_path: Path, minilm_path: Path) -> None:
    """``group_by_length=True`` gives the train loader the sampler: over one epoch of real tokenized rows the
    padded width drops against the default shuffle, and every row is still seen once."""
    path = tmp_path / "d.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([" ".join(["word"] * (1 + (i * 37) % 50)), "pos" if i % 2 else "neg"] for i in range(200))

    def epoch(group: bool) -> tuple[int, list[int]]:
        dm = TextClassificationDataModule(str(path), str(minilm_path), batch_size=8, group_by_length=group)
        dm.setup("fit")
        batches = list(dm.train_dataloader())
        return sum(b["input_ids"].numel() for b in batches), sorted(sum((b["labels"].tolist() for b in batches), []))

    (grouped, labels), (plain, plain_labels) = epoch(True), epoch(False)
    assert labels == plain_labels and grouped < 0.7 * plain


def test_ranks_split_each_global_batch_of_one_length_group() -> None:
    """Two ranks (global batch 16 = 2 × 8): together they cover every index (203 rows: one index repeated to
    pad to 204, as DistributedSampler does); rank k's b-th batch of 8 is half of the b-th global batch."""
    lengths = _lengths()
    ranks = [list(LengthGroupedSampler(lengths, 16, seed=1, num_replicas=2, rank=k)) for k in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 102
    assert set(ranks[0] + ranks[1]) == set(range(203))
    global_batches = _batches(LengthGroupedSampler(lengths, 16, seed=1).order(), 16)
    for b, batch in enumerate(global_batches[:-1]):
        assert sorted(ranks[0][8 * b : 8 * b + 8] + ranks[1][8 * b : 8 * b + 8]) == sorted(batch)
    with pytest.raises(ValueError, match="rank"):
        LengthGroupedSampler(lengths, 16, num_replicas=2, rank=2)
