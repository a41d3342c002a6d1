"""QLoRA: a 4-bit (NF4) or 8-bit base model through bitsandbytes, LoRA+ adapters on top.

The base model is loaded with ``BitsAndBytesConfig`` and prepared with PEFT's
``prepare_model_for_kbit_training`` (norms in fp32, input gradients on, optional gradient
checkpointing). The LoRA+ groups are unchanged: quantised base weights are frozen, so they are in
no group, and roles come from PEFT's module structure (bitsandbytes layers are LoRA-wrapped like
``nn.Linear``). bitsandbytes needs a CUDA GPU: :func:`quantization_problems` says so up front.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

import torch

Quantization = Literal["4bit", "8bit"]


def quantization_problems(quantization: str | None) -> list[str]:
    """Why ``quantization`` cannot run here (empty when it can, or when it is None).

    Args:
        quantization: ``"4bit"``, ``"8bit"`` or None.

    Returns:
        One message per problem, naming the setting and the fix.
    """
    if quantization is None:
        return []
    if quantization not in ("4bit", "8bit"):
        return [f"`quantization={quantization!r}` must be '4bit', '8bit' or null."]
    problems = []
    if not torch.cuda.is_available():
        problems.append(
            f"`quantization={quantization!r}` (QLoRA) needs a CUDA GPU: bitsandbytes' quantised layers do not run "
            "on this machine (torch.cuda.is_available() is False). Set `model.quantization: null` here."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        problems.append(f"`quantization={quantization!r}` needs bitsandbytes: `pip install bitsandbytes`.")
    return problems


def quantization_kwargs(quantization: Quantization, compute_dtype: torch.dtype = torch.bfloat16) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments that load the base model quantised.

    Args:
        quantization: ``"4bit"`` (NF4, double quantisation, as in QLoRA) or ``"8bit"`` (LLM.int8()).
        compute_dtype: Dtype of the 4-bit matmuls.

    Returns:
        ``{"quantization_config": BitsAndBytesConfig(...)}``.
    """
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    return {"quantization_config": config}
