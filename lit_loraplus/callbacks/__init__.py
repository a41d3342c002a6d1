"""Lightning callbacks that show what LoRA+ does to the adapters: update norms and feature-learning terms.

Both work with any LightningModule whose model contains PEFT LoRA layers, and log under ``lora/``.
"""

from lit_loraplus.callbacks.feature_learning import FeatureLearningMonitor
from lit_loraplus.callbacks.update_norms import UpdateNormMonitor

__all__ = ["FeatureLearningMonitor", "UpdateNormMonitor"]
