"""The benchmarks' shared harness (``benchmarks/harness/``) and layout: clocks, per-round ratios and verdicts, the
model and batch builders every script shares, results files, workers started as ``python -m <module>`` from the
repository root, and scripts that name their own command and sit in the index."""

from __future__ import annotations

import importlib
import json
import re

import pytest
import torch

from benchmarks.harness.clock import StepClock
from benchmarks.harness.models import llama, minilm_lora, split_batches, token_rows
from benchmarks.harness.paths import REPO
from benchmarks.harness.processes import rotated, spawn
from benchmarks.harness.results import json_ready, write_json_atomic
from benchmarks.harness.shapes import LLAMA_H512
from benchmarks.harness.stats import pair_ratios, spread, verdict

# Every script, as its module runs (`python -m <module>`).
SCRIPTS = [
    "benchmarks.performance.overhead",
    "benchmarks.performance.callback_overhead",
    "benchmarks.performance.fast_paths",
    "benchmarks.performance.memory_checkpointing",
    "benchmarks.evidence.v1",
    "benchmarks.evidence.toy_model",
    "benchmarks.estimates.scaling_sketch",
    "benchmarks.gpu_check",
]


def test_step_clock() -> None:
    """Step times are the gaps between marks after the warm-up; phase shares count spans that start inside
    the measured window, and ``other`` is the rest."""
    seen: list[int] = []
    clock = StepClock(on_mark=seen.append)
    clock.marks = [0.0, 1.0, 3.0, 6.0, 10.0]
    clock.span("forward", 0.5, 0.9)  # warm-up step: not counted
    clock.span("forward", 1.0, 2.0)
    clock.span("data", 5.0, 5.5)
    clock.span("forward", 6.0, 9.0)  # after the window of count=2
    assert clock.step_times(1) == [2.0, 3.0, 4.0]
    assert clock.step_times(1, count=2) == [2.0, 3.0]
    assert clock.shares(1, count=2) == pytest.approx({"forward": 0.2, "data": 0.1, "other": 0.7})
    clock.mark()
    assert seen == [5] and len(clock.marks) == 6


def test_ratios_and_verdicts() -> None:
    """Ratios are taken within each round, summarised by median and range; a target is met only when the
    whole range is at or below it."""
    runs = [
        [{"v": "base", "t": 2.0}, {"v": "x", "t": 2.2}],
        [{"v": "x", "t": 3.0}, {"v": "base", "t": 3.0}],
        [{"v": "base", "t": 1.0}, {"v": "x", "t": 0.9}],
    ]
    ratio = pair_ratios(runs, "v", "x", "base", ["t"])["t"]
    assert ratio["pairs"] == pytest.approx([1.1, 1.0, 0.9])
    assert (ratio["median"], ratio["min"], ratio["max"]) == pytest.approx((1.0, 0.9, 1.1))
    assert [verdict(ratio, t) for t in (1.1, 1.05, 0.8)] == ["met", "unclear", "missed"]
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "pairs": [3.0, 1.0, 2.0]}
    assert [rotated("abc", i) for i in range(4)] == [list("abc"), list("bca"), list("cab"), list("abc")]


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_minilm_lora_builder_puts_the_stated_adapter_on_query_and_value(dropout: float) -> None:
    """The one MiniLM + LoRA builder (the tiny BERT with ``smoke``) wraps query and value of every layer with the
    stated r, α and dropout, trains only those adapters and the fresh head, in train mode, and is seeded."""
    model = minilm_lora(r=8, alpha=16, dropout=dropout, smoke=True)
    config = model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (8, 16, dropout)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lora = {n for n in trainable if ".lora_" in n}
    assert len(lora) == 2 * 2 * 2  # 2 layers × (query, value) × (A, B)
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in lora} == {"query", "value"}
    assert all(".classifier." in n for n in trainable - lora) and model.training
    again = minilm_lora(r=8, alpha=16, dropout=dropout, smoke=True).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in model.state_dict().items())


