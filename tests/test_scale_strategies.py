"""FSDP / DeepSpeed / QLoRA configuration: YAML files, refusals on a machine without CUDA, FSDP wrapping on CPU."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException

from lit_loraplus.cli import ConfigError, LoraPlusCLI, main
from lit_loraplus.training import LoraPlusModule
from lit_loraplus.training.distributed import strategy_problems

REPO = Path(__file__).resolve().parents[1]

STRATEGIES = sorted((REPO / "configs" / "strategy").glob("*.yaml"))
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def cpu_args(model: Path, glue: Path) -> list[str]:
    return [
        f"--model.model={model}",
        "--data=lit_loraplus.data.GlueDataModule",
        "--data.task=sst2",
        f"--data.data_dir={glue}",
        "--trainer.logger=false",
    ]


@pytest.mark.parametrize("path", STRATEGIES, ids=lambda p: p.name)
def test_strategy_config_opens_with_its_command_and_parses(path: Path, capsys) -> None:
    """Each configs/strategy file opens with the command that uses it and composes with a task config."""
    assert len(STRATEGIES) >= 3
    header = path.read_text().split("\ntrainer:")[0]
    assert "lit-loraplus fit" in header and str(path.relative_to(REPO)) in header
    task = str(REPO / "configs/llama/llama-7b_mnli.yaml")
    with pytest.raises(SystemExit):
        LoraPlusCLI(args=["fit", "--config", task, "--config", str(path), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["strategy"]["class_path"].split(".")[-1] in ("FSDPStrategy", "DeepSpeedStrategy")


def test_fsdp_config_wraps_transformer_blocks_by_no_split_modules() -> None:
    """fsdp.yaml instantiates an FSDPStrategy with use_orig_params=True (LoRA+ needs the original parameters) and
    the NoSplitModulesPolicy."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch.strategies import FSDPStrategy, Strategy

    parser = ArgumentParser()
    parser.add_argument("--strategy", type=Strategy)
    config = yaml.safe_load((REPO / "configs/strategy/fsdp.yaml").read_text())["trainer"]["strategy"]
    strategy = parser.instantiate_classes(parser.parse_object({"strategy": config})).strategy
    assert isinstance(strategy, FSDPStrategy)
    assert strategy.kwargs["use_orig_params"] is True
    assert type(strategy.kwargs["auto_wrap_policy"]).__name__ == "NoSplitModulesPolicy"


@pytest.mark.subprocess
def test_fsdp_on_cpu_keeps_roles_groups_and_names(child_env) -> None:
    """torch FSDP (gloo, CPU, 1 process; Lightning itself refuses the CPU) around tiny Llama / GPT-2 / BERT LoRA
    models: the policy wraps the transformer blocks (and BERT's embeddings, listed in its _no_split_modules) and
    each trainable leaf on its own, so no flat parameter mixes adapters with frozen weights; roles and groups built
    after wrapping equal those before, lora_B trains, and the full state dict holds every trainable parameter under
    its unwrapped name (what the adapter-only checkpoint keeps)."""
    env = child_env | {"MASTER_PORT": "29541"}
    script = REPO / "tests" / "fsdp_cpu_script.py"
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [json.loads(line) for line in result.stdout.splitlines() if line[:1] == "{"]
    rows = {r["model"]: r for r in printed if r["trainable_units"]}
    assert rows["llama"]["wrapped"] == ["Linear", "LlamaDecoderLayer"]  # the LoRA A/B linears are units of their own
    assert rows["gpt2"]["wrapped"] == ["GPT2Block", "Linear"]
    assert {"BertLayer", "Linear"} <= set(rows["bert"]["wrapped"])
    for row in rows.values():
        assert row["roles_equal"] and row["groups_equal"] and row["b_moved"] and row["trainable_in_full_state_dict"]
    for row in (rows["llama"], rows["gpt2"], rows["bert"]):
        # no flat parameter mixes adapters with frozen weights: no gradient is computed for a frozen weight, and a
        # bf16 base beside fp32 adapters (a bf16-mixed run of a bf16 checkpoint) can be wrapped at all
        assert row["mixed_flat_params"] == 0 and row["frozen_with_grad"] == 0 and row["bf16_base_wraps"]
    # embedding LoRA (A/B in ParameterDicts, as with PEFT's own policy) trains, inside the embeddings' unit
    assert rows["bert-embedding"]["mixed_flat_params"] == 1 and not rows["bert-embedding"]["bf16_base_wraps"]
    assert rows["bert"]["groups"] == ["lora_A", "lora_B", "saved", "saved_no_decay"]
    (blocks_only,) = [r for r in printed if not r["trainable_units"]]  # what wrapping the blocks alone gives
    assert blocks_only["mixed_flat_params"] > 0 and blocks_only["frozen_with_grad"] > 0
    assert not blocks_only["bf16_base_wraps"] and "uniform dtype" in blocks_only["bf16_error"]


