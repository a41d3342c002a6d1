"""DDP on CPU (gloo, 2 processes) from the `lit-loraplus` command line, run as a subprocess of the test
(`strategy=ddp` inside pytest would re-launch pytest): identical groups, adapters and learning rates on every
rank, equality with a single-process run of the same global batch, rank-0-only logging, synced val metrics."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification

from lit_loraplus.training.distributed import compare_group_descriptions

STEPS = 4
CONFIG = """\
model:
  r: 4
  dropout: 0.0
  lr: 1.0e-3
  model_kwargs: {hidden_dropout_prob: 0.0, attention_probs_dropout_prob: 0.0}
data:
  class_path: scale_helpers.UnshuffledGlue
  init_args: {task: sst2, train_subset: 32, val_subset: 8}
trainer:
  accelerator: cpu
  max_steps: 4
  log_every_n_steps: 1
  num_sanity_val_steps: 0
  enable_progress_bar: false
  enable_checkpointing: false
  logger:
    - class_path: lightning.pytorch.loggers.CSVLogger
      init_args: {save_dir: logs, name: csv}
    - class_path: lightning.pytorch.loggers.WandbLogger
      init_args: {save_dir: logs, offline: true, project: scale}
  callbacks:
    - class_path: lightning.pytorch.callbacks.LearningRateMonitor
      init_args: {logging_interval: step}
    - class_path: scale_helpers.RankRecorder
      init_args: {path: record}
