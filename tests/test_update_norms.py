"""UpdateNormMonitor: logged update norms match hand computations, exact keys, accumulation, W&B, DDP, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_callbacks_script import LAYERS, LoraModule, TokenTask, lora_bert, read_rows, run, trainer
from lightning.pytorch import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from peft import LoraConfig, get_peft_model
from torch.utils.data import DataLoader

from lit_loraplus.callbacks import UpdateNormMonitor
from lit_loraplus.testing import tiny_gpt2


def lora_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if "lora_" in n}


def layer_of(param_name: str) -> str:
    """``base_model.model.bert...query.lora_A.default.weight`` -> (``bert...query``)."""
    return param_name.split("base_model.model.", 1)[1].split(".lora_", 1)[0]


def injected(model: torch.nn.Module, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) for n, p in lora_params(model).items()}


def loader(n: int = 32, batch: int = 4, **kw) -> DataLoader:
    return DataLoader(TokenTask(n=n, **kw), batch_size=batch)


def test_sgd_update_equals_hand_computation(tmp_path: Path) -> None:
    """One SGD step with injected gradients: ‖ΔA‖ = η‖g_A‖, ‖ΔB‖ = λη‖g_B‖, grad and norm logged exactly."""
    eta, lam = 0.05, 8.0
    model = lora_bert()
    grads = injected(model)
    before = {n: p.detach().clone() for n, p in lora_params(model).items()}
    module = LoraModule(model, lr=eta, ratio=lam, sgd=True, grads=grads)
    trainer(tmp_path, [UpdateNormMonitor(log_every_n_steps=1)], max_steps=1).fit(module, loader())
    (row,) = read_rows(tmp_path)
    assert row["step"] == 1
    for name, g in grads.items():
        m, layer = ("A" if "lora_A" in name else "B"), layer_of(name)
        lr = eta if m == "A" else lam * eta
        assert row[f"lora/update/{m}/{layer}"] == pytest.approx(lr * g.norm().item(), rel=1e-5)
        assert row[f"lora/grad/{m}/{layer}"] == pytest.approx(g.norm().item(), rel=1e-5)
        assert row[f"lora/norm/{m}/{layer}"] == pytest.approx((before[name] - lr * g).norm().item(), rel=1e-5)
    # PEFT initialises B = 0: its relative update is undefined and documented as absent.
    assert not any(k.startswith("lora/update_rel/B/") for k in row)
    mean_a = sum(row[f"lora/update/A/{n}"] for n in LAYERS) / len(LAYERS)
    mean_b = sum(row[f"lora/update/B/{n}"] for n in LAYERS) / len(LAYERS)
    assert row["lora/update/B_over_A/mean"] == pytest.approx(mean_b / mean_a, rel=1e-6)


def test_adamw_first_step_follows_ratio(tmp_path: Path) -> None:
    """AdamW's first step is η·g/(|g|+ε) ≈ η·sign(g) per entry, so ‖ΔM‖ = lr_M·sqrt(numel M) and
    ‖ΔB‖/‖ΔA‖ = λ·sqrt(numel_B/numel_A) = λ·sqrt(out/in) (GPT-2: c_attn 32→96, c_fc 32→128)."""
    eta, lam = 1e-3, 16.0
    torch.manual_seed(0)
    model = get_peft_model(tiny_gpt2(), LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"]))
    grads = injected(model)  # standard-normal entries: |g| >> eps = 1e-8
    module = LoraModule(model, lr=eta, ratio=lam, grads=grads)
    data = DataLoader([{"input_ids": t, "labels": t} for t in torch.randint(0, 128, (8, 16))], batch_size=4)
    trainer(tmp_path, [UpdateNormMonitor(log_every_n_steps=1, stats=["update"])], max_steps=1).fit(module, data)
    (row,) = read_rows(tmp_path)
    params = lora_params(model)
    for name in params:
        if "lora_A" not in name:
            continue
        layer = layer_of(name)
        a, b = params[name], params[name.replace("lora_A", "lora_B")]
        assert row[f"lora/update/A/{layer}"] == pytest.approx(eta * math.sqrt(a.numel()), rel=1e-4)
        ratio = row[f"lora/update/B/{layer}"] / row[f"lora/update/A/{layer}"]
        assert ratio == pytest.approx(lam * math.sqrt(b.shape[0] / a.shape[1]), rel=1e-4)
    assert {"c_attn", "c_fc"} == {k.rsplit(".", 1)[-1] for k in row if k.startswith("lora/update/A/transformer")}


def test_exact_keys_with_csv_logger(tmp_path: Path) -> None:
    """Two steps, default stats, LoRA on query/value and the word embeddings: exactly these columns.

    Step 1: PEFT starts linear layers at B = 0 (so ΔA = 0 and ‖ΔB‖/‖B‖ is undefined, hence absent) but
    embeddings at A = 0 (‖ΔA‖/‖A‖ absent); step 2 has every key."""
    model = lora_bert(targets=("query", "value", "word_embeddings"))
    trainer(tmp_path, [UpdateNormMonitor(log_every_n_steps=1)], max_steps=2).fit(LoraModule(model), loader())
    rows = read_rows(tmp_path)
    emb = "bert.embeddings.word_embeddings"
    stats = ("update", "update_rel", "norm", "grad")
    per_layer = {f"lora/{s}/{m}/{n}" for s in stats for m in "AB" for n in [*LAYERS, emb]}
    aggregates = {f"lora/{s}/{m}/{a}" for s in stats for m in "AB" for a in ("mean", "max")}
    assert set(rows[1]) == {"step"} | per_layer | aggregates | {"lora/update/B_over_A/mean"}
    undefined = {f"lora/update_rel/B/{n}" for n in LAYERS} | {f"lora/update_rel/A/{emb}"}
    assert set(rows[0]) == set(rows[1]) - undefined
    assert [r["step"] for r in rows] == [1, 2]
    assert all(rows[0][f"lora/update/A/{n}"] == 0 for n in LAYERS) and rows[0][f"lora/update/A/{emb}"] > 0


class ParamRecorder(Callback):
    """Records LoRA parameters after every batch and the gradient norms the optimizer receives."""

    def __init__(self) -> None:
        self.after_batch: list[dict[str, torch.Tensor]] = []
        self.grad_norms: list[dict[str, float]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.after_batch.append({n: p.detach().clone() for n, p in lora_params(pl_module.model).items()})

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.grad_norms.append({n: p.grad.norm().item() for n, p in lora_params(pl_module.model).items()})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.after_batch.append({n: p.detach().clone() for n, p in lora_params(pl_module.model).items()})


def test_gradient_accumulation_logs_once_per_step(tmp_path: Path) -> None:
    """accumulate_grad_batches=4, 8 batches: 2 rows (steps 1, 2); Δ = change over the 4 batches of each
    step, and the gradient norm is the fully accumulated one."""
    recorder = ParamRecorder()
    monitor = UpdateNormMonitor(log_every_n_steps=1)
    model = lora_bert()
    run_ = trainer(tmp_path, [recorder, monitor], max_steps=2, accumulate_grad_batches=4)
    run_.fit(LoraModule(model), loader(n=32, batch=4))
    rows = read_rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2] and len(recorder.grad_norms) == 2
    for k, row in enumerate(rows):
        start, end = recorder.after_batch[4 * k], recorder.after_batch[4 * (k + 1)]
        for name in start:
            m, layer = ("A" if "lora_A" in name else "B"), layer_of(name)
            assert row[f"lora/update/{m}/{layer}"] == pytest.approx((end[name] - start[name]).norm().item(), abs=1e-7)
            assert row[f"lora/grad/{m}/{layer}"] == pytest.approx(recorder.grad_norms[k][name], rel=1e-5)
    assert rows[1]["lora/update/A/mean"] > 0


def test_wandb_offline_run_receives_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A WandbLogger(offline=True) run completes and writes its run directory; the metric names, the
    ``lora/*`` section declaration and both per-layer tables reach the offline run files."""
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    from lit_loraplus.callbacks import FeatureLearningMonitor

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(offline=True, save_dir=tmp_path, project="lit-loraplus-test")
    callbacks = [
        UpdateNormMonitor(log_every_n_steps=1),
        FeatureLearningMonitor(log_every_n_steps=1, probe_batch_size=2),
    ]
    trainer(tmp_path, callbacks, max_steps=2, logger=logger).fit(LoraModule(lora_bert()), loader())
    wandb.finish()
    # finish() returns once the run is marked complete, but the wandb-core service may still hold the
    # .wandb log in its write buffer (CI once read back just the 7-byte header); teardown() waits for
    # the service to exit, which closes the file.
    wandb.teardown()
    (run_dir,) = tmp_path.glob("wandb/offline-run-*")
    # Offline runs keep history in the binary .wandb log (protobuf); its keys are stored as UTF-8 strings.
    (log,) = run_dir.glob("run-*.wandb")
    data = log.read_bytes()
    for key in ("lora/*", "lora/update/B/mean", f"lora/update/A/{LAYERS[0]}", "lora/feature/balance/mean"):
        assert key.encode() in data, key
    assert list(run_dir.glob("files/media/table/lora/update/*.table.json"))
    (table,) = run_dir.glob("files/media/table/lora/feature/*.table.json")
    assert [row[0] for row in json.loads(table.read_text())["data"]] == LAYERS


