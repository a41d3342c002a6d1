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

:func:`update_metrics` feeds one evaluation batch to every metric, each the way it needs it, so a
LightningModule evaluates any task with the same three lines. Pure torch + torchmetrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import Accuracy, F1Score, MatthewsCorrCoef
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

from lit_loraplus.evaluation.mmlu import MMLUAccuracy

CLASSIFICATION = ("accuracy", "f1", "matthews")
REGRESSION = ("pearson", "spearman")
CAUSAL_LM = ("perplexity", "token_accuracy", "mmlu_accuracy")
METRICS: tuple[str, ...] = CLASSIFICATION + REGRESSION + CAUSAL_LM
_TOKEN_METRICS = ("perplexity", "token_accuracy")


@runtime_checkable
class KeyedMetric(Protocol):
    """A metric with several named results (e.g. MMLU accuracy overall and per category)."""

    def log_items(self, prefix: str) -> dict[str, Tensor]:
        """``{metric key: value}`` to log under ``prefix`` (computed over the epoch)."""


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
    """A MetricCollection of the named metrics.

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
        "mmlu_accuracy": MMLUAccuracy,
    }
    # compute_groups=False: metrics that share states would otherwise be merged, and a keyed one must stay apart.
    return MetricCollection({n: factories[n]() for n in names}, compute_groups=False)


def update_metrics(metrics: Mapping[str, Metric], logits: Tensor, batch: Mapping[str, Tensor]) -> None:
    """Feed one evaluation batch to every metric, as each needs it.

    Classification metrics get the arg-max class (regression, one output: the score) and
    ``labels``; the causal-LM token metrics get next-token statistics over unmasked ``labels``;
    ``mmlu_accuracy`` scores the answer letters (see :mod:`lit_loraplus.evaluation.mmlu`).

    Args:
        metrics: ``{name: metric}`` as :func:`build_metrics` made them.
        logits: The model's logits, (B, C) for classification or (B, T, V) for a causal LM.
        batch: The evaluation batch.
    """
    stats = None
    for name, metric in metrics.items():
        if name in _TOKEN_METRICS:
            stats = stats or token_statistics(logits, batch["labels"])
            loss_sum, correct, tokens = stats
            if name == "perplexity":
                metric.update(loss_sum, tokens)
            else:
                metric.update(correct / tokens.clamp(min=1), weight=tokens)
        elif name == "mmlu_accuracy":
            metric.update(logits, batch)
        else:
            preds = logits.squeeze(-1).float() if logits.shape[-1] == 1 else logits.argmax(-1)
            metric.update(preds, batch["labels"])


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
