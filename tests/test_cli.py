"""The `lit-loraplus` command: refusals before training, export, predict, help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from lit_loraplus.cli import ConfigError, LoraPlusCLI, main


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def base_args(model, glue_dir, root) -> list[str]:
    return [
        f"--model.model={model}",
        "--model.r=4",
        "--data=lit_loraplus.data.GlueDataModule",
        "--data.task=sst2",
        f"--data.data_dir={glue_dir}",
        "--data.train_subset=8",
        "--data.val_subset=8",
        "--data.batch_size=4",
        f"--trainer.default_root_dir={root}",
        "--trainer.max_steps=2",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.num_sanity_val_steps=0",
    ]


def test_top_level_optimizer_is_refused(tmp_path, tiny_bert_dir, glue_dir, capsys) -> None:
    """A config with a top-level `optimizer:` (plain LightningCLI would train one group over all parameters)
    is refused before anything is built, pointing at model.optimizer."""
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.1}}}))
    args = ["fit", "--config", str(config), *base_args(tiny_bert_dir, glue_dir, tmp_path)]
    with pytest.raises(ConfigError, match=r"top-level `optimizer:`.*single\s+group.*set `model.optimizer`"):
        LoraPlusCLI(args=args)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2  # refused before anything ran, as a bad command line is
    assert "lit-loraplus: error: A top-level `optimizer:`" in capsys.readouterr().err


def test_ckpt_path_last_without_checkpoint_is_an_error(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """`--ckpt_path last` with nothing to resume is an error (Lightning would warn and start over)."""
    args = ["fit", *base_args(tiny_bert_dir, glue_dir, tmp_path / "run")]
    args += ["--trainer.callbacks+=lit_loraplus.callbacks.AdapterCheckpoint", "--ckpt_path=last"]
    with pytest.raises(ConfigError, match=r"`--ckpt_path last` found no last.ckpt in \[.*run/checkpoints"):
        LoraPlusCLI(args=args)


def test_fit_then_export_and_predict_from_the_checkpoint(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """fit writes last.ckpt to <root>/checkpoints; `lit-loraplus export` turns it into a PEFT adapter;
    `predict` with the JSONL writer writes one row per validation example with probabilities."""
    root = tmp_path / "run"
    args = base_args(tiny_bert_dir, glue_dir, root) + ["--trainer.callbacks+=lit_loraplus.callbacks.AdapterCheckpoint"]
    LoraPlusCLI(args=["fit", *args])
    last = root / "checkpoints" / "last.ckpt"
    assert last.exists()
    main(["export", f"--ckpt_path={last}", f"--output_dir={tmp_path / 'adapter'}"])
    assert {"adapter_config.json", "adapter_model.safetensors", "loraplus.json"} <= {
        p.name for p in (tmp_path / "adapter").iterdir()
    }
    out = tmp_path / "preds.jsonl"
    predict = [a for a in args if "AdapterCheckpoint" not in a]
    predict += [
        "--trainer.callbacks+=lit_loraplus.callbacks.JsonlPredictionWriter",
        f"--trainer.callbacks.output_file={out}",
    ]
    LoraPlusCLI(args=["predict", *predict, f"--ckpt_path={last}", "--return_predictions=false"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8
    assert all(r["label"] in ("negative", "positive") and sum(r["probabilities"]) == pytest.approx(1) for r in rows)
    torch.manual_seed(0)


@pytest.mark.subprocess
def test_help_runs_as_a_program() -> None:
    """`python -m lit_loraplus.cli fit --help` lists the LoRA+ settings with their docstrings."""
    result = subprocess.run(
        [sys.executable, "-m", "lit_loraplus.cli", "fit", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--model.ratio RATIO" in result.stdout and "η_B/η_A" in result.stdout


def test_a_misspelt_setting_is_named_before_anything_is_built(tmp_path, tiny_bert_dir, glue_dir, capsys) -> None:
    """A key no class accepts (`--model.ratoi`, a typo of `ratio`) stops the command with a usage error that names
    it, before any model is loaded."""
    with pytest.raises(SystemExit) as exit_info:
        LoraPlusCLI(args=["fit", *base_args(tiny_bert_dir, glue_dir, tmp_path / "run"), "--model.ratoi=4"])
    assert exit_info.value.code == 2
    assert "ratoi" in capsys.readouterr().err
