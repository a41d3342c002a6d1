"""One short GPU check of the scale paths: precisions, FSDP on one GPU, DeepSpeed and QLoRA when installed.

    python -m benchmarks.gpu_check                  # one CUDA GPU, ~2-3 min; exits 0 with a message without one
    python -m benchmarks.gpu_check --steps 20 --out gpu_check.json

``python benchmarks/gpu_check.py`` runs it too: it imports only ``lit_loraplus`` (its tiny models from
``lit_loraplus.testing``), never the rest of ``benchmarks``, so it needs no package context.

No hub: a tiny (hidden 32, 2 layers) and a small (hidden 256, 4 layers) BERT classifier are built from
configs with a BPE tokenizer trained offline (lit_loraplus.testing), and a synthetic SST-2-format TSV
stands in for GLUE, so every arm runs the GLUE config path (``configs/glue/roberta-base_sst2.yaml``:
GlueDataModule, q/v targets, Init[2], λ = 16) through ``LoraPlusCLI``. Every arm starts from the same
adapter saved on CPU, with dropout 0 and the same data order, so a CPU fp32 run is the reference: the
learning rate of every named group at every step must match it exactly, the final adapter within the
arm's tolerance (fp32 1e-4, half precision 5e-2, QLoRA unchecked: different base weights). Reported
per arm: median step time, peak GPU memory, final loss, max |Δ adapter| relative to the largest weight.
The FSDP arm also writes a checkpoint, which must hold exactly the adapter (+ head) keys and export to
a PEFT adapter. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from transformers import BertForSequenceClassification
from typing_extensions import override

from lit_loraplus.core.model import apply_lora
from lit_loraplus.testing import CORPUS, tiny_bert_config, train_bpe_tokenizer
from lit_loraplus.training.distributed import clean_name

REPO = Path(__file__).resolve().parents[1]

SIZES = {"tiny": {"hidden": 32, "layers": 2}, "small": {"hidden": 256, "layers": 4}}
FP32_TOL, HALF_TOL = 1e-4, 5e-2


def build_model(folder: Path, hidden: int, layers: int) -> Path:
    """Save a BERT classifier built from a config plus an offline BPE tokenizer, and a CPU-made adapter beside it."""
    tokenizer = train_bpe_tokenizer(CORPUS)
    config = tiny_bert_config(vocab_size=len(tokenizer))
    config.hidden_size, config.num_hidden_layers, config.intermediate_size = hidden, layers, 4 * hidden
    config.num_attention_heads = 4
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    base = BertForSequenceClassification.from_pretrained(folder / "model")
    # The GLUE config's adapter (r = α = 8 on query/value), dropout 0 so that every arm sees the same forward.
    lora = {"r": 8, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["query", "value"]}
    apply_lora(base, "sequence_classification", lora).save_pretrained(folder / "adapter")
    return folder


def write_sst2(folder: Path) -> Path:
    """A synthetic SST-2 (sentence, label) in the original TSV layout: label = whether the sentence says 'yes'."""
    (folder / "SST-2").mkdir(parents=True)
    rows = ["sentence\tlabel"] + [f"{text}\t{int(' yes' in text)}" for text in CORPUS]
    for split in ("train", "dev"):
        (folder / "SST-2" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return folder


class Probe(Callback):
    """Step times, group learning rates and losses per step; trainable weights (unwrapped names) at the end."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lrs: list[dict[str, float]] = []
        self.losses: list[float] = []
        self.weights: dict[str, torch.Tensor] = {}
        self._start = 0.0

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()
        self.lrs.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)
        self.losses.append(float(outputs["loss"]))

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        params = pl_module.named_parameters()
        self.weights = {clean_name(n): p.detach().float().cpu() for n, p in params if p.requires_grad}


