"""FSDP1 on CPU (gloo, one process) around tiny PEFT models, run by test_scale_strategies.py as a subprocess.

Lightning refuses FSDP on CPU, but torch's FSDP itself runs there, which is enough to check what LoRA+ relies on:
``NoSplitModulesPolicy`` wraps the transformer blocks and each trainable leaf (no flat parameter mixes adapters with
frozen weights, so a bf16 base beside fp32 adapters wraps and no frozen weight gets a gradient), roles and groups
built *after* wrapping equal those
before, sizes recorded before wrapping describe the groups, a training step runs, and the full state dict uses the
unwrapped names of the trainable parameters. Prints one JSON line per model.
"""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp import StateDictType

from lit_loraplus.core.model import apply_lora
from lit_loraplus.core.optim import loraplus_param_groups
from lit_loraplus.core.roles import parameter_roles
from lit_loraplus.testing import tiny_bert, tiny_gpt2, tiny_llama
from lit_loraplus.training import NoSplitModulesPolicy
from lit_loraplus.training.distributed import clean_name, describe_groups, trainable_sizes

MODELS = {
    "llama": (tiny_llama, "causal_lm", ["q_proj", "v_proj"]),
    "gpt2": (tiny_gpt2, "causal_lm", ["c_attn"]),
    "bert": (tiny_bert, "sequence_classification", ["query", "value"]),
    # embedding LoRA keeps A/B in ParameterDicts, read (never called) by the layer: they stay in the block's unit
    "bert-embedding": (tiny_bert, "sequence_classification", ["query", "value", "word_embeddings"]),
}


def flat_params(wrapped: FSDP) -> list:
    """The flat parameter of every FSDP unit (a unit that manages no parameter has none)."""
    return [m._handle.flat_param for m in wrapped.modules() if isinstance(m, FSDP) and m._handle is not None]


def frozen_with_grad(wrapped: FSDP) -> int:
    """Elements of frozen weights whose gradient FSDP computed: those sharing a flat parameter with a trainable one."""
    return sum(
        p.numel() for flat in flat_params(wrapped) if flat.grad is not None for p in flat._params if not p.requires_grad
    )


def mixed_dtypes(name: str, trainable_units: bool = True) -> dict:
    """A bf16 base beside fp32 adapters (what a bf16-mixed run of a bf16 checkpoint holds): FSDP must wrap it."""
    build, task, targets = MODELS[name]
    model = apply_lora(build().to(torch.bfloat16), task, {"r": 4, "target_modules": targets})
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    try:
        policy = NoSplitModulesPolicy(trainable_units=trainable_units)
        FSDP(model, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device("cpu"))
    except ValueError as err:
        return {"bf16_base_wraps": False, "bf16_error": str(err)[:200]}
    return {"bf16_base_wraps": True}


def check(name: str, trainable_units: bool = True) -> dict:
    build, task, targets = MODELS[name]
    model = apply_lora(build(), task, {"r": 4, "target_modules": targets})
    roles = {n: (r.role, r.decay) for n, r in parameter_roles(model).items()}
    sizes = trainable_sizes(model)
    reference = describe_groups(loraplus_param_groups(model, lr=1e-3, ratio=16), model, sizes)
    policy = NoSplitModulesPolicy(trainable_units=trainable_units)
    wrapped = FSDP(model, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device("cpu"))
    with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT):
        keys = set(wrapped.state_dict())
    groups = loraplus_param_groups(wrapped, lr=1e-3, ratio=16)
    b = [p for g in groups if g["name"] == "lora_B" for p in g["params"]]
    before = [p.detach().clone() for p in b]
    optimizer = torch.optim.AdamW(groups)
    inputs = {
        "input_ids": torch.randint(0, 128, (2, 8)),
        "labels": torch.randint(0, 2, (2,)) if task == "sequence_classification" else torch.randint(0, 128, (2, 8)),
    }
    wrapped(**inputs).loss.backward()
    optimizer.step()
    return {
        "model": name,
        "trainable_units": trainable_units,
        "mixed_flat_params": sum(len({p.requires_grad for p in flat._params}) > 1 for flat in flat_params(wrapped)),
        "frozen_with_grad": frozen_with_grad(wrapped),
        "wrapped": sorted(
            {type(m.module).__name__ for m in wrapped.modules() if isinstance(m, FSDP)} - {type(model).__name__}
        ),
        "roles_equal": {clean_name(n): (r.role, r.decay) for n, r in parameter_roles(wrapped).items()} == roles,
        "groups_equal": describe_groups(groups, wrapped, sizes) == reference,
        "groups": [g["name"] for g in groups],
        "b_moved": all(not torch.equal(x, p.detach()) for x, p in zip(before, b, strict=True)),
        "trainable_in_full_state_dict": set(sizes) <= keys,
    }


if __name__ == "__main__":
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("gloo", rank=0, world_size=1)
    for model_name in MODELS:
        print(json.dumps(check(model_name) | mixed_dtypes(model_name)))
    # the blocks alone (what the policy did before trainable units): the flat parameters mix adapters and frozen weights
    print(json.dumps(check("llama", trainable_units=False) | mixed_dtypes("llama", trainable_units=False)))
    dist.destroy_process_group()
