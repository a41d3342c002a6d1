"""LoRA+ under DDP, FSDP and DeepSpeed: identical groups on every rank, strategy checks, FSDP wrapping.

- :func:`describe_groups` / :func:`check_groups_across_ranks`: every rank must build the same groups
  (names, roles, parameter counts and sizes, learning rates, weight decay). Sizes come from
  :func:`trainable_sizes`, recorded *before* a strategy wraps or shards the model, so FSDP's
  sharded views (whose local ``numel`` differs between ranks) compare equal.
- :func:`strategy_problems`: FSDP / DeepSpeed asked for where they cannot run (no CUDA, no
  ``deepspeed`` package), reported before anything is built.
- :class:`NoSplitModulesPolicy`: an FSDP auto-wrap policy that wraps the transformer blocks a
  transformers model names in ``_no_split_modules`` (``LlamaDecoderLayer``, ``BertLayer``, ...),
  so one YAML file serves every architecture, and each trainable leaf (LoRA A/B) as its own unit,
  so no flat parameter mixes adapters with frozen weights.

FSDP1 with ``use_orig_params=True`` (Lightning's default since 2.1; with ``False`` the optimizer
would see flattened parameters and no per-group learning rate could exist) keeps the original
parameters, as views into the flat shard, and their module structure, so
:func:`lit_loraplus.groups.parameter_roles` — which decides roles from PEFT's module classes, not
names or shapes — gives every parameter the role it had before wrapping. Names gain
``_fsdp_wrapped_module.`` segments; :func:`clean_name` strips them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

# Segments that wrappers insert into parameter names (FSDP1, activation checkpointing, torch.compile).
WRAPPER_SEGMENTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def clean_name(name: str) -> str:
    """A parameter name without the segments FSDP / checkpoint / compile wrappers insert.

    Args:
        name: A name from ``named_parameters()`` of a possibly wrapped module.

    Returns:
        The name the unwrapped module gives the same parameter.
    """
    for segment in WRAPPER_SEGMENTS:
        name = name.replace(segment, "")
    return name


def trainable_sizes(model: nn.Module) -> dict[str, int]:
    """``{clean name: numel}`` of the trainable parameters; call it before a strategy shards the model.

    Args:
        model: The (PEFT) model.

    Returns:
        Element count of every trainable parameter, by unwrapped name.
    """
    # DeepSpeed ZeRO-3 partitions parameters at creation: ds_numel is the full size.
    return {
        clean_name(n): getattr(p, "ds_numel", None) or p.numel() for n, p in model.named_parameters() if p.requires_grad
    }


def describe_groups(groups: Iterable[dict[str, Any]], model: nn.Module, sizes: dict[str, int]) -> list[dict[str, Any]]:
    """A small, rank-independent description of optimizer groups, for comparison across ranks.

    Args:
        groups: Optimizer param groups (with ``name``/``role``, as LoRA+ builds them).
        model: The model whose parameters the groups hold.
        sizes: :func:`trainable_sizes` of the model before wrapping (a missing name falls back to
            the parameter's current ``numel``).

    Returns:
        One dict per group: ``name``, ``role``, ``params`` (count), ``numel``, ``lr``, ``weight_decay``.
    """
    names = {id(p): clean_name(n) for n, p in model.named_parameters()}
    described = []
    for group in groups:
        params = group["params"]
        numel = sum(sizes.get(names.get(id(p), ""), p.numel()) for p in params)
        described.append(
            {
                "name": group.get("name"),
                "role": group.get("role"),
                "params": len(params),
                "numel": numel,
                "lr": float(group["lr"]),
                "weight_decay": float(group.get("weight_decay", 0.0)),
            }
        )
    return described


def compare_group_descriptions(per_rank: list[list[dict[str, Any]]]) -> None:
    """Raise if any rank's groups differ from rank 0's.

    Args:
        per_rank: :func:`describe_groups` of every rank, in rank order.

    Raises:
        RuntimeError: Naming the first differing rank and group, with both descriptions.
    """
    reference = per_rank[0]
    for rank, groups in enumerate(per_rank[1:], start=1):
        if [g["name"] for g in groups] != [g["name"] for g in reference]:
            raise RuntimeError(
                f"LoRA+ optimizer groups differ across ranks: rank {rank} has groups {[g['name'] for g in groups]}, "
                f"rank 0 has {[g['name'] for g in reference]}. Every rank must build the same model and LoRA "
                "settings (same `model.*` config, same adapter files)."
            )
        for mine, theirs in zip(groups, reference, strict=True):
            if mine != theirs:
                raise RuntimeError(
                    f"LoRA+ optimizer group {mine['name']!r} differs across ranks: rank {rank} has {mine}, rank 0 "
                    f"has {theirs}. Every rank must build the same model and LoRA settings."
                )


def check_groups_across_ranks(description: list[dict[str, Any]]) -> None:
    """Gather every rank's group description and compare (no-op without an initialised process group).

    Args:
        description: This rank's :func:`describe_groups`.

    Raises:
        RuntimeError: As :func:`compare_group_descriptions`.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, description)
    compare_group_descriptions(gathered)