"""


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_bert_dir) -> Path:
    """A fresh LoRA adapter (r 4, query/value, head copy) saved once, so every run starts from the same weights
    (the processes of a DDP run consume the RNG differently before the model is built)."""
    path = tmp_path_factory.mktemp("adapter")
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, lora_dropout=0.0)).save_pretrained(path)
    return path


def command(tmp: Path, model: Path, glue: Path, devices: int, *extra: str, adapter: Path | None = None):
    """`lit-loraplus fit` in `tmp` with the config above: `devices` CPU processes, global batch 8 either way.

    Returns:
        The command line (run it with the `child_env` fixture's environment).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "config.yaml").write_text(CONFIG)
    args = ["fit", "--config", "config.yaml", f"--model.model={model}", f"--data.init_args.data_dir={glue}"]
    args += [f"--model.adapter={adapter}"] if adapter else []
    args += [f"--data.init_args.eval_batch_size={8 // devices}", f"--trainer.devices={devices}"]
    args += ["--trainer.strategy=ddp"] if devices > 1 else []
    return [sys.executable, "-m", "lit_loraplus.cli", *args, *extra]


def run(
    tmp: Path,
    model: Path,
    glue: Path,
    devices: int,
    *extra: str,
    env: dict,
    adapter: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run :func:`command` to completion in `env`; with `check`, it must succeed."""
    cmd = command(tmp, model, glue, devices, *extra, adapter=adapter)
    result = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 or not check, result.stderr[-3000:]
    return result


def lr_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def metrics(tmp: Path) -> list[dict[str, str]]:
    (version,) = (tmp / "logs" / "csv").iterdir()  # one logger directory: rank 0 only
    with open(version / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert_dir, glue_dir, adapter, child_env) -> tuple[Path, Path]:
    """A 2-process DDP run (per-device batch 4) and a single-process run (batch 8), 4 steps each, dropout 0,
    both starting from the same saved adapter."""
    ddp = tmp_path_factory.mktemp("ddp")
    single = tmp_path_factory.mktemp("single")
    run(ddp, tiny_bert_dir, glue_dir, 2, env=child_env, adapter=adapter)
    run(single, tiny_bert_dir, glue_dir, 1, env=child_env, adapter=adapter)
    return ddp, single


@pytest.mark.subprocess
def test_ddp_ranks_end_bit_identical_with_identical_learning_rates(runs) -> None:
    """Both ranks end with bit-identical trainable weights and saw the same learning rate of every named group
    at every step (LoRA+ groups lora_A, lora_B, saved present)."""
    ddp, _ = runs
    w0, w1 = (torch.load(ddp / f"record.rank{r}.pt", weights_only=True) for r in (0, 1))
    assert w0.keys() == w1.keys() and any(".lora_B." in k for k in w0)
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    lrs0, lrs1 = lr_rows(ddp / "record.rank0.jsonl"), lr_rows(ddp / "record.rank1.jsonl")
    assert [r["step"] for r in lrs0] == list(range(STEPS))
    assert [r["lrs"] for r in lrs0] == [r["lrs"] for r in lrs1]
    assert lrs0[0]["rows"] != lrs1[0]["rows"]  # the ranks did see different data
    assert {"lora_A", "lora_B", "saved"} <= set(lrs0[0]["lrs"])


@pytest.mark.subprocess
def test_ddp_equals_single_process_with_the_same_global_batch(runs) -> None:
    """2 processes × 4 rows equal 1 process × 8 rows (same rows per step, dropout 0): adapters within fp32
    tolerance, the same learning rates, and the same validation loss and accuracy (val/loss is logged with
    sync_dist, accuracy is a torchmetrics object that syncs itself; without them rank 0 would log half the set)."""
    ddp, single = runs
    a, b = (torch.load(d / "record.rank0.pt", weights_only=True) for d in (ddp, single))
    assert a.keys() == b.keys()
    moved = 0
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
        moved += int(".lora_B." in key and a[key].abs().sum() > 0)
    assert moved > 0  # B left zero: the comparison would be vacuous
    rank0, rank1, one = (lr_rows(d / f"record.rank{r}.jsonl") for d, r in ((ddp, 0), (ddp, 1), (single, 0)))
    assert [sorted(x["rows"] + y["rows"]) for x, y in zip(rank0, rank1, strict=True)] == [
        sorted(z["rows"]) for z in one
    ]
    assert [r["lrs"] for r in rank0] == [r["lrs"] for r in one]
    val_ddp, val_single = ([r for r in metrics(d) if r.get("val/loss")] for d in (ddp, single))
    assert len(val_ddp) == len(val_single) == 1
    assert float(val_ddp[0]["val/loss"]) == pytest.approx(float(val_single[0]["val/loss"]), rel=1e-4)
    assert float(val_ddp[0]["val/accuracy"]) == float(val_single[0]["val/accuracy"])


@pytest.mark.subprocess
def test_ddp_logs_from_rank_zero_only(runs) -> None:
    """Under DDP, one CSV version directory and one offline W&B run exist (rank 0 logs), with one row per step
    holding a learning-rate column per named group."""
    ddp, _ = runs
    rows = metrics(ddp)
    steps = [r for r in rows if r.get("lr-AdamW/lora_B")]
    assert len(steps) == STEPS and all(r.get("lr-AdamW/lora_A") for r in steps)
    assert len(list((ddp / "logs" / "wandb").glob("offline-run-*"))) == 1


@pytest.mark.subprocess
def test_group_mismatch_across_ranks_is_refused(tmp_path, tiny_bert_dir, glue_dir, child_env) -> None:
    """When one rank's groups differ (here: rank 1's lora_B learning rate), every rank stops at fit start with an
    error naming the rank and the group, instead of training with different learning rates."""
    skew = [
        "--trainer.logger=false",
        "--trainer.callbacks+=scale_helpers.SkewGroupsOnRank",
        "--trainer.callbacks.rank=1",
    ]
    result = run(tmp_path, tiny_bert_dir, glue_dir, 2, *skew, env=child_env, check=False)
    assert result.returncode != 0
    assert "LoRA+ optimizer group 'lora_B' differs across ranks: rank 1 has" in result.stderr
    assert not (tmp_path / "record.rank0.jsonl").exists()  # no step was trained


def test_compare_group_descriptions_names_rank_and_group() -> None:
    """The comparison behind the check: equal descriptions pass; a different group list or a different
    learning rate raises naming the rank and the group."""
    ref = [{"name": "lora_A", "lr": 1e-4}, {"name": "lora_B", "lr": 1.6e-3}]
    compare_group_descriptions([ref, [dict(g) for g in ref]])
    with pytest.raises(RuntimeError, match=r"rank 2 has groups \['lora_A'\], rank 0 has \['lora_A', 'lora_B'\]"):
        compare_group_descriptions([ref, ref, ref[:1]])
    with pytest.raises(RuntimeError, match=r"group 'lora_B' differs across ranks: rank 1 has"):
        compare_group_descriptions([ref, [ref[0], {"name": "lora_B", "lr": 3.2e-3}]])


@pytest.mark.subprocess
def test_ddp_sigkill_then_resume_equals_uninterrupted_run(
    runs, tmp_path, tiny_bert_dir, glue_dir, adapter, child_env
) -> None:
    """Both DDP processes SIGKILLed at step 2 (after the step-2 checkpoint), then a new 2-process run with
    `--ckpt_path last`: steps 2-3 see the uninterrupted DDP run's rows and learning rates, and both ranks end with
    its adapters bit for bit."""
    ddp, _ = runs
    flag = tmp_path / "blocked"
    keep = ["--trainer.enable_checkpointing=true"]
    keep += [
        "--trainer.callbacks+=lit_loraplus.callbacks.AdapterCheckpoint",
        "--trainer.callbacks.every_n_train_steps=2",
    ]
    block = ["--trainer.callbacks+=scale_helpers.BlockAtStep", "--trainer.callbacks.step=2"]
    block.append(f"--trainer.callbacks.flag={flag}")
    cmd, env = command(tmp_path, tiny_bert_dir, glue_dir, 2, *keep, *block, adapter=adapter), child_env
    # A new session: rank 0 and the rank-1 process it launches share one process group to kill.
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert flag.exists(), f"exit status {proc.poll()}"
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2

    run(tmp_path, tiny_bert_dir, glue_dir, 2, *keep, "--ckpt_path=last", env=child_env, adapter=adapter)
    for rank in (0, 1):
        reference, both = lr_rows(ddp / f"record.rank{rank}.jsonl"), lr_rows(tmp_path / f"record.rank{rank}.jsonl")
        assert [r["step"] for r in both[-2:]] == [2, 3]
        assert both[-2:] == reference[2:]  # rows and learning rates of the resumed steps
        a = torch.load(ddp / f"record.rank{rank}.pt", weights_only=True)
        b = torch.load(tmp_path / f"record.rank{rank}.pt", weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.subprocess
@pytest.mark.parametrize("group", [False, True], ids=["rank0-alone", "process-group"])
def test_ddp_sigterm_stops_every_rank_at_one_step_and_resumes_exactly(
    group, runs, tmp_path, tiny_bert_dir, glue_dir, adapter, child_env
) -> None:
    """SIGTERM at the start of step 1, to rank 0 alone or to every rank: both ranks finish step 1, last.ckpt holds
    step 2, the command exits with 75; `--ckpt_path auto` then continues to the uninterrupted run's adapters on
    both ranks bit for bit."""
    ddp, _ = runs
    keep = ["--trainer.enable_checkpointing=true", "--trainer.callbacks+=lit_loraplus.callbacks.AdapterCheckpoint"]
    stop = [
        "--trainer.callbacks+=recorder.SignalAtStep",
        "--trainer.callbacks.step=1",
        f"--trainer.callbacks.group={group}",
    ]
    cmd, env = command(tmp_path, tiny_bert_dir, glue_dir, 2, *keep, *stop, adapter=adapter), child_env
    # A new session: the process group holds rank 0 and the rank it launches, and not pytest.
    stopped = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                             start_new_session=True)  # fmt: skip
    assert stopped.returncode == 75, stopped.stderr[-3000:]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2

    run(tmp_path, tiny_bert_dir, glue_dir, 2, *keep, "--ckpt_path=auto", env=child_env, adapter=adapter)
    for rank in (0, 1):
        reference, both = lr_rows(ddp / f"record.rank{rank}.jsonl"), lr_rows(tmp_path / f"record.rank{rank}.jsonl")
        assert [r["step"] for r in both] == [0, 1, 2, 3]  # steps 0-1 before the signal, 2-3 after the resume
        assert both == reference
        a = torch.load(ddp / f"record.rank{rank}.pt", weights_only=True)
        b = torch.load(tmp_path / f"record.rank{rank}.pt", weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
