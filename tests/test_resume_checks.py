"""Bad checkpoints and mismatched inputs fail before any training step, naming the setting, the value and the fix;
a full disk during a save keeps the previous checkpoint."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import IO

import lightning as L
import pytest
import torch

from lit_loraplus.callbacks import AdapterCheckpoint
from lit_loraplus.data import GlueDataModule, TextClassificationDataModule
from lit_loraplus.training import AtomicCheckpointIO, LoraPlusModule


class SteppedNothing(L.Callback):
    """Fails the test if a training step starts (the error had to come before)."""

    def on_train_batch_start(self, *args: object) -> None:
        raise AssertionError("a training step started")


def data(model: Path, glue: Path) -> GlueDataModule:
    return GlueDataModule("sst2", str(model), data_dir=str(glue), batch_size=4, train_subset=16, val_subset=8)


def trainer(root: Path, steps: int, *callbacks: L.Callback) -> L.Trainer:
    return L.Trainer(
        default_root_dir=root, max_steps=steps, logger=False, enable_progress_bar=False, limit_val_batches=0,
        callbacks=[AdapterCheckpoint(preempt_signals=[]), *callbacks],
    )  # fmt: skip


@pytest.fixture
def two_step_checkpoint(tmp_path: Path, tiny_bert_dir: Path, glue_dir: Path) -> Path:
    """last.ckpt of a 2-step run: r 4 on query/value, bias='all' (so the biases train, in a no-decay group)."""
    module = LoraPlusModule(str(tiny_bert_dir), num_labels=2, r=4, bias="all")
    trainer(tmp_path, 2).fit(module, data(tiny_bert_dir, glue_dir))
    return tmp_path / "checkpoints" / "last.ckpt"


def test_checkpoint_of_another_rank_is_refused_with_both_ranks(two_step_checkpoint: Path) -> None:
    """Loading an r-4 checkpoint into an r-8 module names the weight, both shapes and both ranks."""
    with pytest.raises(ValueError, match=r"lora_A\.default\.weight is \(4, 32\) in the checkpoint and \(8, 32\) here\. "
                       r"The checkpoint's LoRA rank is 4, this module's r is 8"):  # fmt: skip
        LoraPlusModule.load_from_checkpoint(two_step_checkpoint, r=8)


def test_resuming_with_another_group_layout_is_refused_before_a_step(
    tmp_path: Path, two_step_checkpoint: Path, tiny_bert_dir: Path, glue_dir: Path
) -> None:
    """The run trained biases (bias='all'); resuming it with bias='none' builds other optimizer groups: refused
    before the optimizer state is loaded or a step runs, listing both layouts and the settings that decide them."""
    module = LoraPlusModule(str(tiny_bert_dir), num_labels=2, r=4, bias="none")
    with pytest.raises(ValueError, match=r"(?s)optimizer has the LoRA\+ groups \[.*'no_decay'.*\] .*but these settings "
                       r"build \[.*\]\. Resume with the settings the run was trained with.*`model\.bias`"):  # fmt: skip
        trainer(tmp_path / "again", 4, SteppedNothing()).fit(
            module, data(tiny_bert_dir, glue_dir), ckpt_path=two_step_checkpoint
        )


def test_tokenizer_of_another_model_is_refused_before_a_step(tmp_path: Path, tiny_llama_dir: Path, minilm_path: Path):
    """A tokenizer with more tokens than the model's embedding (MiniLM's 30k-token one on a 400-token Llama) would
    index past the table: refused at fit start, naming both sizes and the fix."""
    csv = tmp_path / "rows.csv"
    csv.write_text("text,label\n" + "".join(f"row number {i},{i % 2}\n" for i in range(16)))
    rows = TextClassificationDataModule(str(csv), str(minilm_path), batch_size=4, val_fraction=0.25)
    module = LoraPlusModule(str(tiny_llama_dir), num_labels=rows.num_labels, r=4)
    sizes = r"`data\.tokenizer=.*` has 30522 tokens but the model's embedding has \d+ rows"
    with pytest.raises(ValueError, match=sizes + r".*Use the model's own tokenizer"):
        trainer(tmp_path, 2, SteppedNothing()).fit(module, rows)


class FullDisk(AtomicCheckpointIO):
    """Every write after the first fails as a full disk does."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def _write(self, f: IO[bytes], data: memoryview) -> None:
        self.writes += 1
        if self.writes > 1:
            f.write(data[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        f.write(data)


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path: Path) -> None:
    """The failed save leaves the previous file loadable, no temporary file, and an error naming the folder."""
    io, target = FullDisk(), tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, target)
    message = r"Could not write the checkpoint .*last\.ckpt \(No space left on device\); the previous checkpoint"
    with pytest.raises(OSError, match=message + r" there is intact\. Free space in .*`dirpath` at another disk"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, target)
    assert torch.load(target, weights_only=True)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