def test_llama_builder_uses_the_shape_and_layers() -> None:
    """A Llama is built from the named shape with the asked layer count (random weights, seeded, train mode);
    ``smoke`` gives the tiny Llama of ``lit_loraplus.testing``."""
    model = llama(2, LLAMA_H512)
    assert model.config.num_hidden_layers == 2 and model.training
    assert {k: getattr(model.config, k) for k in LLAMA_H512} == LLAMA_H512
    torch.testing.assert_close(llama(2, LLAMA_H512).lm_head.weight, model.lm_head.weight, rtol=0, atol=0)
    assert llama(30, smoke=True).config.hidden_size == 32


def test_token_rows_and_batches() -> None:
    """Synthetic rows are seeded; classification labels are 0/1, causal labels are the ids; batches split the rows
    in order and drop a partial last batch."""
    rows = token_rows(10, 6, 50)
    assert rows["input_ids"].shape == (10, 6) and int(rows["input_ids"].max()) < 50
    assert set(rows["labels"].tolist()) <= {0, 1} and rows["labels"].shape == (10,)
    assert all(torch.equal(v, token_rows(10, 6, 50)[k]) for k, v in rows.items())
    causal = token_rows(4, 6, 50, "causal_lm")
    assert torch.equal(causal["labels"], causal["input_ids"])
    batches = split_batches(rows, 4)
    assert len(batches) == 2 and torch.equal(batches[1]["input_ids"], rows["input_ids"][4:8])


def test_results_are_strict_json_written_atomically(tmp_path) -> None:
    """Non-finite floats (a diverged run) become null at any depth; the file appears whole, with no temporary
    file left."""
    payload = {"loss": float("nan"), "grid": [[1.0, float("inf")], (2.0, -float("inf"))], "n": 3}
    assert json_ready(payload) == {"loss": None, "grid": [[1.0, None], [2.0, None]], "n": 3}
    path = tmp_path / "deep" / "run.json"
    write_json_atomic(path, payload)
    assert json.loads(path.read_text()) == json_ready(payload) and [p.name for p in path.parent.iterdir()] == [
        "run.json"
    ]


@pytest.mark.parametrize("module", SCRIPTS)
def test_every_script_names_its_module_command_and_is_indexed(module: str) -> None:
    """Each script imports as a module (no ``sys.path`` set-up), its docstring gives the ``python -m`` command it
    runs with, and ``benchmarks/README.md`` lists that command."""
    script = importlib.import_module(module if module != "benchmarks.evidence.v1" else f"{module}.__main__")
    assert callable(script.main)
    assert f"python -m {module} " in script.__doc__
    assert f"python -m {module}" in (REPO / "benchmarks" / "README.md").read_text()


def test_no_sys_path_edits_in_benchmarks_or_tests() -> None:
    """Benchmarks and tests import each other as packages from the repository root, never by editing the path."""
    edit = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*[+]?=")
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("benchmarks", "tests")
        for path in (REPO / folder).rglob("*.py")
        if edit.search(path.read_text())
    ]
    assert not offenders


@pytest.mark.subprocess
def test_spawn_runs_the_worker_as_a_module_from_the_repository_root(tmp_path, monkeypatch) -> None:
    """A worker starts as ``python -m <module>`` from the repository root whatever the current folder, and its last
    output line comes back as the result; a failing worker stops the benchmark with the worker's error."""
    monkeypatch.chdir(tmp_path)
    result = spawn("benchmarks.performance.memory_checkpointing", ["--arm", "on", "--smoke", "--steps", "1"])
    assert result["arm"] == "on" and result["peak_rss_mb"] > 0 and result["step_s"] > 0
    with pytest.raises(SystemExit, match=r"(?s)failed:.*invalid choice: 'sideways'"):
        spawn("benchmarks.performance.memory_checkpointing", ["--arm", "sideways"])


@pytest.mark.subprocess
def test_memory_checkpointing_smoke(tmp_path, run_python) -> None:
    """``--smoke`` runs both arms (checkpointing off and on) in worker processes and prints one table row each."""
    out = tmp_path / "memory.json"
    done = run_python("-m", "benchmarks.performance.memory_checkpointing", "--smoke", "--steps", "1", "--out", str(out))
    runs = json.loads(out.read_text())
    assert {arm: len(r) for arm, r in runs.items()} == {"off": 1, "on": 1}
    assert "| off |" in done.stdout and "| on |" in done.stdout
