"""GlueDataModule: the four real GLUE tasks on disk, the five others from synthetic TSVs, the hub path mocked."""

from __future__ import annotations

import csv
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import torch

from lit_loraplus.data import GLUE_TASKS, GlueDataModule

# Synthetic files in the documented layouts (GLUE paper / HF glue card) for the tasks absent from shared/data.
_MNLI_TRAIN = ["index", "promptID", "pairID", "genre", "s1_bp", "s2_bp", "s1_p", "s2_p", "sentence1", "sentence2"]
_SYNTHETIC = {
    "MNLI": (
        [*_MNLI_TRAIN, "label1", "gold_label"],
        [["0", "1", "1e", "fiction", "", "", "", "", "A man sleeps.", "A man rests.", "x", "entailment"]]
        + [["1", "2", "2n", "fiction", "", "", "", "", "A dog.", "A big dog.", "x", "neutral"]]
        + [["2", "3", "3c", "fiction", "", "", "", "", "It rains.", "It is dry.", "x", "contradiction"]],
    ),
    "QQP": (
        ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
        [["0", "1", "2", "How old?", "What age?", "1"], ["1", "3", "4", "Why?", "Where?", "0"]],
    ),
    "QNLI": (
        ["index", "question", "sentence", "label"],
        [["0", "Who?", "Bob did.", "entailment"], ["1", "When?", "Blue.", "not_entailment"]],
    ),
    "RTE": (
        ["index", "sentence1", "sentence2", "label"],
        [["0", "Cats purr.", "Cats make sounds.", "entailment"], ["1", "It is red.", "It is blue.", "not_entailment"]],
    ),
    "WNLI": (
        ["index", "sentence1", "sentence2", "label"],
        [["0", "He ran.", "He moved.", "1"], ["1", "A b.", "C.", "0"]],
    ),
}


def _write_glue(root: Path, folder: str, files: tuple[str, ...] = ("train.tsv", "dev.tsv")) -> Path:
    header, rows = _SYNTHETIC[folder]
    (root / folder).mkdir(parents=True, exist_ok=True)
    for name in files:
        with (root / folder / name).open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE).writerows([header, *rows])
    return root


def _first_batch(dm: GlueDataModule, loader: str = "train") -> dict[str, torch.Tensor]:
    return next(iter(dm.train_dataloader() if loader == "train" else dm.val_dataloader()))


@pytest.mark.parametrize(
    ("task", "n_labels", "metrics", "dtype"),
    [
        ("sst2", 2, ["accuracy"], torch.long),
        ("cola", 2, ["accuracy", "matthews"], torch.long),
        ("mrpc", 2, ["accuracy", "f1"], torch.long),
        ("stsb", 1, ["pearson", "spearman"], torch.float32),
    ],
)
def test_real_glue_files(glue_dir: Path, minilm_path: Path, task: str, n_labels: int, metrics: list, dtype) -> None:
    """The real TSVs (CoLA without header, MRPC with a BOM, STS-B's 10 columns) give batches with the task's
    label type, and num_labels/metrics are set at construction."""
    dm = GlueDataModule(task, str(minilm_path), data_dir=str(glue_dir), train_subset=16, val_subset=8, batch_size=8)
    assert (dm.num_labels, dm.metrics, dm.task) == (n_labels, metrics, "sequence_classification")
    dm.setup("fit")
    batch = _first_batch(dm)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["labels"].dtype == dtype and batch["input_ids"].shape[0] == 8
    assert len(dm.datasets["validation"]) == 8


def test_real_glue_labels_and_pair_text_match_the_files(glue_dir: Path, minilm_path: Path) -> None:
    """MRPC's first dev row decodes to its two strings as a pair with label 1 (equivalent); CoLA dev's first
    row is the sentence of column 4 with label 1 (acceptable)."""
    mrpc = GlueDataModule("mrpc", str(minilm_path), data_dir=str(glue_dir), batch_size=2)
    row = mrpc._read("validation")[0]
    assert row == (("He said the foodservice pie business doesn 't fit the company 's long-term growth strategy .",
                     '" The foodservice pie business does not fit our long-term growth strategy .'), 1)  # fmt: skip
    assert mrpc._read("validation")[1][1] == 0 and len(mrpc._read("validation")) == 408
    cola = GlueDataModule("cola", str(minilm_path), data_dir=str(glue_dir))
    assert cola._read("validation")[0] == (("The sailors rode the breeze clear of the rocks.",), 1)
    assert cola.id2label == {0: "unacceptable", 1: "acceptable"}


