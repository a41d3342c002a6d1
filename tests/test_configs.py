"""Every file in configs/ is a test case: it parses, instantiates with a tiny model, and the CPU-sized
ones fit 2 steps. GPU configs run with CPU overrides (accelerator, devices, strategy, precision)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lit_loraplus.cli import LoraPlusCLI

REPO = Path(__file__).resolve().parents[1]

CONFIGS = REPO / "configs"
TRAINER = str(CONFIGS / "trainer.yaml")
# configs/strategy/ holds trainer fragments (FSDP, DeepSpeed), tested in test_scale_strategies.py.
TASK_CONFIGS = sorted(
    p for p in CONFIGS.rglob("*.yaml") if p.name != "trainer.yaml" and not {"sweeps", "strategy"} & set(p.parts)
)


@pytest.fixture(autouse=True)
def _offline_run_dir(tmp_path, monkeypatch) -> None:
    """Configs write under runs/ relative to the working directory: keep that in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_every_config_opens_with_the_command_that_runs_it() -> None:
    """Each config's leading comment holds the `lit-loraplus fit` command naming that file."""
    assert len(TASK_CONFIGS) >= 11
    for path in TASK_CONFIGS:
        header = path.read_text().split("\n\n")[0]
        assert "lit-loraplus fit" in header and str(path.relative_to(REPO)) in header, path


@pytest.mark.parametrize("path", TASK_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_parses(path: Path, capsys) -> None:
    """`--print_config` on trainer.yaml + the config works and keeps LoRA+ settings."""
    with pytest.raises(SystemExit) as exit_info:
        LoraPlusCLI(args=["fit", "--config", TRAINER, "--config", str(path), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["ratio"] >= 1 and printed["model"]["lr"] > 0
    assert printed["optimizer"] is None  # never a top-level optimizer


def tiny_model_for(path: Path, tiny_bert_dir: Path, tiny_gpt2_dir: Path, tiny_llama_dir: Path) -> Path:
    name = path.name
    if name.startswith("gpt2"):
        return tiny_gpt2_dir
    if name.startswith("llama"):
        return tiny_llama_dir
    return tiny_bert_dir


@pytest.mark.parametrize("path", TASK_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_instantiates_with_tiny_model(
    path, tmp_path, tiny_bert_dir, tiny_gpt2_dir, tiny_llama_dir, cpu_overrides
) -> None:
    """Model, data and trainer of every config instantiate with the tiny model on CPU, and the model
    builds with the config's LoRA targets."""
    config = yaml.safe_load(path.read_text())
    extra = []
    if config["data"]["class_path"].endswith("InstructionDataModule"):
        jsonl = tmp_path / "flan.jsonl"
        jsonl.write_text("\n".join(json.dumps({"prompt": f"why {i}", "response": "yes"}) for i in range(8)))
        extra.append(f"--data.init_args.train_file={jsonl}")
    model = tiny_model_for(path, tiny_bert_dir, tiny_gpt2_dir, tiny_llama_dir)
    cli = LoraPlusCLI(
        args=["--config", TRAINER, "--config", str(path), f"--model.model={model}", *cpu_overrides, *extra], run=False
    )
    cli.model.configure_model()
    lora_names = [n for n, _ in cli.model.named_parameters() if ".lora_B." in n]
    assert lora_names, "no LoRA layer was built"
    assert cli.model.hparams.num_labels == cli.datamodule.num_labels


SMALL = [p for p in TASK_CONFIGS if p.name in ("quickstart.yaml", "roberta-base_sst2.yaml", "gpt2_sst2.yaml")]


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.name)
def test_small_config_fits_two_steps(
    path, tmp_path, tiny_bert_dir, tiny_gpt2_dir, tiny_llama_dir, glue_dir, cpu_overrides, tiny_run
) -> None:
    """CPU-sized configs fit 2 steps with the tiny model (GLUE from the local TSVs) and write a checkpoint
    or an exported adapter."""
    data = ["--data.init_args.train_subset=16", "--data.init_args.val_subset=8", "--data.init_args.batch_size=8"]
    if "glue" in path.parts:
        data.append(f"--data.init_args.data_dir={glue_dir}")
    model = tiny_model_for(path, tiny_bert_dir, tiny_gpt2_dir, tiny_llama_dir)
    base = [] if path.name == "quickstart.yaml" else ["--config", TRAINER]
    LoraPlusCLI(args=["fit", *base, "--config", str(path), f"--model.model={model}", *cpu_overrides, *tiny_run, *data])
    if path.name == "quickstart.yaml":
        assert (tmp_path / "runs/quickstart/adapter/adapter_model.safetensors").exists()
    else:
        assert (tmp_path / "runs" / path.stem / "checkpoints" / "last.ckpt").exists()
