"""The feature-learning terms of one LoRA step (LoRA+ paper, §4). Pure torch: no Lightning.

With the layer input Z held fixed and one optimizer step t (A_t = A_{t−1} + ΔA_t, same for B)::

    δ¹ = B_{t−1} ΔA_t Z     (A's contribution)
    δ² = ΔB_t A_{t−1} Z     (B's contribution)
    δ³ = ΔB_t ΔA_t Z        (second order)
    ΔZ_B = B_t A_t Z − B_{t−1} A_{t−1} Z = δ¹ + δ² + δ³     (exactly)

each times the layer's scaling α/r. LoRA+ (λ = η_B/η_A > 1) aims at δ¹ and δ² both Θ(1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TERMS = ("delta1", "delta2", "delta3", "dZ")


def feature_terms(
    z: Tensor, a0: Tensor, b0: Tensor, a1: Tensor, b1: Tensor, scaling: float, embedding: bool = False
) -> dict[str, Tensor]:
    """δ¹, δ², δ³ and ΔZ_B of one layer for one step, in float32.

    Args:
        z: The layer input: features (..., k) for a linear layer, token ids (...) for an embedding.
        a0: A before the step, (r, k); for an embedding ``lora_embedding_A``, (r, V).
        b0: B before the step, (n, r); for an embedding ``lora_embedding_B``, (d, r).
        a1: A after the step.
        b1: B after the step.
        scaling: α/r.
        embedding: Whether ``z`` holds token ids. Z is then one-hot, so A·Z is a column look-up
            ``A[:, ids]`` and no V-wide matrix is ever built.

    Returns:
        ``{"delta1", "delta2", "delta3", "dZ"}``, each (N, n) with N the number of tokens/rows.

    Example:
        >>> z, a0, b0 = torch.randn(5, 4), torch.randn(2, 4), torch.zeros(3, 2)
        >>> t = feature_terms(z, a0, b0, a0 + 0.1, b0 + 0.1, scaling=2.0)
        >>> torch.allclose(t["delta1"] + t["delta2"] + t["delta3"], t["dZ"], atol=1e-6)
        True
    """
    a0, b0, a1, b1 = (m.detach().float() for m in (a0, b0, a1, b1))
    da, db = a1 - a0, b1 - b0
    if embedding:
        ids = z.reshape(-1)
        za0, za1, dza = a0[:, ids].T, a1[:, ids].T, da[:, ids].T  # (N, r)
    else:
        z = z.detach().float().reshape(-1, z.shape[-1])  # (N, k)
        za0, za1, dza = z @ a0.T, z @ a1.T, z @ da.T  # (N, r)
    return {
        "delta1": scaling * (dza @ b0.T),  # (N, n)
        "delta2": scaling * (za0 @ db.T),
        "delta3": scaling * (dza @ db.T),
        "dZ": scaling * (za1 @ b1.T - za0 @ b0.T),
    }


def rms(terms: dict[str, Tensor]) -> Tensor:
    """RMS over tokens and features of each term, as a (4,) tensor in :data:`TERMS` order (no host sync)."""
    out = torch.stack([torch.linalg.vector_norm(terms[k]) for k in TERMS])
    return out / math.sqrt(max(terms["dZ"].numel(), 1))


def balance(delta1_rms: float, delta2_rms: float) -> float | None:
    """log(‖δ²‖/‖δ¹‖), the quantity λ moves toward 0; ``None`` where either term is 0 (e.g. step 1)."""
    if not (delta1_rms > 0 and delta2_rms > 0 and math.isfinite(delta1_rms) and math.isfinite(delta2_rms)):
        return None
    return math.log(delta2_rms / delta1_rms)
