"""Evidence v1: the LoRA vs LoRA+ convergence grid on real data (``python -m benchmarks.evidence.v1``)."""
