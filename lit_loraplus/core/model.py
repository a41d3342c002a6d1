"""Build the PEFT LoRA model a LoraPlusModule trains: load, wrap, initialise.

Pure transformers + PEFT (no Lightning). Every failure a user can cause — a hub id with no
network, a model that does not fit the task, ``target_modules`` that match nothing — becomes
one clear error naming the setting and the fix, raised before any training.
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from torch import nn

from lit_loraplus.core.adapters import adapter_matrices
from lit_loraplus.core.resources import resolve_path
from lit_loraplus.core.roles import lora_target_candidates

Task = Literal["sequence_classification", "causal_lm"]
Init = Literal["standard", "loraplus"]
TASKS: tuple[str, ...] = ("sequence_classification", "causal_lm")
INITS: tuple[str, ...] = ("standard", "loraplus")  # PEFT's (A random, B = 0) and the paper's Init[2]
_PEFT_TASK = {"sequence_classification": "SEQ_CLS", "causal_lm": "CAUSAL_LM"}
# Class-name endings that identify a transformers model's head.
_HEAD_SUFFIX = {"sequence_classification": ("ForSequenceClassification",), "causal_lm": ("ForCausalLM", "LMHeadModel")}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def load_pretrained(
    name: str, task: Task, num_labels: int | None = None, id2label: dict[int, str] | None = None, **kwargs: Any
) -> nn.Module:
    """Load a transformers model for ``task`` from a hub id or a local folder.

    Args:
        name: Hub id (``roberta-base``), local directory with ``config.json``, or ``pkg://`` path.
        task: ``sequence_classification`` or ``causal_lm``.
        num_labels: Classes (1 = regression) for sequence classification.
        id2label: Label names recorded in the model config.
        **kwargs: Passed to ``from_pretrained`` (``dtype``, ``gguf_file``, ...).

    Returns:
        The model, in train mode (transformers 5 returns eval mode: dropout would be off).

    Raises:
        ValueError: Unknown task, an unreachable hub id, or a model with no head for the task.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if task not in TASKS:
        raise ValueError(f"`task={task!r}` is not one of {TASKS}.")
    if task == "sequence_classification":
        auto = AutoModelForSequenceClassification
        if num_labels is not None:
            kwargs["num_labels"] = num_labels
            # A head saved for another label set is replaced by a fresh one (transformers reports it).
            kwargs.setdefault("ignore_mismatched_sizes", True)
        if id2label:
            kwargs["id2label"] = {int(k): v for k, v in id2label.items()}
            kwargs["label2id"] = {v: int(k) for k, v in id2label.items()}
    else:
        auto = AutoModelForCausalLM
    path = os.path.expanduser(resolve_path(name))
    local = os.path.isdir(path)
    try:
        model = auto.from_pretrained(path if local else name, **kwargs)
    except ValueError as err:  # transformers: "Unrecognized configuration class ... for this kind of AutoModel"
        if "Unrecognized configuration class" not in str(err):
            raise
        raise ValueError(
            f"`model={name!r}` has no {task} head (transformers says: {str(err).splitlines()[0]}). "
            f"Pick a `task` that fits the model or a model that supports `task={task!r}`."
        ) from err
    except OSError as err:
        if local:
            raise
        hint = " HF_HUB_OFFLINE is set, so the hub is not consulted." if _offline() else ""
        raise ValueError(
            f"`model={name!r}` is not a local directory and could not be fetched from the Hugging Face hub.{hint} "
            "Without network access, download the model elsewhere (`huggingface-cli download NAME --local-dir DIR`) "
            f"and pass `model=DIR`. Details: {err}"
        ) from err
    if task == "sequence_classification" and getattr(model.config, "pad_token_id", None) is None:
        # GPT-2/Llama classifiers find each row's last token through pad_token_id; their tokenizers
        # pad with EOS (see lit_loraplus.data.base.load_tokenizer).
        model.config.pad_token_id = model.config.eos_token_id
    return model.train()


def check_model_task(model: nn.Module, task: Task) -> None:
    """Refuse a model instance whose head does not fit ``task``.

    Args:
        model: A transformers model (or a PeftModel around one).
        task: The task it is meant to train.

    Raises:
        ValueError: If the class name shows another head (e.g. ``LlamaForCausalLM`` for
            ``sequence_classification``).
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    cls = type(base).__name__
    known = any(cls.endswith(s) for suffixes in _HEAD_SUFFIX.values() for s in suffixes)
    if known and not cls.endswith(_HEAD_SUFFIX[task]):
        other = next(t for t, suffixes in _HEAD_SUFFIX.items() if cls.endswith(suffixes))
        raise ValueError(
            f"`task={task!r}` does not match the model: {cls} is a {other} model. "
            f"Set `task={other!r}` or load the model with a {task} head."
        )


def apply_lora(model: nn.Module, task: Task, config: dict[str, Any]) -> PeftModel:
    """Wrap ``model`` with a new LoRA adapter.

    Args:
        model: A transformers model.
        task: Decides PEFT's task type (``SEQ_CLS`` keeps the classifier head trainable).
        config: ``peft.LoraConfig`` keyword arguments.

    Returns:
        The PeftModel.

    Raises:
        ValueError: If ``target_modules`` match nothing (the message lists candidate names).
    """
    try:
        return get_peft_model(model, LoraConfig(task_type=_PEFT_TASK[task], **config))
    except ValueError as err:
        if "not found in the base model" not in str(err) and "target_modules" not in str(err):
            raise
        raise ValueError(
            f"`target_modules={config.get('target_modules')!r}` match no module of {type(model).__name__}. "
            f"Names available: {lora_target_candidates(model)}. (PEFT says: {err})"
        ) from err


def init_loraplus_(model: nn.Module) -> int:
    """Re-initialise active LoRA adapters to the paper's Init[2]: B random, A = 0.

    As in the authors' code: B gets the initialiser PEFT uses for A (Kaiming-uniform, a = √5, so
    fan-in is r) and A is zeroed, so B·A = 0 and training starts from the base model. Embedding
    adapters are left as PEFT makes them (A = 0, B normal: already Init[2]-like). DoRA magnitudes
    stay valid because B·A is still 0; rsLoRA only changes the scaling, not the matrices.

    Args:
        model: A PEFT LoRA model.

    Returns:
        The number of (layer, adapter) pairs re-initialised.
    """
    count = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, LoraLayer):
                continue
            for adapter in module.active_adapters:
                found = adapter_matrices(module, adapter)
                if found is not None and found[2] != "embedding":
                    A, B, _ = found
                    nn.init.kaiming_uniform_(B, a=math.sqrt(5))
                    nn.init.zeros_(A)
                    count += 1
    return count


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Activation checkpointing with ``use_reentrant=False`` plus PEFT's input-grad hook.

    Args:
        model: A transformers model (before or after PEFT wrapping).

    Raises:
        ValueError: If the model does not support gradient checkpointing.
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise ValueError(
            f"`gradient_checkpointing=True` but {type(base).__name__} does not support it; set it to False."
        )
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # With frozen embeddings no input needs a gradient; PEFT's hook makes checkpointed blocks see one.
    base.enable_input_require_grads()
