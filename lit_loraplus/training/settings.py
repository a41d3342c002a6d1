"""Every check of ``LoraPlusModule``'s settings, collected so that one error lists all problems.

Run at construction, before any model is loaded: the LoRA shape, the group learning rates
(:class:`~lit_loraplus.core.settings.GroupSettings`), both schedules, QLoRA, ``torch.compile``
arguments and the injected optimizer.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any, Literal, get_args

import torch

from lit_loraplus.core.checks import in_range, int_at_least, one_of, positive
from lit_loraplus.core.model import INITS, TASKS
from lit_loraplus.core.quantization import quantization_problems
from lit_loraplus.core.schedule import LRSchedule, RatioSchedule
from lit_loraplus.core.search import AUTO, DEFAULT_LR, SearchSettings
from lit_loraplus.core.settings import DEFAULT_RATIO, GroupSettings

BIASES = ("none", "all", "lora_only")
HeadBias = Literal["model", "label_mean"]
HEAD_BIASES: tuple[str, ...] = get_args(HeadBias)


def optimizer_overrides(optimizer: Any) -> dict[str, Any]:
    """Learning-rate / weight-decay values a CLI-built optimizer callable sets away from its defaults.

    LightningCLI turns ``model.optimizer.init_args`` into a ``functools.partial`` holding every init
    argument. LoRA+ sets ``lr`` and ``weight_decay`` per group, so a value given there would be
    silently overridden: we find it to refuse it.

    Args:
        optimizer: The optimizer class or callable.

    Returns:
        ``{name: value}`` for ``lr``/``weight_decay`` set to a non-default value.
    """
    if not isinstance(optimizer, functools.partial):
        return {}
    cls = next((a for a in optimizer.args if isinstance(a, type)), optimizer.func)
    try:
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in optimizer.keywords.items() if k in ("lr", "weight_decay") and v != defaults.get(k)}


def compile_problems(compile: bool | dict[str, Any]) -> list[str]:
    """What is wrong with a ``compile`` setting (empty if nothing): a bool, or ``torch.compile``'s arguments.

    Args:
        compile: The ``LoraPlusModule(compile=...)`` value.

    Returns:
        One message per problem, naming the setting, the value and the fix.
    """
    if isinstance(compile, bool):
        return []
    if not isinstance(compile, dict):
        return [f"`compile={compile!r}` must be true/false or a dict of torch.compile arguments."]
    valid = set(inspect.signature(torch.compile).parameters) - {"model"}
    if unknown := sorted(set(compile) - valid):
        return [f"`compile` has unknown torch.compile arguments {unknown}; valid: {sorted(valid)}."]
    return []


def head_bias_problems(h: Mapping[str, Any]) -> list[str]:
    """What is wrong with a ``head_bias`` setting given the task, ``num_labels`` and ``adapter`` (empty if nothing).

    Args:
        h: The module's init arguments by name (a checkpoint from before the setting has none: ``"model"``).

    Returns:
        One message per problem, naming the setting, the value and the fix.
    """
    value = h.get("head_bias", "model")
    problems = one_of("head_bias", value, HEAD_BIASES)
    if value != "label_mean":
        return problems
    if h["task"] != "sequence_classification" or h["num_labels"] not in (None, 1):
        problems.append(
            f"`head_bias='label_mean'` starts a regression head (one output) at the training labels' mean, but "
            f"task={h['task']!r}, num_labels={h['num_labels']!r}: set `head_bias` to 'model', or train a regression "
            "head (task 'sequence_classification', num_labels 1)."
        )
    if h["adapter"] is not None:
        problems.append(
            f"`head_bias='label_mean'` sets a new head's bias, but `adapter={h['adapter']!r}` loads a trained head: "
            "drop one of them."
        )
    return problems


def module_problems(h: Mapping[str, Any], optimizer: Any) -> list[str]:
    """Every problem of a ``LoraPlusModule``'s settings (empty when all are valid).

    Args:
        h: The module's init arguments by name (its ``hparams``).
        optimizer: The injected optimizer callable.

    Returns:
        One message per problem, each naming the setting, the bad value and the fix.
    """
    problems = one_of("task", h["task"], TASKS) + int_at_least("r", h["r"], 1, "the LoRA rank")
    problems += positive("alpha", h["alpha"], "LoRA's scale is alpha/r")
    problems += in_range("dropout", h["dropout"], 0.0, 1.0, "LoRA dropout", high_open=True)
    problems += one_of("bias", h["bias"], BIASES) + one_of("init", h["init"], INITS)
    if h["init"] == "loraplus" and h["adapter"] is not None:
        problems.append(
            f"`init='loraplus'` re-initialises new adapters, but `adapter={h['adapter']!r}` loads trained ones: "
            "drop one of them."
        )
    groups = {k: h[k] for k in GroupSettings.field_names() if k in h}
    groups |= {k: default for k, default in (("lr", DEFAULT_LR), ("ratio", DEFAULT_RATIO)) if groups.get(k) == AUTO}
    # The search_* settings are checked even where nothing is "auto": a finished auto run's checkpoint holds the
    # chosen numbers beside them, and must load.
    search = {k.removeprefix("search_"): v for k, v in h.items() if k.startswith("search_")}
    problems += GroupSettings.problems_in(groups) + SearchSettings.problems_in(search)
    problems += LRSchedule.problems_of(h["lr_schedule"], None, h["warmup_steps"], h["min_lr_ratio"])
    problems += RatioSchedule.problems_of(h["ratio_schedule"], h["initial_ratio"], h["ratio_warmup_steps"])
    problems += quantization_problems(h["quantization"]) + compile_problems(h["compile"])
    problems += head_bias_problems(h)
    for key, value in optimizer_overrides(optimizer).items():
        problems.append(
            f"`model.optimizer.init_args.{key}={value!r}` would be overridden by the LoRA+ groups: "
            f"set `model.{key}` instead."
        )
    return problems