@no_cuda
@pytest.mark.parametrize("name", ["fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_gpu_strategies_on_cpu_are_refused_before_training(name, tiny_bert_dir, glue_dir, capsys) -> None:
    """FSDP or DeepSpeed on a machine without CUDA stops before anything is built, saying a GPU is needed (and,
    for DeepSpeed when absent, what to install); `lit-loraplus` prints it as an error."""
    args = ["fit", "--config", str(REPO / f"configs/strategy/{name}.yaml"), *cpu_args(tiny_bert_dir, glue_dir)]
    with pytest.raises(ConfigError, match=r"needs CUDA GPUs.*torch.cuda.is_available\(\)=False") as error:
        LoraPlusCLI(args=args)
    deepspeed_missing = "deepspeed" in name and "pip install deepspeed" in str(error.value)
    assert deepspeed_missing == ("deepspeed" in name and not _installed("deepspeed"))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert re.search(r"lit-loraplus: error: `trainer.strategy=(fsdp|deepspeed)` needs CUDA", capsys.readouterr().err)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_strategy_problems_by_name_and_instance() -> None:
    """Strategy names, class paths and instances are recognised; DDP and auto never are a problem."""
    from lightning.pytorch.strategies import DDPStrategy

    assert strategy_problems("ddp", "cpu") == [] and strategy_problems(DDPStrategy(), "cpu") == []
    assert strategy_problems("auto", "auto") == []
    assert strategy_problems("fsdp", "cpu") and strategy_problems({"class_path": "x.DeepSpeedStrategy"}, "cpu")


@no_cuda
def test_too_many_gpus_keeps_lightnings_message(tiny_bert_dir, glue_dir) -> None:
    """Asking for GPU devices that are not there ends with Lightning's own error, not a swallowed or generic one."""
    args = ["fit", *cpu_args(tiny_bert_dir, glue_dir), "--trainer.accelerator=gpu", "--trainer.devices=2"]
    args.append("--trainer.strategy=ddp")
    with pytest.raises(MisconfigurationException, match="No supported gpu backend found"):
        LoraPlusCLI(args=args)


@no_cuda
def test_qlora_without_cuda_says_what_it_needs() -> None:
    """`quantization: 4bit` (QLoRA) on a machine without CUDA is refused at construction, naming the setting, that a
    CUDA GPU is needed, and bitsandbytes if it is absent; a bad value is refused too."""
    with pytest.raises(ValueError, match=r"`quantization='4bit'` \(QLoRA\) needs a CUDA GPU") as error:
        LoraPlusModule("unused", quantization="4bit")
    assert ("pip install bitsandbytes" in str(error.value)) == (not _installed("bitsandbytes"))
    with pytest.raises(ValueError, match=r"`quantization='3bit'` must be '4bit', '8bit' or null"):
        LoraPlusModule("unused", quantization="3bit")


def test_qlora_config_keeps_the_paper_setup_and_parses(capsys) -> None:
    """configs/llama/llama-7b_mnli_qlora.yaml is llama-7b_mnli.yaml's LoRA+ setup with a 4-bit base."""
    path = REPO / "configs/llama/llama-7b_mnli_qlora.yaml"
    with pytest.raises(SystemExit):
        LoraPlusCLI(args=["fit", "--config", str(path), "--print_config"])
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model["quantization"] == "4bit" and model["ratio"] == 4 and model["r"] == 8 and model["alpha"] == 16
    assert len(model["target_modules"]) == 7


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "command", [["-m", "benchmarks.gpu_check"], ["benchmarks/gpu_check.py"]], ids=["module", "file"]
)
def test_gpu_check_without_gpu_exits_cleanly(command: list[str], run_python, monkeypatch) -> None:
    """The GPU check, run as a module or by its file path, on a machine (or with CUDA_VISIBLE_DEVICES empty) without
    a GPU exits 0 with a message saying nothing was checked and what it needs."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    result = run_python(*command, "--steps", "2", timeout=300)
    assert "gpu_check: no CUDA GPU here" in result.stdout and "Nothing was checked" in result.stdout
