"""Writing a trained module's adapter in PEFT format (loadable with plain ``PeftModel.from_pretrained``) or merged.

Besides PEFT's ``adapter_config.json`` and ``adapter_model.safetensors``, an export carries
``loraplus.json``: the LoRA+ settings (λ, learning rates, schedules, init), the optimizer
groups the run trained with and, when ``lr``/``ratio`` were ``"auto"``, the search that chose
them, so a reader of the adapter knows how it was made.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from lit_loraplus._version import __version__
from lit_loraplus.core.optim import loraplus_param_groups

SETTINGS_FILE = "loraplus.json"
_SETTINGS = (
    "task", "lr", "ratio", "ratio_schedule", "ratio_warmup_steps", "initial_ratio", "lr_schedule", "warmup_steps",
    "min_lr_ratio", "weight_decay", "embedding_lr", "head_lr", "magnitude_lr", "init", "r", "alpha", "dropout",
    "target_modules", "use_rslora", "use_dora", "bias", "modules_to_save",
)  # fmt: skip


def loraplus_settings(module: nn.Module) -> dict[str, Any]:
    """The LoRA+ settings and optimizer groups of a LoraPlusModule, JSON-ready.

    Args:
        module: A built LoraPlusModule.

    Returns:
        ``{"settings": {...}, "groups": [{"name", "role", "lr", "weight_decay", "parameters", "numel"}],
        "search": {...} or None}`` (``search``: the ``lr``/``ratio="auto"`` record, see
        :meth:`~lit_loraplus.core.halving.SearchOutcome.to_dict`).
    """
    h = module.hparams
    groups = loraplus_param_groups(module.model, module.group_settings)
    return {
        "lit_loraplus_version": __version__,
        "settings": {k: h.get(k) for k in _SETTINGS} | {"optimizer": repr(module.optimizer)},
        "groups": [
            {
                "name": g["name"],
                "role": g["role"],
                "lr": g["lr"],
                "weight_decay": g["weight_decay"],
                "parameters": len(g["params"]),
                "numel": sum(p.numel() for p in g["params"]),
            }
            for g in groups
        ],
        "search": getattr(module, "search_record", None),
    }


def save_adapter(
    module: nn.Module, directory: str | Path, merge: bool = False, state_dict: dict[str, Tensor] | None = None
) -> Path:
    """Write a LoraPlusModule's adapter in PEFT format, or the merged full model.

    Args:
        module: A built LoraPlusModule.
        directory: Output folder (created).
        merge: Save ``merge_and_unload()`` of a copy (the module keeps its adapter) as a plain
            transformers model instead of the adapter.
        state_dict: The LightningModule's full state dict as gathered by the strategy (keys
            ``model.<PEFT key>``); needed when the model is sharded (FSDP, DeepSpeed ZeRO-3), where
            the module's own parameters are only this rank's shard.

    Returns:
        The folder.

    Raises:
        RuntimeError: If the module's model is not built yet.
        ValueError: For ``merge`` together with a gathered ``state_dict`` (merging needs the whole
            model in one process: export from the checkpoint instead).
    """
    if module.model is None:
        raise RuntimeError("The model is not built yet: call `module.configure_model()` or train first.")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if merge and state_dict is not None:
        raise ValueError(
            "merge=True needs the whole model in one process, but this one is sharded: export from the "
            "checkpoint instead (`lit-loraplus export --ckpt_path ... --output_dir ... --merge`)."
        )
    if merge:
        copy.deepcopy(module.model).merge_and_unload().save_pretrained(out)
    elif state_dict is not None:
        peft_state = {k.removeprefix("model."): v for k, v in state_dict.items() if k.startswith("model.")}
        module.model.save_pretrained(out, state_dict=peft_state)
    else:
        module.model.save_pretrained(out)
    (out / SETTINGS_FILE).write_text(json.dumps(loraplus_settings(module), indent=2, default=str) + "\n")
    return out
