"""The Lightning layer: ``LoraPlusModule`` and what it needs from Lightning (checkpoints, precision, strategies)."""

from lit_loraplus.training.checkpoint_io import AtomicCheckpointIO
from lit_loraplus.training.distributed import NoSplitModulesPolicy
from lit_loraplus.training.module import LoraPlusModule
from lit_loraplus.training.precision import AdapterFP32Precision

__all__ = ["AdapterFP32Precision", "AtomicCheckpointIO", "LoraPlusModule", "NoSplitModulesPolicy"]