def test_no_logger_fails_at_setup(tmp_path: Path) -> None:
    """Without a logger the callback refuses at setup, naming itself and the fix."""
    run_ = trainer(tmp_path, [UpdateNormMonitor()], max_steps=1, logger=False)
    with pytest.raises(MisconfigurationException, match="UpdateNormMonitor callback with Trainer that has no logger"):
        run_.fit(LoraModule(lora_bert()), loader())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stats": ["update", "nope"]}, r"unknown or empty \['nope'\]\. Valid names: \['update', 'update_rel'"),
        ({"log_every_n_steps": 0}, r"`log_every_n_steps=0` must be an integer >= 1"),
        ({"log_every_n_steps": 2.5}, r"`log_every_n_steps=2.5`"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    """Unknown statistics and a cadence < 1 are refused at construction, quoting the value."""
    with pytest.raises(ValueError, match=match):
        UpdateNormMonitor(**kwargs)


def test_layer_regex_matching_nothing_lists_layers(tmp_path: Path) -> None:
    """A layer regex matching no LoRA layer fails at setup and lists the available layers."""
    run_ = trainer(tmp_path, [UpdateNormMonitor(layers="mlp")], max_steps=1)
    with pytest.raises(ValueError, match=r"layers='mlp'\) matches no LoRA layer.*attention\.self\.query"):
        run_.fit(LoraModule(lora_bert()), loader())


def test_layer_regex_selects(tmp_path: Path) -> None:
    """``layers='value'`` logs only the value projections."""
    trainer(tmp_path, [UpdateNormMonitor(layers="value", stats=["norm"])], max_steps=1).fit(
        LoraModule(lora_bert()), loader()
    )
    (row,) = read_rows(tmp_path)
    assert {k.rsplit("/", 1)[-1] for k in row if k.startswith("lora/norm/A/")} == {*LAYERS[1::2], "mean", "max"}


@pytest.mark.subprocess
def test_ddp_logs_from_rank_zero_with_single_process_values(tmp_path: Path, child_env: dict) -> None:
    """DDP on 2 CPU processes (gloo): only rank 0 hands lora/ metrics to its logger, and the logged Δ equal a
    single-process run on the same global batches within fp32 tolerance."""
    here = Path(__file__).resolve().parent
    env = child_env
    script = here / "ddp_callbacks_script.py"
    done = subprocess.run(
        [sys.executable, str(script), "--devices", "2", "--out", str(tmp_path / "ddp")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run(1, tmp_path / "single")
    calls = [json.loads((tmp_path / "ddp" / f"calls_rank{r}.json").read_text()) for r in (0, 1)]
    assert any(calls[0]) and not any(calls[1])
    ddp, single = read_rows(tmp_path / "ddp"), read_rows(tmp_path / "single")
    update_keys = {k for r in single for k in r if k.startswith("lora/update/")}
    assert len(ddp) == len(single) == 3 and update_keys
    for d, s in zip(ddp, single, strict=True):
        for key in update_keys & s.keys():
            assert d[key] == pytest.approx(s[key], rel=1e-4, abs=1e-7), key
