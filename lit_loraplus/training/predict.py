"""Predictions: one JSON-ready row per example (written by :class:`lit_loraplus.callbacks.JsonlPredictionWriter`).

Classification rows: ``{"prediction": id, "label": name, "probabilities": [...]}``; regression:
``{"score": x}``; causal LM: ``{"prompt": text, "generated": text}`` (greedy decoding).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor


def _left_pad(input_ids: Tensor, attention_mask: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """Move right padding to the left, as decoder-only generation needs. Shapes (B, T)."""
    lengths = attention_mask.sum(1)
    ids = torch.full_like(input_ids, pad_id)
    mask = torch.zeros_like(attention_mask)
    for row, n in enumerate(lengths.tolist()):
        ids[row, ids.shape[1] - n :] = input_ids[row, attention_mask[row].bool()]
        mask[row, ids.shape[1] - n :] = 1
    return ids, mask


def predict_rows(module: L.LightningModule, batch: dict[str, Tensor]) -> list[dict[str, Any]]:
    """One JSON-ready row per example of ``batch``.

    Args:
        module: A LoraPlusModule (``hparams.task``, ``num_labels`` and ``max_new_tokens`` are used).
        batch: ``input_ids`` and ``attention_mask``; for causal LMs the prompt only.

    Returns:
        The rows.
    """
    h = module.hparams
    if h.task == "causal_lm":
        tokenizer = module.trainer.datamodule.tokenizer
        ids, mask = _left_pad(batch["input_ids"], batch["attention_mask"], tokenizer.pad_token_id)
        out = module.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=h.max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        prompts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        texts = tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        return [{"prompt": p, "generated": t} for p, t in zip(prompts, texts, strict=True)]
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    logits = module.model(**inputs).logits.float()
    if h.num_labels == 1:
        return [{"score": s} for s in logits.squeeze(-1).tolist()]
    probs = logits.softmax(-1)
    id2label = module.model.config.id2label
    return [
        {
            "prediction": int(p.argmax()),
            "label": id2label.get(int(p.argmax()), str(int(p.argmax()))),
            "probabilities": p.tolist(),
        }
        for p in probs
    ]
