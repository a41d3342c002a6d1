"""Peak memory and step time of LoRA+ training with and without gradient checkpointing (CPU).

    python -m benchmarks.performance.memory_checkpointing          # 3 repeats per arm, ~3 min on 2 cores
    python -m benchmarks.performance.memory_checkpointing --repeats 5 --out memory.json
    python -m benchmarks.performance.memory_checkpointing --smoke  # tiny config-built Llama, seconds

Setting: a Llama built from a config (hidden 512, 4 layers, 8 heads, MLP 1408, vocab 8192, random
weights: no hub), LoRA r 8, α 16, dropout 0 on q/v through ``lit_loraplus.core.model.apply_lora``,
batch 4 × 512 tokens, fp32, AdamW over the LoRA+ groups, ``--steps`` optimizer steps. Gradient
checkpointing is ``lit_loraplus.core.model.enable_gradient_checkpointing`` (the module's
``gradient_checkpointing=True``). Each run is a separate process (peak RSS is per process); the arms'
order alternates from repeat to repeat so drift of a shared machine hits both. Reported: peak RSS of
the process, its growth over the RSS after the model was built (what training adds: activations,
gradients, optimizer state), and the median step time; medians over repeats, as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from benchmarks.harness.processes import current_rss_mb, peak_rss_mb, run_rounds, spawn
from benchmarks.harness.shapes import LLAMA_H512
from benchmarks.harness.stats import markdown_table

ARMS = ("off", "on")
LAYERS, BATCH, SEQ = 4, 4, 512
SMOKE_SEQ = 32


def run_arm(checkpointing: bool, steps: int, smoke: bool) -> dict[str, float]:
    """Train ``steps`` steps in this process and measure it."""
    from benchmarks.harness.models import llama, token_rows, with_lora
    from lit_loraplus.core.model import enable_gradient_checkpointing
    from lit_loraplus.core.optim import create_loraplus_optimizer

    base = llama(LAYERS, LLAMA_H512, smoke=smoke)
    if checkpointing:
        enable_gradient_checkpointing(base)
    model = with_lora(base, "causal_lm", ("q_proj", "v_proj"), r=8, alpha=16, dropout=0.0)
    optimizer = create_loraplus_optimizer(model, lr=1e-4, ratio=16)
    ids = token_rows(BATCH, SMOKE_SEQ if smoke else SEQ, base.config.vocab_size, "causal_lm")["input_ids"]
    built = current_rss_mb()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    peak = peak_rss_mb()
    return {"arm": "on" if checkpointing else "off", "peak_rss_mb": peak, "train_growth_mb": peak - built,
            "step_s": statistics.median(times)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Run every arm ``--repeats`` times in fresh processes and print the medians as a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", help="Also write the raw runs as JSON.")
    parser.add_argument("--smoke", action="store_true", help="the tiny Llama, 1 repeat (tests)")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats = 1
    if args.arm:
        print(json.dumps(run_arm(args.arm == "on", args.steps, args.smoke)))
        return
    worker = ["--steps", str(args.steps)] + (["--smoke"] if args.smoke else [])
    rounds = run_rounds(ARMS, args.repeats, lambda arm: spawn(__spec__.name, ["--arm", arm, *worker]))
    runs = {arm: [r for results in rounds for r in results if r["arm"] == arm] for arm in ARMS}
    model = "tiny Llama (smoke)" if args.smoke else f"Llama h512 L{LAYERS}"
    print(f"{model}, LoRA r8 q/v, batch {BATCH} × {SMOKE_SEQ if args.smoke else SEQ}, fp32 CPU; "
          f"medians of {args.repeats} processes per arm\n")  # fmt: skip
    rows = []
    for arm in ARMS:
        med = {k: statistics.median(r[k] for r in runs[arm]) for k in ("peak_rss_mb", "train_growth_mb", "step_s")}
        rows.append([arm, f"{med['peak_rss_mb']:.0f}", f"{med['train_growth_mb']:.0f}", f"{med['step_s']:.2f}"])
    header = ["gradient checkpointing", "peak RSS (MiB)", "growth while training (MiB)", "step (s)"]
    print(markdown_table(header, rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
