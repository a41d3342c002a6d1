"""``AdapterExport``: write the trained adapter in PEFT format when ``fit`` ends."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from lit_loraplus.training.distributed import strategy_kind
from lit_loraplus.training.export import save_adapter


class AdapterExport(Callback):
    """Export the adapter in PEFT format when ``fit`` ends (written by global rank 0).

    Under FSDP / DeepSpeed with several processes the weights are first gathered on every rank;
    ``merge`` is then refused (export the merged model from the checkpoint).

    Args:
        output_dir: Folder for ``adapter_config.json``, ``adapter_model.safetensors`` and ``loraplus.json``.
        merge: Write the merged full model instead.

    Example:
        ``trainer: {callbacks: [{class_path: lit_loraplus.callbacks.AdapterExport, init_args: {output_dir: out}}]}``
    """

    def __init__(self, output_dir: str, merge: bool = False) -> None:
        self.output_dir = output_dir
        self.merge = merge

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Every rank takes part in gathering (a collective under FSDP / DeepSpeed); rank 0 writes.
        sharded = strategy_kind(trainer.strategy) != "" and trainer.world_size > 1
        state = trainer.strategy.lightning_module_state_dict() if sharded else None
        if trainer.is_global_zero:
            save_adapter(pl_module, self.output_dir, merge=self.merge, state_dict=state)
