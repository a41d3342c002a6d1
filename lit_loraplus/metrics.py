"""Task metrics (torchmetrics) by name, and the causal-LM per-token statistics they consume.

Names a data module announces in its ``metrics`` attribute (and a config may list):

=================  ============================================================  ==================
name               what                                                          for
=================  ============================================================  ==================
accuracy           top-1 accuracy                                                classification
f1                 F1 of the positive class (binary) / macro F1                  MRPC, QQP
matthews           Matthews correlation                                          CoLA
pearson, spearman  correlations of the predicted score                           STS-B (regression)
perplexity         exp(mean token cross-entropy)                                 causal LM
token_accuracy     next-token top-1 accuracy over unmasked tokens               causal LM
mmlu_accuracy      multiple-choice accuracy, overall and per MMLU category       MMLU evaluation
=================  ============================================================  ==================
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import Accuracy, F1Score, MatthewsCorrCoef
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

CLASSIFICATION = ("accuracy", "f1", "matthews")
REGRESSION = ("pearson", "spearman")
CAUSAL_LM = ("perplexity", "token_accuracy", "mmlu_accuracy")
METRICS: tuple[str, ...] = CLASSIFICATION + REGRESSION + CAUSAL_LM


class Perplexity(Metric):
    """exp(total token loss / tokens), accumulated over batches (and ranks)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("loss_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, loss_sum: Tensor, tokens: Tensor) -> None:
        """Add a batch's summed token cross-entropy and its token count."""
        self.loss_sum += loss_sum.detach().double()
        self.tokens += tokens

    def compute(self) -> Tensor:
        """The perplexity."""
        return torch.exp(self.loss_sum / self.tokens.clamp(min=1)).float()


def default_metrics(task: str, num_labels: int | None) -> list[str]:
    """Metrics used when neither the data module nor the user names any.

    Args:
        task: ``sequence_classification`` or ``causal_lm``.
        num_labels: 1 means regression.

    Returns:
        Metric names.
    """
    if task == "causal_lm":
        return ["perplexity", "token_accuracy"]
    return list(REGRESSION) if num_labels == 1 else ["accuracy"]


def build_metrics(names: list[str], task: str, num_labels: int | None) -> MetricCollection:
    """A MetricCollection of the named metrics (mmlu_accuracy is kept outside: it is per category).

    Args:
        names: Metric names from :data:`METRICS`.
        task: ``sequence_classification`` or ``causal_lm``.
        num_labels: Classes (1 = regression).

    Returns:
        The collection, keyed by name.

    Raises:
        ValueError: For unknown names or names that do not fit the task.
    """
    unknown = [n for n in names if n not in METRICS]
    allowed = CAUSAL_LM if task == "causal_lm" else (REGRESSION if num_labels == 1 else CLASSIFICATION)
    wrong = [n for n in names if n in METRICS and n not in allowed]
    if unknown or wrong:
        raise ValueError(
            f"`metrics={names!r}`: unknown {unknown} / not for task={task!r} with num_labels={num_labels}: {wrong}. "
            f"Choose from {list(allowed)}."
        )
    if task != "causal_lm" and num_labels != 1 and (num_labels is None or num_labels < 2):
        raise ValueError(f"`num_labels={num_labels!r}`: classification needs >= 2 labels (1 means regression).")
    kind = "binary" if num_labels == 2 else "multiclass"
    classes = {} if kind == "binary" else {"num_classes": num_labels}
    average = {} if kind == "binary" else {"average": "macro"}
    factories = {
        "accuracy": lambda: Accuracy(task=kind, **classes),
        "f1": lambda: F1Score(task=kind, **classes, **average),
        "matthews": lambda: MatthewsCorrCoef(task=kind, **classes),
        "pearson": PearsonCorrCoef,
        "spearman": SpearmanCorrCoef,
        "perplexity": Perplexity,
        "token_accuracy": MeanMetric,
    }
    return MetricCollection({n: factories[n]() for n in names if n in factories})


def token_statistics(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Next-token cross-entropy sum, correct-token count and token count over unmasked labels.

    Args:
        logits: (B, T, V) causal-LM logits.
        labels: (B, T) token ids, -100 where no loss is taken (prompt, padding).

    Returns:
        (loss_sum, correct, tokens), scalars.
    """
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]  # predict token t+1 from t
    mask = shift_labels != -100
    loss_sum = nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    correct = ((shift_logits.argmax(-1) == shift_labels) & mask).sum()
    return loss_sum, correct, mask.sum()


class CategoryAccuracy(Metric):
    """Accuracy per category and overall (MMLU's STEM / humanities / social sciences / other).

    Args:
        num_categories: Number of categories.
    """

    def __init__(self, num_categories: int) -> None:
        super().__init__()
        self.add_state("correct", torch.zeros(num_categories, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(num_categories, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, correct: Tensor, category: Tensor) -> None:
        """Add a batch: ``correct`` (B,) bools, ``category`` (B,) indices."""
        self.correct += torch.bincount(category, weights=correct.long(), minlength=len(self.correct)).long()
        self.total += torch.bincount(category, minlength=len(self.total))

    def compute(self) -> dict[str, Tensor]:
        """``{"all": overall accuracy, "0": category 0's accuracy, ...}`` (NaN for an empty category)."""
        per = self.correct.double() / self.total.double()
        out = {"all": (self.correct.sum().double() / self.total.sum().clamp(min=1)).float()}
        out.update({str(i): per[i].float() for i in range(len(per))})
        return out
