"""One process per run, in rotated rounds, and the memory a process used.

Every timing benchmark here compares variants of one training run on a shared, noisy machine, so each
follows the same recipe: every run is a fresh process (peak RSS is per process and imports count);
a round runs every variant once, in an order rotated from round to round, so slow drift of the
machine hits all of them alike; a variant is compared with its baseline *within* a round
(:mod:`benchmarks.harness.stats`). Pure standard library: a worker imports only what its own
variant needs.

A benchmark re-runs itself as a worker: ``spawn(__spec__.name, [...])`` starts
``python -m <its module> ...`` from the repository root, so the worker imports this tree's
``benchmarks`` and ``lit_loraplus`` exactly as the parent did.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.harness.paths import REPO

# Environment of every worker: never wait on the network.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def spawn(module: str, args: Sequence[str]) -> dict[str, Any]:
    """Run ``python -m module *args`` from the repository root and return the JSON object on its last stdout line.

    Args:
        module: The benchmark's module (``__spec__.name`` of a script run with ``python -m``), re-run in
            worker mode.
        args: Its command-line arguments.

    Returns:
        The worker's result.

    Raises:
        SystemExit: If the worker fails, with the tail of its stderr.
    """
    cmd = [sys.executable, "-m", module, *args]
    env = os.environ | WORKER_ENV
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"worker `{' '.join(cmd[1:])}` failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """``names`` rotated left by ``round_index``, so that no variant always runs first."""
    k = round_index % len(names)
    return [*names[k:], *names[:k]]


def run_rounds(
    names: Sequence[str],
    rounds: int,
    run: Callable[[str], dict[str, Any]],
    check: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[list[dict[str, Any]]]:
    """Run every variant once per round, in rotated order, and return the results round by round.

    Args:
        names: The variants (the first is the baseline by convention; order only sets the rotation).
        rounds: Number of rounds.
        run: Runs one variant (in a fresh process) and returns its result.
        check: Called with each finished round, e.g. to fail early when the variants did not do the
            same work.

    Returns:
        ``rounds`` lists of results, each in the order the variants ran.
    """
    runs = []
    for i in range(rounds):
        start = time.perf_counter()
        results = [run(name) for name in rotated(names, i)]
        if check is not None:
            check(results)
        runs.append(results)
        print(f"round {i + 1}/{rounds} done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return runs
