"""Run a script from ``benchmarks/`` the way its smoke tests do: offline, one thread, output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(name: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<name> *args`` in a fresh process and fail the test, with its stderr, unless it exits 0.

    Args:
        name: The script's file name.
        *args: Its command-line arguments.
        timeout: Seconds before the run is killed.

    Returns:
        The finished process (``stdout`` holds what the script printed).
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(BENCHMARKS / name), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done
