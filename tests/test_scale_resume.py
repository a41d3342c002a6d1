"""Fault-tolerant resume: atomic checkpoint files, a SIGKILL mid-run, a crash in the middle of a write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lit_loraplus.cli import LoraPlusCLI
from lit_loraplus.training import AtomicCheckpointIO


def test_cli_uses_atomic_checkpoint_io_by_default(tmp_path, reference_spec) -> None:
    """`lit-loraplus` trains with AtomicCheckpointIO unless trainer.plugins says otherwise."""
    args = reference_spec.args(tmp_path)[1:]
    trainer = LoraPlusCLI(args=args, run=False).trainer
    assert type(trainer.strategy.checkpoint_io) is AtomicCheckpointIO


def test_atomic_save_replaces_and_leaves_no_temp_file(tmp_path) -> None:
    """A save over an existing file replaces it whole and leaves no `<name>.tmp` behind."""
    io = AtomicCheckpointIO()
    target = tmp_path / "sub" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, target)
    assert torch.load(target, weights_only=True)["step"] == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


@pytest.mark.subprocess
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, reference_run, cli, child_env) -> None:
    """`lit-loraplus fit` SIGKILLed at step 6 (after its step-6 checkpoint), then resumed in a new process with
    `--ckpt_path last`, ends with bit-identical adapters and saw the same learning rates and batches."""
    flag = tmp_path / "blocked"
    args = reference_run.args(tmp_path)
    block = ["--trainer.callbacks+=scale_helpers.BlockAtStep", "--trainer.callbacks.step=6"]
    block.append(f"--trainer.callbacks.flag={flag}")
    env = child_env
    command = [sys.executable, "-m", "lit_loraplus.cli", *args, *block]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert flag.exists(), proc.stderr.read()[-3000:] if proc.poll() is not None else "timed out"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stderr.close()
    folder = tmp_path / "run" / "checkpoints"
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 6
    assert not list(folder.glob("*.tmp")) and not (tmp_path / "run" / "adapter").exists()

    cli(tmp_path, *args, "--ckpt_path=last")
    reference_run.assert_resumed_as_reference(tmp_path, resumed_from=6)


@pytest.mark.subprocess
def test_torn_checkpoint_write_keeps_previous_last(tmp_path, reference_run, cli, child_env) -> None:
    """A crash half-way through writing the step-12 `last.ckpt` leaves the step-6 `last.ckpt` intact and loadable;
    `--ckpt_path last` resumes from it and reproduces the uninterrupted run exactly."""
    config = tmp_path / "torn.yaml"
    config.write_text(
        "trainer:\n  plugins:\n    - class_path: scale_helpers.TornWriteCheckpointIO\n      init_args: {crash_at: 4}\n"
    )
    args = reference_run.args(tmp_path)
    env = child_env
    command = [sys.executable, "-m", "lit_loraplus.cli", *args, "--config", str(config)]
    crashed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert crashed.returncode == 3, crashed.stderr[-3000:]  # saves 1-2 at step 6, 3 (step=12 file), 4 dies
    folder = tmp_path / "run" / "checkpoints"
    torn = folder / "last.ckpt.tmp"
    assert torn.exists() and torn.stat().st_size < (folder / "last.ckpt").stat().st_size
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 6

    cli(tmp_path, *args, "--ckpt_path=last")
    reference_run.assert_resumed_as_reference(tmp_path, resumed_from=6)