@pytest.mark.parametrize(
    ("task", "folder", "first_labels"),
    [("qqp", "QQP", [1, 0]), ("qnli", "QNLI", [0, 1]), ("rte", "RTE", [0, 1]), ("wnli", "WNLI", [1, 0])],
)
def test_synthetic_pair_tasks(tmp_path: Path, minilm_path: Path, task: str, folder: str, first_labels: list) -> None:
    """QQP/QNLI/RTE/WNLI TSVs in the documented layouts map labels to the hub's ids and make pair batches."""
    dm = GlueDataModule(task, str(minilm_path), data_dir=str(_write_glue(tmp_path, folder)), batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["labels"].tolist() == first_labels and dm.num_labels == 2
    assert batch["token_type_ids"].max() == 1  # two segments: a sentence pair
    assert dm.metrics == (["accuracy", "f1"] if task == "qqp" else ["accuracy"])


def test_mnli_dev_sets(tmp_path: Path, minilm_path: Path) -> None:
    """MNLI maps entailment/neutral/contradiction to 0/1/2, validates on matched by default, and "both" gives
    two validation loaders named in val_splits."""
    root = _write_glue(tmp_path, "MNLI", ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"))
    dm = GlueDataModule("mnli", str(minilm_path), data_dir=str(root), batch_size=4)
    assert dm.val_splits == ["validation_matched"] and dm.id2label == {
        0: "entailment",
        1: "neutral",
        2: "contradiction",
    }
    assert _first_batch(dm, "val")["labels"].tolist() == [0, 1, 2]
    both = GlueDataModule("mnli", str(minilm_path), data_dir=str(root), mnli_dev="both")
    loaders = both.val_dataloader()
    assert isinstance(loaders, list) and len(loaders) == 2
    assert both.val_splits == ["validation_matched", "validation_mismatched"]


def test_bad_task_data_dir_and_mnli_dev_fail_at_construction(tmp_path: Path, minilm_path: Path) -> None:
    """An unknown task lists the nine; a folder without the split file names the file; mnli_dev off MNLI fails."""
    with pytest.raises(ValueError, match=r"`task='sst5'` is not a GLUE task: use one of \['cola', 'mnli'"):
        GlueDataModule("sst5", str(minilm_path), data_dir=str(tmp_path))
    _write_glue(tmp_path, "RTE", ("train.tsv",))
    with pytest.raises(FileNotFoundError, match=r"`data_dir`: expected the file .*RTE/dev\.tsv"):
        GlueDataModule("rte", str(minilm_path), data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"expected the file .*MNLI/dev_mismatched\.tsv"):
        GlueDataModule("mnli", str(minilm_path), data_dir=str(_write_glue(tmp_path, "MNLI")), mnli_dev="mismatched")
    with pytest.raises(ValueError, match="only with task='mnli'"):
        GlueDataModule("rte", str(minilm_path), mnli_dev="both")
    assert set(GLUE_TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}


def test_hub_path_loads_nyu_mll_glue(monkeypatch: pytest.MonkeyPatch, minilm_path: Path) -> None:
    """With data_dir=None the module calls datasets.load_dataset("nyu-mll/glue", task) once (network mocked
    at that call) and batches the hub's fields and labels."""
    calls = []
    hub = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"premise": ["a", "b"], "hypothesis": ["c", "d"], "label": [2, 0]}),
            "validation_matched": datasets.Dataset.from_dict({"premise": ["e"], "hypothesis": ["f"], "label": [1]}),
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: calls.append(args) or hub)
    dm = GlueDataModule("mnli", str(minilm_path), batch_size=2)
    dm.prepare_data()
    dm.setup("fit")
    assert calls == [("nyu-mll/glue", "mnli")]
    assert dm._read("train") == [(("a", "c"), 2), (("b", "d"), 0)]
    assert _first_batch(dm, "val")["labels"].tolist() == [1]


def test_offline_hub_error_says_to_pass_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, minilm_path: Path
) -> None:
    """Offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) with nothing cached, the real loader fails with an error
    that says the hub is unreachable and to pass data_dir."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    dm = GlueDataModule("sst2", str(minilm_path))
    with pytest.raises(ConnectionError, match=r"unreachable: offline mode is on.*Pass `data_dir`"):
        dm.prepare_data()
