"""MMLU: prompt format, subject categories, truncation, batch layout and the scoring function."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from lit_loraplus.data import CATEGORIES, SUBJECT_CATEGORY, MMLUDataModule, score_mmlu_batch
from lit_loraplus.data.mmlu import build_prompt

_ROW = {"question": "2+2?", "A": "3", "B": "4", "C": "5", "D": "6", "answer": "B"}


def _count(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f))


def test_category_map_covers_exactly_the_57_subjects_on_disk(mmlu_dir: Path) -> None:
    """Every subject file in val/ has a category, and no mapped subject lacks a file; four categories."""
    on_disk = {p.name.removesuffix("_val.csv") for p in (mmlu_dir / "val").glob("*_val.csv")}
    assert set(SUBJECT_CATEGORY) == on_disk and len(on_disk) == 57
    assert set(SUBJECT_CATEGORY.values()) == set(CATEGORIES) == {"STEM", "humanities", "social sciences", "other"}
    assert SUBJECT_CATEGORY["abstract_algebra"] == "STEM" and SUBJECT_CATEGORY["professional_law"] == "humanities"


def test_prompt_is_the_standard_format() -> None:
    """Header with the subject's spaces, answered exemplars ending in ' X\\n\\n', the question ending 'Answer:'."""
    prompt = build_prompt("high_school_math", [_ROW], {**_ROW, "question": "3+3?"})
    assert prompt == (
        "The following are multiple choice questions (with answers) about high school math.\n\n"
        "2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: B\n\n"
        "3+3?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    )


def test_score_mmlu_batch_reads_the_last_real_token() -> None:
    """Hand-built logits: the prediction is the best of the four choice ids at each row's last attended
    position (right padding), ignoring larger logits elsewhere; `correct` compares with `answer`."""
    logits = torch.zeros(2, 4, 10)  # (B, T, V)
    choice_ids = torch.tensor([[5, 6, 7, 8]] * 2)
    logits[0, 2, 7] = 3.0  # row 0 ends at position 2 -> C
    logits[0, 3, 5] = 9.0  # padding position: must be ignored
    logits[1, 3, 6] = 2.0  # row 1 ends at position 3 -> B
    logits[1, 3, 0] = 9.0  # not a choice id: must be ignored
    batch = {
        "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]),
        "choice_ids": choice_ids,
        "answer": torch.tensor([2, 0]),
    }
    predictions, correct = score_mmlu_batch(logits, batch)
    assert predictions.tolist() == [2, 1] and correct.tolist() == [True, False]


def test_tiny_llama_scores_every_val_question(mmlu_dir: Path, tiny_llama_dir: Path) -> None:
    """A random tiny Llama scores all val questions of three subjects: as many predictions as CSV rows, accuracy
    in [0, 1]; batches carry answer/category/subject indices and the four distinct choice ids; prompts fit."""
    subjects = ["abstract_algebra", "anatomy", "world_religions"]
    dm = MMLUDataModule(str(mmlu_dir), str(tiny_llama_dir), subjects=subjects, max_length=256, eval_batch_size=16)
    assert (dm.task, dm.metrics, dm.num_labels) == ("causal_lm", ["mmlu_accuracy"], None)
    dm.setup("validate")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    correct, categories = [], set()
    with torch.no_grad():
        for batch in dm.val_dataloader():
            assert batch["input_ids"].shape[1] <= 256 and batch["choice_ids"].shape == (len(batch["answer"]), 4)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            correct.append(score_mmlu_batch(logits, batch)[1])
            categories |= {dm.categories[i] for i in batch["category"].tolist()}
    n = sum(_count(mmlu_dir / "val" / f"{s}_val.csv") for s in subjects)
    assert torch.cat(correct).numel() == n and 0.0 <= torch.cat(correct).float().mean().item() <= 1.0
    assert categories == {"STEM", "other", "humanities"}
    # " A".." D" are single tokens of this BPE vocabulary: the ids must be exactly those
    assert dm.choice_ids == [dm.tokenizer(f" {c}", add_special_tokens=False)["input_ids"][0] for c in "ABCD"]


def test_long_prompts_drop_exemplars(mmlu_dir: Path, tiny_llama_dir: Path) -> None:
    """With a generous max_length prompts hold 5 exemplars; with a tight one they drop exemplars to fit."""

    def shots(max_length: int) -> list[int]:
        dm = MMLUDataModule(str(mmlu_dir), str(tiny_llama_dir), subjects=["anatomy"], max_length=max_length)
        dm.setup("validate")
        texts = [dm.tokenizer.decode(e["input_ids"]) for e in dm.datasets["val"]]
        assert all(t.rstrip().endswith("Answer:") for t in texts)
        return [t.count("Answer:") - 1 for t in texts]

    assert set(shots(10_000)) == {5}
    tight = shots(400)
    assert max(tight) < 5 and all(s >= 0 for s in tight)


def test_bad_settings_and_missing_files(mmlu_dir: Path, tmp_path: Path, tiny_llama_dir: Path) -> None:
    """Unknown subjects, k_shot > 5 and a bad eval_split fail in one error; a folder lacking a split file names
    it; MMLU refuses to serve a training loader."""
    with pytest.raises(ValueError, match=r"k_shot=6.*eval_split='train'.*unknown subjects \['astrology'\]"):
        MMLUDataModule(str(mmlu_dir), str(tiny_llama_dir), k_shot=6, eval_split="train", subjects=["astrology"])  # type: ignore[arg-type]
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match=r"`data_dir`: expected the file .*dev/anatomy_dev\.csv"):
        MMLUDataModule(str(tmp_path), str(tiny_llama_dir), subjects=["anatomy"])
    with pytest.raises(ValueError, match="is for evaluation"):
        MMLUDataModule(str(mmlu_dir), str(tiny_llama_dir), subjects=["anatomy"]).train_dataloader()
