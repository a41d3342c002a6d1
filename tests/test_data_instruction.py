"""InstructionDataModule: chat template or plain prompts, EOS appended, prompt and padding masked from the loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from lit_loraplus.data import InstructionDataModule, encode_instruction

_PAIRS = [
    {"prompt": "what red is true", "response": "the first answer is yes."},
    {"prompt": "why blue", "response": "no."},
    {"prompt": "how small is clear and the last answer", "response": "maybe A B C D."},
]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_labels_mask_prompt_and_padding_and_keep_eos(tmp_path: Path, tiny_llama_dir: Path) -> None:
    """With the chat template, each row's labels are -100 over the rendered prompt (ending in the assistant
    header) and over padding, and equal input_ids over the response, whose last real token is EOS."""
    dm = InstructionDataModule(
        str(_jsonl(tmp_path / "d.jsonl", _PAIRS)), str(tiny_llama_dir), val_file=str(tmp_path / "d.jsonl")
    )
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    tok = dm.tokenizer
    assert set(batch) == {"input_ids", "attention_mask", "labels"} and (dm.task, dm.num_labels) == ("causal_lm", None)
    for row, pair in enumerate(_PAIRS):
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": pair["prompt"]}], add_generation_prompt=True, tokenize=False
        )
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        n_real = int(batch["attention_mask"][row].sum())
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        assert (labels[:n_prompt] == -100).all() and (labels[n_real:] == -100).all()
        assert (labels[n_prompt:n_real] == ids[n_prompt:n_real]).all()
        assert labels[n_real - 1] == tok.eos_token_id and ids[n_real - 1] == tok.eos_token_id
        assert tok.decode(ids[n_prompt : n_real - 1]) == pair["response"]
        assert tok.decode(ids[:n_prompt]).endswith("<|assistant|>")


def test_plain_concatenation_without_chat_template(tiny_llama_dir: Path) -> None:
    """A tokenizer without a chat template puts the response tokens right after the prompt's; EOS ends it."""
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.chat_template = None
    example = encode_instruction(tok, "why red", " yes.", max_length=64)
    prompt_ids = tok("why red")["input_ids"]
    response_ids = tok(" yes.", add_special_tokens=False)["input_ids"]
    assert example["input_ids"] == prompt_ids + response_ids + [tok.eos_token_id]
    assert example["labels"] == [-100] * len(prompt_ids) + response_ids + [tok.eos_token_id]


def test_truncation_keeps_eos_and_a_response_token(tiny_llama_dir: Path) -> None:
    """Too long for max_length: the response is cut, then the prompt's start; EOS and one response token stay."""
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    short = encode_instruction(tok, "what red is true", "the first answer is yes. " * 5, max_length=20)
    assert len(short["input_ids"]) == 20 and short["labels"][-1] == tok.eos_token_id
    tiny = encode_instruction(tok, "what red is true and the first answer " * 5, "yes", max_length=8)
    first_response_id = tok("yes", add_special_tokens=False)["input_ids"][0]
    assert tiny["input_ids"][-2:] == [first_response_id, tok.eos_token_id] == tiny["labels"][-2:]
    assert len(tiny["input_ids"]) == 8 and tiny["labels"][:6] == [-100] * 6
    assert tok.decode(tiny["input_ids"][:6]).endswith("<|assistant|>")


def test_held_out_fraction_and_missing_field(tmp_path: Path, tiny_llama_dir: Path) -> None:
    """Without val_file a seeded val_fraction is held out; a missing response field is named with the fields present."""
    rows = [{"instruction": f"q{i}", "response": "a"} for i in range(20)]
    dm = InstructionDataModule(
        str(_jsonl(tmp_path / "d.jsonl", rows)), str(tiny_llama_dir), "instruction", val_fraction=0.25
    )
    assert (len(dm._raw["train"]), len(dm._raw["validation"])) == (15, 5)
    with pytest.raises(ValueError, match=r"`prompt_field='prompt'` is not a column.*\['instruction', 'response'\]"):
        InstructionDataModule(str(tmp_path / "d.jsonl"), str(tiny_llama_dir))
