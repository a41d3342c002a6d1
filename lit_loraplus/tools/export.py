"""Export a LoraPlusModule checkpoint as a PEFT adapter (or a merged model), outside of training."""

from __future__ import annotations

from pathlib import Path

from lit_loraplus.training.export import save_adapter
from lit_loraplus.training.module import LoraPlusModule


def export_checkpoint(ckpt_path: str | Path, output_dir: str | Path, merge: bool = False) -> Path:
    """Export the adapter (or merged model) of a LoraPlusModule Lightning checkpoint.

    Args:
        ckpt_path: A checkpoint written while training a LoraPlusModule.
        output_dir: Output folder.
        merge: Write the merged full model instead of the adapter.

    Returns:
        The folder.
    """
    module = LoraPlusModule.load_from_checkpoint(ckpt_path, map_location="cpu")
    return save_adapter(module, output_dir, merge=merge)
