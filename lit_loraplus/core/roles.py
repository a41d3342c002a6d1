"""The role of every trainable parameter of a PEFT LoRA model.

A role is decided by *module structure* — which PEFT layer owns the parameter and in which part
(:mod:`lit_loraplus.core.adapters`, the only module that knows PEFT's attribute names) — never
by ``ndim`` or by a substring of the name, so a user module called ``my_lora_B_proj`` stays an
ordinary module and FSDP's flattened 1-D parameters keep their roles.

Precedence (first match wins), as in the documentation's table:

==============  ==========================================================  ===========
role            which parameters                                            decays?
==============  ==========================================================  ===========
lora_A          ``<LoraLayer>.lora_A.<adapter>.weight``                      yes
lora_B          ``<LoraLayer>.lora_B.<adapter>.weight`` (+ its bias when     weight yes,
                ``lora_bias=True``: the bias scales like B)                  bias no
embedding_A     ``<LoraLayer>.lora_embedding_A.<adapter>``                   yes
embedding_B     ``<LoraLayer>.lora_embedding_B.<adapter>``                   yes
magnitude       ``<LoraLayer>.lora_magnitude_vector.<adapter>.weight`` (DoRA) no
saved           everything inside a ``modules_to_save`` copy (heads, ...)    biases/norms no
tokens          ``trainable_token_indices`` deltas                          no
no_decay        other biases; weights of LayerNorm/RMSNorm/GroupNorm        no
other           anything else trainable                                     yes
==============  ==========================================================  ===========
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from peft.tuners.lora import LoraLayer
from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import ModulesToSaveWrapper, PeftType
from torch import nn

from lit_loraplus.core.adapters import Part, lora_layer_parameters, saved_copy_modules, token_delta_parameters

Role = Literal["lora_A", "lora_B", "embedding_A", "embedding_B", "magnitude", "saved", "tokens", "no_decay", "other"]
ROLES: tuple[Role, ...] = (
    "lora_A",
    "lora_B",
    "embedding_A",
    "embedding_B",
    "magnitude",
    "saved",
    "tokens",
    "no_decay",
    "other",
)

LORA_ROLES: tuple[Role, ...] = ("lora_A", "lora_B", "embedding_A", "embedding_B")  # the low-rank matrices
NEVER_DECAY: tuple[Role, ...] = ("magnitude", "tokens", "no_decay")  # roles whose parameters never decay
_PART_ROLE: dict[Part, Role] = {
    "A": "lora_A",
    "B": "lora_B",
    "embedding_A": "embedding_A",
    "embedding_B": "embedding_B",
    "magnitude": "magnitude",
}
_NORM_CLASSES = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)


@dataclass(frozen=True)
class ParamRole:
    """Where one trainable parameter belongs.

    Attributes:
        role: One of :data:`ROLES`.
        decay: Whether weight decay applies (biases, norm weights, DoRA magnitudes and token
            deltas never decay).
    """

    role: Role
    decay: bool


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer, recognised by class.

    Args:
        module: Any module.

    Returns:
        True for ``nn.LayerNorm``/``nn.RMSNorm``/``nn.GroupNorm`` and for any class whose name ends
        in ``LayerNorm`` or ``RMSNorm`` (``LlamaRMSNorm``, ``T5LayerNorm``, ...).
    """
    name = type(module).__name__
    return isinstance(module, _NORM_CLASSES) or name.endswith(("LayerNorm", "RMSNorm"))


def _plain_decays(owner: nn.Module, local_name: str) -> bool:
    """Biases and norm weights do not decay; everything else does."""
    return local_name != "bias" and not is_norm(owner)


def check_lora_model(model: nn.Module) -> None:
    """Refuse models whose adapters are not LoRA.

    Args:
        model: A ``PeftModel`` or a plain module with adapters injected.

    Raises:
        TypeError: If a non-LoRA PEFT tuner (prefix tuning, IA3, LoHa, ...) is present.
    """
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict):
        bad = {
            name: PeftType(cfg.peft_type).value for name, cfg in peft_config.items() if cfg.peft_type != PeftType.LORA
        }
        if bad:
            raise TypeError(
                f"LoRA+ needs LoRA adapters, but the model has adapters of another PEFT type: {bad}. "
                "Build the model with `peft.LoraConfig` (prefix tuning, IA3, LoHa, ... have no A/B "
                "matrices whose learning rates LoRA+ could set)."
            )
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer) and not isinstance(module, LoraLayer | TrainableTokensLayer):
            raise TypeError(
                f"LoRA+ needs LoRA adapters, but module {name!r} is a {type(module).__name__} "
                "(a non-LoRA PEFT tuner). Build the model with `peft.LoraConfig`."
            )


def parameter_roles(model: nn.Module) -> dict[str, ParamRole]:
    """Classify every trainable parameter of ``model`` into exactly one role.

    Frozen parameters (base weights, inactive adapters) are left out. Shared (tied) parameters
    appear once, under the first name ``named_parameters`` gives them.

    Args:
        model: A PEFT LoRA model (``PeftModel`` or a module with LoRA layers injected).

    Returns:
        ``{parameter name: ParamRole}`` in ``model.named_parameters()`` order.

    Raises:
        TypeError: If the model carries a non-LoRA PEFT tuner.
    """
    check_lora_model(model)
    found: dict[int, ParamRole] = {}  # id(param) -> role; passes run in precedence order
    modules = list(model.modules())
    for module in modules:
        if isinstance(module, LoraLayer):
            for part, local, param in lora_layer_parameters(module):
                # The LoRA B bias (lora_bias=True) scales like B but, being a bias, does not decay.
                decay = part != "magnitude" and local.rsplit(".", 1)[-1] != "bias"
                found.setdefault(id(param), ParamRole(_PART_ROLE[part], decay))
    for module in modules:
        if isinstance(module, ModulesToSaveWrapper):
            for sub in saved_copy_modules(module):
                for local, param in sub.named_parameters(recurse=False):
                    found.setdefault(id(param), ParamRole("saved", _plain_decays(sub, local)))
    for module in modules:
        if isinstance(module, TrainableTokensLayer):
            for param in token_delta_parameters(module):
                found.setdefault(id(param), ParamRole("tokens", False))
    for module in modules:
        for local, param in module.named_parameters(recurse=False):
            if id(param) not in found:
                decays = _plain_decays(module, local)
                found[id(param)] = ParamRole("other" if decays else "no_decay", decays)
    return {name: found[id(p)] for name, p in model.named_parameters() if p.requires_grad}


def lora_target_candidates(model: nn.Module) -> list[str]:
    """Short names of the modules that ``LoraConfig(target_modules=...)`` can adapt.

    Args:
        model: Any module.

    Returns:
        Sorted unique last name components of the Linear, Conv1D (GPT-2), Conv and Embedding
        modules, e.g. ``["c_attn", "c_fc", "c_proj", "wte"]``.
    """
    from transformers.pytorch_utils import Conv1D

    kinds = (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d, Conv1D)
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if name and isinstance(m, kinds)})
