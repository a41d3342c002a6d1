"""MMLU (Hendrycks et al., 2021) scoring: the subject categories, the answer-letter choice, accuracy per category.

Pure torch + torchmetrics; the prompts and batches come from :class:`lit_loraplus.data.MMLUDataModule`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

CATEGORIES = ["STEM", "humanities", "social sciences", "other"]
# The standard subject -> super-category map of the MMLU reference code (categories.py).
_SUBJECTS_BY_CATEGORY = {
    "STEM": """abstract_algebra astronomy college_biology college_chemistry college_computer_science
        college_mathematics college_physics computer_security conceptual_physics electrical_engineering
        elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science
        high_school_mathematics high_school_physics high_school_statistics machine_learning""",
    "humanities": """formal_logic high_school_european_history high_school_us_history high_school_world_history
        international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy prehistory
        professional_law world_religions""",
    "social sciences": """econometrics high_school_geography high_school_government_and_politics
        high_school_macroeconomics high_school_microeconomics high_school_psychology human_sexuality
        professional_psychology public_relations security_studies sociology us_foreign_policy""",
    "other": """anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging management
        marketing medical_genetics miscellaneous nutrition professional_accounting professional_medicine virology""",
}
SUBJECT_CATEGORY: dict[str, str] = {s: c for c, names in _SUBJECTS_BY_CATEGORY.items() for s in names.split()}
SUBJECTS = sorted(SUBJECT_CATEGORY)  # the 57 subjects


def score_mmlu_batch(logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Predicted choice of each row: the largest of the four letter logits at the last real token.

    Args:
        logits: Causal-LM logits, (B, T, V).
        batch: An MMLU batch with ``attention_mask`` (B, T), ``choice_ids`` (B, 4) and ``answer`` (B,).

    Returns:
        ``(predictions, correct)``: the chosen letter index (B,) long in 0-3, and (B,) bool.
    """
    mask = batch["attention_mask"]
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (mask * positions).argmax(dim=1)  # (B,) last attended position, whichever side padding is on
    final = logits[torch.arange(logits.shape[0], device=logits.device), last]  # (B, V)
    predictions = final.gather(1, batch["choice_ids"]).argmax(dim=1)  # (B, 4) -> (B,)
    return predictions, predictions == batch["answer"]


class MMLUAccuracy(Metric):
    """Multiple-choice accuracy overall and per MMLU category (STEM, humanities, social sciences, other).

    Fed with the logits of an MMLU batch (:func:`score_mmlu_batch` picks the answer); logged as
    ``<prefix>`` (overall), ``<prefix>/<category>`` and ``<prefix>/questions`` (how many were scored).
    """

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.zeros(len(CATEGORIES), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(len(CATEGORIES), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, batch: dict[str, Tensor]) -> None:
        """Score a batch.

        Args:
            logits: (B, T, V) causal-LM logits.
            batch: The MMLU batch: ``attention_mask``, ``choice_ids``, ``answer``, ``category``.
        """
        _, correct = score_mmlu_batch(logits, batch)
        category = batch["category"]
        self.correct += torch.bincount(category, weights=correct.long(), minlength=len(CATEGORIES)).long()
        self.total += torch.bincount(category, minlength=len(CATEGORIES))

    def compute(self) -> dict[str, Tensor]:
        """``{"all": overall accuracy, <category>: its accuracy}`` (NaN for a category with no question)."""
        per = self.correct.double() / self.total.double()
        out = {"all": (self.correct.sum().double() / self.total.sum().clamp(min=1)).float()}
        out.update({name: per[i].float() for i, name in enumerate(CATEGORIES)})
        return out

    def log_items(self, prefix: str) -> dict[str, Tensor]:
        """``{prefix: overall, prefix/<category>: accuracy, prefix/questions: count}``; empty categories left out."""
        values = self.compute()
        items = {prefix: values.pop("all")} | {f"{prefix}/{name}": v for name, v in values.items()}
        items[f"{prefix}/questions"] = self.total.sum().float()
        return {k: v for k, v in items.items() if not math.isnan(float(v))}
