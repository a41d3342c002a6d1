"""Lightning callbacks for LoRA+: the monitors (update norms, feature-learning terms), adapter-only
checkpoints with preemption, the adapter export at the end of ``fit``, plain-line progress and a prediction writer.

The monitors work with any LightningModule whose model contains PEFT LoRA layers and log under ``lora/``.
"""

from lit_loraplus.callbacks.checkpoint import AdapterCheckpoint
from lit_loraplus.callbacks.export import AdapterExport
from lit_loraplus.callbacks.feature_learning import FeatureLearningMonitor
from lit_loraplus.callbacks.prediction_writer import JsonlPredictionWriter
from lit_loraplus.callbacks.progress import ProgressLines
from lit_loraplus.callbacks.update_norms import UpdateNormMonitor

__all__ = [
    "AdapterCheckpoint",
    "AdapterExport",
    "FeatureLearningMonitor",
    "JsonlPredictionWriter",
    "ProgressLines",
    "UpdateNormMonitor",
]
