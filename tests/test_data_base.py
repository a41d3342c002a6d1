"""The shared data plumbing: padding, subsets, splits, one-time tokenization, resumable loaders, CLI schema."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from transformers import AutoModelForSequenceClassification

from lit_loraplus.data import GlueDataModule, PadCollator, TextClassificationDataModule, load_tokenizer
from lit_loraplus.data.base import encode_texts, sample_rows, split_rows


def _csv(path: Path, n: int = 40) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([f"row {i} " + "word " * (i % 7), "pos" if i % 3 else "neg"] for i in range(n))
    return path


def _module(path: Path, tokenizer: Path, **kwargs) -> TextClassificationDataModule:
    return TextClassificationDataModule(str(path), str(tokenizer), batch_size=4, **kwargs)


def test_pad_collator_pads_right_with_the_right_values_and_dtypes() -> None:
    """input_ids pad with the pad id, masks with 0, token labels with -100; float scalars stay float,
    fixed-size lists are stacked."""
    rows = [
        {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7], "score": 0.5, "c": [1, 2]},
        {"input_ids": [8], "attention_mask": [1], "labels": [8], "score": 2.0, "c": [1, 2]},
    ]
    batch = PadCollator(pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["score"].dtype == torch.float32 and batch["c"].shape == (2, 2) and batch["c"].dtype == torch.long


def test_sample_rows_is_seeded_in_file_order_and_keeps_all_without_n() -> None:
    """A subset is the same for the same seed, differs for another seed, keeps file order; None keeps all."""
    rows = list(range(100))
    a, b, c = sample_rows(rows, 10, 0), sample_rows(rows, 10, 0), sample_rows(rows, 10, 1)
    assert a == b and a != c and a == sorted(a) and len(a) == 10
    assert sample_rows(rows, None, 0) == rows and sample_rows(rows, 1000, 0) == rows


def test_split_rows_partitions_by_fraction() -> None:
    """Train and validation are disjoint, cover all rows, and validation holds round(fraction * n) rows."""
    train, val = split_rows(list(range(50)), 0.2, seed=3)
    assert len(val) == 10 and sorted(train + val) == list(range(50)) and not set(train) & set(val)


def test_load_tokenizer_pads_with_eos_when_there_is_no_pad_token(tmp_path: Path, tiny_llama_dir: Path) -> None:
    """A tokenizer saved without a pad token (like GPT-2's) comes back padding with its EOS token."""
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    reloaded = load_tokenizer(str(tmp_path))
    assert reloaded.pad_token == reloaded.eos_token == "<|eos|>"


def test_encode_texts_pairs_give_token_type_ids(minilm_path: Path) -> None:
    """A sentence pair is one sequence with two segments (BERT token_type_ids 0 then 1), truncated to max_length."""
    tokenizer = load_tokenizer(str(minilm_path))
    (example,) = encode_texts(tokenizer, [("a b c", "d e f " * 20)], [1], max_length=16)
    assert len(example["input_ids"]) == 16 and example["labels"] == 1
    assert example["token_type_ids"][1] == 0 and example["token_type_ids"][-1] == 1


def test_train_loader_resumes_mid_epoch_from_its_state(tmp_path: Path, minilm_path: Path) -> None:
    """A fresh module's train loader, given the state after 3 batches, yields exactly the remaining batches;
    the order is shuffled (not file order) and fixed by `seed`."""
    path = _csv(tmp_path / "d.csv")
    loader = _module(path, minilm_path, val_fraction=0.1).train_dataloader()
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    rest = [b["input_ids"].tolist() for b in it]
    resumed = _module(path, minilm_path, val_fraction=0.1).train_dataloader()
    resumed.load_state_dict(state)
    assert [b["input_ids"].tolist() for b in resumed] == rest and len(rest) == 6  # 36 train rows / 4
    order = [b["input_ids"][:, 2].tolist() for b in _module(path, minilm_path).train_dataloader()]
    other_seed = [b["input_ids"][:, 2].tolist() for b in _module(path, minilm_path, seed=1).train_dataloader()]
    assert order != other_seed and sum(order, []) != sorted(sum(order, []))


def test_setup_tokenizes_each_split_once(tmp_path: Path, minilm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """setup twice and two epochs of loaders tokenize train and validation once each (cached on the instance)."""
    dm = _module(_csv(tmp_path / "d.csv"), minilm_path)
    calls = []
    encode = dm._encode

    def counting_encode(rows: list) -> list:
        calls.append(len(rows))
        return encode(rows)

    monkeypatch.setattr(dm, "_encode", counting_encode)
    dm.setup("fit")
    dm.setup("fit")
    for _ in range(2):
        list(dm.train_dataloader()), list(dm.val_dataloader())
    assert calls == [36, 4]


def test_eval_batch_size_defaults_to_batch_size_and_bad_settings_fail(tmp_path: Path, minilm_path: Path) -> None:
    """eval_batch_size falls back to batch_size; non-positive sizes are refused in one error naming each."""
    path = _csv(tmp_path / "d.csv")
    assert _module(path, minilm_path).eval_batch_size == 4
    assert next(iter(_module(path, minilm_path, eval_batch_size=3).val_dataloader()))["labels"].shape == (3,)
    with pytest.raises(
        ValueError, match=r"`batch_size=0` must be an integer >= 1.*`num_workers=-1` must be an integer >= 0"
    ):
        TextClassificationDataModule(str(path), str(minilm_path), batch_size=0, num_workers=-1)


def test_init_signature_is_a_cli_schema_with_loader_settings() -> None:
    """jsonargparse (LightningCLI) sees the module's own arguments and the shared loader settings, with help."""
    parser = ArgumentParser()
    parser.add_class_arguments(GlueDataModule, "data")
    actions = {a.dest: a for a in parser._actions}
    for name in ("task", "tokenizer", "data_dir", "mnli_dev", "batch_size", "eval_batch_size", "seed", "train_subset"):
        assert f"data.{name}" in actions, name
    assert "Rows per training batch" in actions["data.batch_size"].help


class _Recorder(LightningModule):
    """A tiny BERT classifier that records the rows of every training batch it sees."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__()
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        self.seen: list[list[int]] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen.append(batch["input_ids"][:, 2].tolist())  # the row number's token
        return self.model(**batch).loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(dm_args: tuple, model_dir: Path, ckpt_dir: Path, ckpt: Path | None = None, **dm_kwargs: object) -> list:
    trainer = Trainer(
        max_steps=24, limit_val_batches=0, logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=4, save_top_k=-1)],
    )  # fmt: skip
    module = _Recorder(model_dir)
    trainer.fit(module, datamodule=_module(*dm_args, **dm_kwargs), ckpt_path=ckpt)
    return module.seen


@pytest.mark.parametrize("group_by_length", [False, True])
def test_lightning_resumes_the_train_loader_mid_epoch(
    tmp_path: Path, tiny_bert_dir: Path, group_by_length: bool
) -> None:
    """Lightning checkpoints the StatefulDataLoader: resumed from the checkpoint taken after 12 of 24 batches
    (batch 3 of the second epoch of 9), a new run sees exactly the batches 13-24 of the uninterrupted run (no
    repeat, no skip), the rest of that epoch and the whole next one -- with the plain shuffle and with the
    length-grouped one (both ordered by seed and epoch)."""
    dm_args = (_csv(tmp_path / "d.csv"), tiny_bert_dir)
    kwargs = {"group_by_length": group_by_length}
    full = _fit(dm_args, tiny_bert_dir, tmp_path / "ckpt", **kwargs)
    tail = _fit(dm_args, tiny_bert_dir, tmp_path / "ckpt2", tmp_path / "ckpt" / "epoch=1-step=12.ckpt", **kwargs)
    assert len(full) == 24 and tail == full[12:]
    assert len(set(sum(full[:9], []))) == 36 and full[9:] != full[:5]  # epoch 0 sees every row; epoch 1 reshuffles


def test_evaluation_loaders_leave_the_global_random_generator_alone(tmp_path: Path, minilm_path: Path) -> None:
    """Iterating a validation (or training) loader draws its base seed from the loader's own generator, not
    torch's global one: evaluating does not shift dropout, and a checkpoint taken before a validation resumes
    exactly."""
    data = _module(_csv(tmp_path / "d.csv"), minilm_path, val_fraction=0.25)
    data.setup("fit")
    before = torch.get_rng_state()
    for loader in (data.val_dataloader(), data.train_dataloader()):
        next(iter(loader))
    assert torch.equal(torch.get_rng_state(), before)


def test_validation_subset_is_the_same_rows_for_every_seed(tmp_path: Path, minilm_path: Path) -> None:
    """`val_subset` samples the same validation rows whatever the run's seed (seeds are scored alike); the
    training subset follows the seed."""
    path, val = _csv(tmp_path / "d.csv", n=60), _csv(tmp_path / "v.csv", n=30)
    runs = [
        TextClassificationDataModule(str(path), str(minilm_path), val_file=str(val), seed=seed, val_subset=8,
                                     train_subset=10)
        for seed in (0, 1)
    ]  # fmt: skip
    for data in runs:
        data.setup("fit")
    assert runs[0].datasets["validation"] == runs[1].datasets["validation"]
    assert runs[0].datasets["train"] != runs[1].datasets["train"]