def fit(folder: Path, data: Path, steps: int, extra: list[str]) -> dict:
    """One arm through LoraPlusCLI; returns its measurements."""
    from lit_loraplus.cli import LoraPlusCLI

    args = ["--config", str(REPO / "configs/glue/roberta-base_sst2.yaml"), f"--model.model={folder / 'model'}"]
    args += [f"--model.adapter={folder / 'adapter'}", "--model.init=standard", "--model.lr=1e-3"]
    args += [f"--data.init_args.data_dir={data}", "--data.init_args.train_subset=256", "--data.init_args.batch_size=16"]
    args += [f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0", "--trainer.logger=false"]
    args += ["--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={folder / 'runs'}", *extra]
    cli = LoraPlusCLI(args=args, run=False)
    probe = Probe()
    cli.trainer.callbacks.append(probe)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    cli.trainer.fit(cli.model, cli.datamodule)
    memory = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    return {"probe": probe, "cli": cli, "step_ms": 1e3 * statistics.median(probe.times[1:]), "peak_mib": memory}


def fsdp_checkpoint_ok(result: dict) -> str:
    """The FSDP checkpoint holds exactly the trainable keys (adapter + head) and exports to a PEFT adapter."""
    from lit_loraplus.tools.export import export_checkpoint

    root = Path(result["cli"].trainer.default_root_dir)
    last = root / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    if set(state) != set(result["probe"].weights):
        return f"checkpoint keys differ: {sorted(set(state) ^ set(result['probe'].weights))[:4]}"
    export_checkpoint(last, root / "exported")
    return "ok" if (root / "exported" / "adapter_model.safetensors").exists() else "export wrote no adapter"


def compile_under_fsdp_refused(folder: Path, data: Path, steps: int) -> str:
    """``model.compile`` with the FSDP strategy must stop at setup with the module's message."""
    fsdp = ["--config", str(REPO / "configs/strategy/fsdp.yaml"), "--trainer.accelerator=gpu", "--trainer.devices=1"]
    try:
        fit(folder, data, steps, [*fsdp, "--model.compile=true"])
    except ValueError as err:
        return "ok" if "`compile=True` is not supported with FSDPStrategy" in str(err) else f"other error: {err}"
    return "not refused"


def arms() -> list[tuple[str, str, list[str], float | None]]:
    """(size, name, extra CLI flags, tolerance or None) of every GPU arm available here."""
    gpu = ["--trainer.accelerator=gpu", "--trainer.devices=1"]
    rows = []
    for size in SIZES:
        for precision in ("32-true", "bf16-mixed", "16-mixed", "bf16-true"):
            tol = FP32_TOL if precision == "32-true" else HALF_TOL
            rows.append((size, precision, [*gpu, f"--trainer.precision={precision}"], tol))
    fsdp = ["--config", str(REPO / "configs/strategy/fsdp.yaml"), *gpu, "--trainer.precision=32-true"]
    fsdp += [
        "--trainer.callbacks+=lit_loraplus.callbacks.AdapterCheckpoint",
        "--trainer.callbacks.every_n_train_steps=5",
    ]
    rows.append(("small", "fsdp-1gpu", fsdp, FP32_TOL))
    # a bf16 base beside fp32 adapters: FSDP1 wraps it only because the policy makes each LoRA leaf its own unit
    bf16_base = [*fsdp[:2], *gpu, "--trainer.precision=bf16-mixed", "--model.model_kwargs={dtype: bfloat16}"]
    rows.append(("small", "fsdp-1gpu bf16 base", bf16_base, HALF_TOL))
    rows.append(("small", "compile", [*gpu, "--model.compile=true", "--trainer.precision=bf16-mixed"], HALF_TOL))
    if importlib.util.find_spec("deepspeed"):
        ds = ["--config", str(REPO / "configs/strategy/deepspeed_zero2.yaml"), *gpu, "--trainer.precision=bf16-mixed"]
        rows.append(("small", "deepspeed-zero2", ds, HALF_TOL))
    if importlib.util.find_spec("bitsandbytes"):
        rows.append(
            ("small", "qlora-4bit", [*gpu, "--model.quantization=4bit", "--trainer.precision=bf16-mixed"], None)
        )
    return rows


def main() -> int:
    """Run the arms, print a markdown table, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", help="Also write the table rows as JSON.")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False; torch "
            f"{torch.__version__}, built for CUDA {torch.version.cuda}). Nothing was checked: run it on a machine "
            "with a CUDA GPU and a CUDA build of torch."
        )
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = write_sst2(Path(tmp) / "glue")
        folders = {s: build_model(Path(tmp) / s, **dims) for s, dims in SIZES.items()}
        cpu = ["--trainer.accelerator=cpu", "--trainer.precision=32-true"]
        references = {s: fit(folders[s], data, args.steps, cpu)["probe"] for s in SIZES}
        rows, failed = [], False
        for size, name, extra, tol in arms():
            row = {"model": size, "arm": name}
            try:
                result = fit(folders[size], data, args.steps, extra)
                probe, ref = result["probe"], references[size]
                scale = max(w.abs().max().item() for w in ref.weights.values())
                diff = max((probe.weights[k] - w).abs().max().item() for k, w in ref.weights.items()) / scale
                row |= {"step_ms": result["step_ms"], "peak_mib": result["peak_mib"], "loss": probe.losses[-1]}
                row |= {"adapter_diff": diff, "lrs_match": probe.lrs == ref.lrs, "groups": sorted(probe.lrs[0])}
                finite = all(map(math.isfinite, probe.losses))
                ok = row["lrs_match"] and finite and (tol is None or diff <= tol)
                if name == "fsdp-1gpu":
                    row["checkpoint"] = fsdp_checkpoint_ok(result)
                    ok = ok and row["checkpoint"] == "ok"
            except Exception as err:  # one broken arm must not hide the others' results
                row["error"], ok = f"{type(err).__name__}: {str(err)[:300]}", False
            row["ok"] = bool(ok)
            failed |= not ok
            rows.append(row)
        refused = compile_under_fsdp_refused(folders["small"], data, args.steps)
        outcome = "refused at setup, as expected" if refused == "ok" else refused
        rows.append({"model": "small", "arm": "fsdp + compile", "ok": refused == "ok", "error": outcome})
        failed |= refused != "ok"
    print(f"\n{torch.cuda.get_device_name()} · torch {torch.__version__} · {args.steps} steps · reference: CPU fp32\n")
    print("| model | arm | step (ms) | peak GPU (MiB) | final loss | max Δadapter / max|w| | lrs = CPU | ok |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['arm']} | {r['error']} | | | | | {'yes' if r['ok'] else 'no'} |")
            continue
        cells = (
            f"{r['step_ms']:.1f} | {r['peak_mib']:.0f} | {r['loss']:.4f} | {r['adapter_diff']:.2e} | {r['lrs_match']}"
        )
        print(f"| {r['model']} | {r['arm']} | {cells} | {'yes' if r['ok'] else 'no'} {r.get('checkpoint', '')} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
