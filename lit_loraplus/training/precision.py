"""``bf16-true`` / ``16-true`` with the LoRA matrices (and so their optimizer state) kept in fp32.

Lightning's true-half precision casts the whole module, adapters included, before the optimizer
is built. In bf16 (8 significant bits) an update smaller than about 1/512 of a weight is rounded
away: measured on Kaiming-initialised A matrices (fan-in 768 / 4096), an Adam-sized update of
lr = 2e-5 is lost for 78 % / 50 % of the entries, lr = 1e-4 for 13 % / 0 % (test_scale_precision.py).
LoRA+ moves A at the small η, so A would stop learning first. ``AdapterFP32Precision`` casts the
frozen base to half precision (the memory saving) and the LoRA A/B and embedding A/B matrices
back to fp32; PEFT's LoRA layers cast their input to the adapter's dtype and the result back, so
the forward is unchanged. ``modules_to_save`` copies (e.g. the head), biases and norms stay in
half precision: they receive half-precision inputs. ``lit-loraplus`` swaps it in for
``trainer.precision: bf16-true`` / ``16-true``; from Python pass
``L.Trainer(plugins=[AdapterFP32Precision("bf16-true")])``. FSDP and DeepSpeed need their own
precision plugins (and FSDP one dtype per flat parameter): use ``bf16-mixed`` there, which keeps
fp32 master weights.
"""

from __future__ import annotations

import torch
from lightning.pytorch.plugins.precision import HalfPrecision
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from typing_extensions import override

from lit_loraplus.core.roles import LORA_ROLES, parameter_roles

TRUE_HALF = ("bf16-true", "16-true")
_HALF = (torch.bfloat16, torch.float16)


def upcast_adapters_(model: nn.Module) -> int:
    """Cast the trainable LoRA A/B and embedding A/B parameters held in bf16/fp16 to fp32, in place.

    Args:
        model: A PEFT LoRA model (or a module containing one).

    Returns:
        How many parameters were cast.
    """
    roles = parameter_roles(model)
    count = 0
    for name, param in model.named_parameters():
        where = roles.get(name)
        if where is not None and where.role in LORA_ROLES and param.dtype in _HALF:
            param.data = param.data.float()
            count += 1
    return count


def warn_half_precision_adapters(model: nn.Module) -> None:
    """Warn when LoRA A/B matrices are about to be trained in bf16/fp16 (e.g. ``L.Trainer(precision="bf16-true")``).

    Args:
        model: The PEFT model, after the precision plugin converted it.
    """
    roles = parameter_roles(model)
    params = dict(model.named_parameters())
    half = [n for n, r in roles.items() if r.role in LORA_ROLES and params[n].dtype in _HALF]
    if half:
        rank_zero_warn(
            f"{len(half)} LoRA matrices (e.g. {half[0]}) and their optimizer state are {params[half[0]].dtype}: "
            "bf16 rounds away updates below ~1/512 of a weight, so A (trained at the small η) stalls. Pass "
            "`plugins=[lit_loraplus.precision.AdapterFP32Precision('bf16-true')]` instead of `precision='bf16-true'` "
            "(lit-loraplus does this for you), or use `precision='bf16-mixed'`."
        )


class AdapterFP32Precision(HalfPrecision):
    """Lightning's ``bf16-true``/``16-true`` plugin, with the LoRA matrices re-cast to fp32 after the module cast.

    Args:
        precision: ``"bf16-true"`` or ``"16-true"``.
    """

    @override
    def convert_module(self, module: nn.Module) -> nn.Module:
        module = super().convert_module(module)
        upcast_adapters_(module)
        return module
