"""Evidence v2: LoRA vs LoRA+ at each one's best learning rate, on unseen seeds (issue 16)."""