def strategy_kind(strategy: Any) -> str:
    """``"fsdp"``, ``"deepspeed"`` or ``""`` (anything else) for a Trainer ``strategy`` value.

    Args:
        strategy: A strategy name, a ``class_path`` dict or a Strategy instance.

    Returns:
        The kind, lower case.
    """
    if isinstance(strategy, dict):
        strategy = strategy.get("class_path", "")
    text = (strategy if isinstance(strategy, str) else type(strategy).__name__).lower()
    return next((kind for kind in ("fsdp", "deepspeed") if kind in text), "")


def strategy_problems(strategy: Any, accelerator: Any) -> list[str]:
    """What stops LoRA+ from running with a strategy, found before anything is built.

    Args:
        strategy: ``trainer.strategy`` as configured (a name, a ``class_path`` dict or an instance).
        accelerator: ``trainer.accelerator`` as configured.

    Returns:
        One message per problem (empty when fine).
    """
    kind = strategy_kind(strategy)
    if not kind:
        return []
    problems = []
    accel = str(accelerator).lower()
    if accel == "cpu" or (accel in ("auto", "gpu", "cuda", "none") and not torch.cuda.is_available()):
        problems.append(
            f"`trainer.strategy={kind}` needs CUDA GPUs, but `trainer.accelerator={accelerator}` and "
            f"torch.cuda.is_available()={torch.cuda.is_available()}. Run on a GPU machine with a CUDA build of "
            "torch, or use `trainer.strategy=ddp` (CPU: gloo) instead."
        )
    if kind == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        problems.append(
            "`trainer.strategy=deepspeed` needs the `deepspeed` package: `pip install deepspeed` (on a machine with "
            "the CUDA toolkit), or choose `trainer.strategy=ddp` / `fsdp`."
        )
    return problems


class NoSplitModulesPolicy:
    """FSDP auto-wrap policy: the transformer blocks, and every module that owns trainable parameters, as units.

    transformers models name their transformer block classes in ``_no_split_modules``
    (``LlamaDecoderLayer``, ``BertLayer``, ``GPT2Block``, ...). FSDP visits a parent (``recurse=True``)
    before its children, so the names are collected from the ``PreTrainedModel`` on the way down and
    the blocks below it are wrapped: no per-architecture class list in the YAML.

    Every leaf layer with a trainable weight (the LoRA ``A``/``B`` linears, a trained head or
    embedding) becomes a unit of its own first, as PEFT's ``fsdp_auto_wrap_policy`` does. Otherwise a
    block's flat parameter would hold the adapters next to the frozen weights: FSDP1 then refuses a
    bf16/fp16 base beside fp32 adapters (one flat parameter has one dtype), and in one dtype it computes
    and keeps gradients for the whole flat parameter, frozen weights included.

    Args:
        classes: Extra class names to wrap (in addition to ``_no_split_modules``).
        min_num_params: Never wrap a block smaller than this (FSDP's size-based rule, 0 = off); trainable
            leaves are wrapped whatever their size.
        trainable_units: Wrap the leaf layers with a trainable weight as their own units (default).

    Example:
        >>> FSDPStrategy(auto_wrap_policy=NoSplitModulesPolicy(), use_orig_params=True)  # doctest: +SKIP
    """

    def __init__(self, classes: list[str] | None = None, min_num_params: int = 0, trainable_units: bool = True) -> None:
        self.names = set(classes or [])
        self.min_num_params = min_num_params
        self.trainable_units = trainable_units

    def __call__(self, module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
        """FSDP's policy protocol: ``recurse`` asks whether to descend, otherwise whether to wrap ``module``."""
        if recurse:
            self.names.update(getattr(module, "_no_split_modules", None) or [])
            return True
        weight = getattr(module, "weight", None)
        if self.trainable_units and next(module.children(), None) is None:
            # A layer with a trainable weight (Linear, Embedding), as PEFT's policy: FSDP gathers a unit's
            # parameters in its forward, so a ParameterDict (embedding LoRA's A/B), never called, must stay inside.
            if isinstance(weight, nn.Parameter) and weight.requires_grad:
                return True
        return type(module).__name__ in self.names and nonwrapped_numel >= self.min_num_params
