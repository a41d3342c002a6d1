"""Evaluation metrics by name (torchmetrics) and MMLU scoring; pure torch, no Lightning."""
