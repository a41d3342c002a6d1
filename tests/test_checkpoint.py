"""Adapter-only checkpoints, exact resume in a new process, and PEFT-format export round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from lit_loraplus.data import GlueDataModule
from lit_loraplus.training import LoraPlusModule
from lit_loraplus.training.export import SETTINGS_FILE, save_adapter


@pytest.mark.subprocess
def test_resume_in_new_process_is_exact(tmp_path, reference_run, cli) -> None:
    """12 steps straight vs 6 steps, a crash, and a new process resuming with `--ckpt_path last`:
    the same batches in the same order, the same learning rate of every group at every step, and
    bit-identical adapter weights at the end (dropout and shuffling on)."""
    interrupted = reference_run.args(tmp_path)
    cli(tmp_path, *interrupted, "--trainer.callbacks+=recorder.ExitAtStep", "--trainer.callbacks.step=6")
    assert not (tmp_path / "run/adapter").exists()  # the first process really died at step 6
    cli(tmp_path, *interrupted, "--ckpt_path=last")

    straight = reference_run.records(reference_run.folder / "run.jsonl")
    both = reference_run.records(tmp_path / "run.jsonl")
    # The first process recorded steps 0..6 (it died at the start of step 6); the second 6..11.
    assert [r["step"] for r in both] == list(range(7)) + list(range(6, reference_run.steps))
    first, resumed = both[:7], both[7:]
    assert first == straight[:7]
    assert [r["batch"] for r in resumed] == [r["batch"] for r in straight[6:]]
    assert [r["lrs"] for r in resumed] == [r["lrs"] for r in straight[6:]]
    a = load_file(reference_run.folder / "run/adapter/adapter_model.safetensors")
    b = load_file(tmp_path / "run/adapter/adapter_model.safetensors")
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        assert torch.equal(a[key], b[key]), key


def short_fit(tmp_path: Path, model_dir: Path, glue_dir: Path, **module_kwargs) -> tuple[LoraPlusModule, L.Trainer]:
    data = GlueDataModule("sst2", str(model_dir), data_dir=str(glue_dir), batch_size=4, train_subset=16, val_subset=8)
    module = LoraPlusModule(str(model_dir), num_labels=2, r=4, lr=1e-2, **module_kwargs)
    trainer = L.Trainer(
        max_steps=3,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        callbacks=[L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)],
    )
    trainer.fit(module, data)
    return module, trainer


def test_checkpoint_holds_only_trainable_weights(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """The checkpoint's state dict has exactly the trainable (adapter + head) keys, no frozen base
    weight, and weighs far less than the model; it reloads with load_from_checkpoint."""
    module, _ = short_fit(tmp_path, tiny_bert_dir, glue_dir)
    checkpoint = torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert set(checkpoint["state_dict"]) == trainable
    assert all(".lora_" in k or ".modules_to_save." in k for k in trainable)
    stored = sum(v.numel() for v in checkpoint["state_dict"].values())
    total = sum(p.numel() for p in module.parameters())
    assert stored < 0.05 * total
    reloaded = LoraPlusModule.load_from_checkpoint(tmp_path / "ckpt/last.ckpt")
    for name, value in checkpoint["state_dict"].items():
        assert torch.equal(reloaded.state_dict()[name], value), name


def test_checkpoint_missing_an_adapter_key_is_refused(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """Non-strict loading would silently keep a fresh adapter; a missing trainable key is an error."""
    short_fit(tmp_path, tiny_bert_dir, glue_dir)
    checkpoint = torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)
    dropped = next(k for k in checkpoint["state_dict"] if ".lora_B." in k)
    del checkpoint["state_dict"][dropped]
    torch.save(checkpoint, tmp_path / "damaged.ckpt")
    with pytest.raises(KeyError, match=r"lacks 1 trainable \(adapter\) weight"):
        LoraPlusModule.load_from_checkpoint(tmp_path / "damaged.ckpt")


def batch_of(model_dir: Path, glue_dir: Path) -> dict[str, torch.Tensor]:
    data = GlueDataModule("sst2", str(model_dir), data_dir=str(glue_dir), batch_size=8, val_subset=8)
    data.setup("validate")
    batch = next(iter(data.val_dataloader()))
    return {k: v for k, v in batch.items() if k != "labels"}


def test_export_round_trip_with_plain_peft(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """The exported adapter, loaded with plain PEFT, gives the module's outputs exactly; the merged model
    within fp32 tolerance; `adapter=` restarts from it; loraplus.json records λ and the groups."""
    module, _ = short_fit(tmp_path, tiny_bert_dir, glue_dir, ratio=8.0)
    module.eval()
    batch = batch_of(tiny_bert_dir, glue_dir)
    with torch.no_grad():
        expected = module(**batch).logits
    module.save_adapter(tmp_path / "adapter")
    module.save_adapter(tmp_path / "merged", merge=True)

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    peft_model = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    restarted = LoraPlusModule(str(tiny_bert_dir), num_labels=2, adapter=str(tmp_path / "adapter"))
    restarted.configure_model()
    restarted.eval()
    with torch.no_grad():
        assert torch.equal(peft_model(**batch).logits, expected)
        torch.testing.assert_close(merged(**batch).logits, expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(restarted(**batch).logits, expected)
    assert any(p.requires_grad for n, p in restarted.named_parameters() if ".lora_B." in n)

    settings = json.loads((tmp_path / "adapter" / SETTINGS_FILE).read_text())
    assert settings["settings"]["ratio"] == 8.0
    groups = {g["name"]: g for g in settings["groups"]}
    assert groups["lora_B"]["lr"] == pytest.approx(8 * groups["lora_A"]["lr"])


def test_export_from_a_gathered_state_dict(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """The sharded-strategy path (weights gathered by the strategy, written by rank 0) writes the same
    adapter as the direct path; merging from a gathered state is refused with the alternative."""
    module, _ = short_fit(tmp_path, tiny_bert_dir, glue_dir)
    save_adapter(module, tmp_path / "direct")
    save_adapter(module, tmp_path / "gathered", state_dict=module.state_dict())
    direct = load_file(tmp_path / "direct/adapter_model.safetensors")
    gathered = load_file(tmp_path / "gathered/adapter_model.safetensors")
    assert direct.keys() == gathered.keys() and len(direct) > 0
    assert all(torch.equal(direct[k], gathered[k]) for k in direct)
    with pytest.raises(ValueError, match=r"merge=True needs the whole model in one process.*--merge"):
        save_adapter(module, tmp_path / "merged", merge=True, state_dict=module.state_dict())
