"""Peak memory and step time of LoRA+ training with and without gradient checkpointing (CPU).

    python benchmarks/memory_checkpointing.py                    # 3 repeats per arm, ~3 min on 2 cores
    python benchmarks/memory_checkpointing.py --repeats 5 --out memory.json

Setting: a Llama built from a config (hidden 512, 4 layers, 8 heads, MLP 1408, vocab 8192, random
weights: no hub), LoRA r 8 on q/v through ``lit_loraplus.core.model.apply_lora``, batch 4 × 512 tokens,
fp32, AdamW over the LoRA+ groups, ``--steps`` optimizer steps. Gradient checkpointing is
``lit_loraplus.core.model.enable_gradient_checkpointing`` (the module's ``gradient_checkpointing=True``).
Each run is a separate process (peak RSS is per process); arms alternate within a repeat so drift
of a shared machine hits both. Reported: peak RSS of the process, its growth over the RSS after
the model was built (what training adds: activations, gradients, optimizer state), and the
median step time; medians over repeats, as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ARMS = ("off", "on")


def rss_mb() -> float:
    """Current resident set size of this process, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_arm(checkpointing: bool, steps: int) -> dict[str, float]:
    """Train ``steps`` steps in this process and measure it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lit_loraplus.core.model import apply_lora, enable_gradient_checkpointing
    from lit_loraplus.core.optim import create_loraplus_optimizer

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=8192,
        hidden_size=512,
        num_hidden_layers=4,
        num_attention_heads=8,
        intermediate_size=1408,
        max_position_embeddings=512,
    )
    base = LlamaForCausalLM(config)
    if checkpointing:
        enable_gradient_checkpointing(base)
    model = apply_lora(base, "causal_lm", {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}).train()
    optimizer = create_loraplus_optimizer(model, lr=1e-4, ratio=16)
    ids = torch.randint(0, config.vocab_size, (4, 512))
    built = rss_mb()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_rss_mb": peak, "train_growth_mb": peak - built, "step_s": statistics.median(times)}


def main() -> None:
    """Run every arm ``--repeats`` times in fresh processes and print the medians as a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", help="Also write the raw runs as JSON.")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(run_arm(args.arm == "on", args.steps)))
        return
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    for repeat in range(args.repeats):
        for arm in ARMS if repeat % 2 == 0 else ARMS[::-1]:
            command = [sys.executable, __file__, "--arm", arm, "--steps", str(args.steps)]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            runs[arm].append(json.loads(out.strip().splitlines()[-1]))
    print(f"Llama h512 L4, LoRA r8 q/v, batch 4 × 512, fp32 CPU; medians of {args.repeats} processes per arm\n")
    print("| gradient checkpointing | peak RSS (MiB) | growth while training (MiB) | step (s) |")
    print("|---|---|---|---|")
    for arm in ARMS:
        med = {k: statistics.median(r[k] for r in runs[arm]) for k in runs[arm][0]}
        print(f"| {arm} | {med['peak_rss_mb']:.0f} | {med['train_growth_mb']:.0f} | {med['step_s']:.2f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
