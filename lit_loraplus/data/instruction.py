"""Instruction tuning from JSONL prompt/response pairs, with the loss on the response only."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from lit_loraplus.data.base import Example, TokenizedDataModule, split_rows
from lit_loraplus.data.files import read_jsonl, require_columns, require_file

PromptAndResponse = tuple[str, str]


def prompt_tokens(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """The prompt's token ids: a user turn plus the assistant header with a chat template, else plain.

    Args:
        tokenizer: The model's tokenizer.
        prompt: The instruction.

    Returns:
        Token ids (with the tokenizer's special tokens, e.g. BOS, when there is no template).
    """
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(prompt)["input_ids"]


def encode_instruction(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, max_length: int) -> Example:
    """Tokenize one prompt/response pair for causal-LM fine-tuning.

    With a chat template, the prompt is a user turn rendered with ``add_generation_prompt=True``
    (so it ends with the assistant header); without one, the prompt's tokens (with the tokenizer's
    special tokens, e.g. BOS) are followed directly by the response's. EOS is appended. Too long:
    the response is cut first, then the prompt loses its *first* tokens (keeping the assistant
    header next to the response); EOS always stays, and at least one response token when
    ``max_length >= 3``.

    Args:
        tokenizer: The model's tokenizer (with an EOS token).
        prompt: The instruction.
        response: The target answer.
        max_length: Longest sequence, EOS included.

    Returns:
        ``{"input_ids", "attention_mask", "labels"}``: labels copy input_ids with -100 on prompt tokens.
    """
    prompt_ids = prompt_tokens(tokenizer, prompt)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    room = max_length - 1  # EOS always fits
    prompt_room = room - min(len(response_ids), 1)  # keep a response token, if any, after cutting the prompt
    if len(prompt_ids) > prompt_room:
        prompt_ids = prompt_ids[len(prompt_ids) - max(prompt_room, 0) :]  # drop the prompt's first tokens
    response_ids = response_ids[: room - len(prompt_ids)] + [tokenizer.eos_token_id]
    input_ids = prompt_ids + response_ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [-100] * len(prompt_ids) + response_ids,
    }


class InstructionDataModule(TokenizedDataModule):
    """Causal-LM instruction tuning from JSONL files with a prompt and a response field.

    See :func:`encode_instruction` for the token layout (chat template when the tokenizer has
    one, EOS appended, prompt and padding masked from the loss). Without ``val_file``, a seeded
    ``val_fraction`` of the training rows is held out.

    Batches: ``input_ids``, ``attention_mask``, ``labels`` (input_ids with -100 on prompt tokens
    and padding), padded on the right per batch.

    Args:
        train_file: The training JSONL file, one ``{"prompt": ..., "response": ...}`` object a line.
        tokenizer: The model's tokenizer: a hub id or a local model folder.
        prompt_field: The field holding the instruction.
        response_field: The field holding the answer the model learns to produce.
        val_file: A validation JSONL file; None holds out ``val_fraction`` of ``train_file``.
        val_fraction: Share of training rows held out for validation when there is no ``val_file``.
        max_length: Longest sequence in tokens, EOS included.
        **loader_kwargs: Other settings of :class:`~lit_loraplus.data.base.TokenizedDataModule`
            (batch_size, eval_batch_size, num_workers, pin_memory, seed, train_subset, val_subset,
            group_by_length).

    Attributes:
        num_labels: None (a language model has no classifier head).
        task: "causal_lm".
        metrics: ["perplexity", "token_accuracy"].
        id2label: {} (no classes).
    """

    def __init__(
        self,
        train_file: str,
        tokenizer: str,
        prompt_field: str = "prompt",
        response_field: str = "response",
        val_file: str | None = None,
        val_fraction: float = 0.05,
        max_length: int = 512,
        **loader_kwargs: Any,
    ) -> None:
        super().__init__(tokenizer, max_length=max_length, **loader_kwargs)
        if val_file is None and not 0 < val_fraction < 1:
            raise ValueError(f"`val_fraction={val_fraction!r}` must be in (0, 1), or pass `val_file`.")
        self.fields = {"prompt_field": prompt_field, "response_field": response_field}
        self._raw = {"train": self._read_file(train_file, "train_file")}
        if val_file is None:
            self._raw["train"], self._raw["validation"] = split_rows(self._raw["train"], val_fraction, self.seed)
        else:
            self._raw["validation"] = self._read_file(val_file, "val_file")
        self.task, self.metrics = "causal_lm", ["perplexity", "token_accuracy"]
        self.num_labels, self.id2label = None, {}

    def _read_file(self, file: str, setting: str) -> list[PromptAndResponse]:
        path = require_file(file, setting)
        columns, rows = read_jsonl(path)
        require_columns(path, columns, rows, self.fields)
        return [(str(r[self.fields["prompt_field"]]), str(r[self.fields["response_field"]])) for r in rows]

    def _read(self, split: str) -> list[PromptAndResponse]:
        return self._raw[split]

    def _encode(self, rows: list[PromptAndResponse]) -> list[Example]:
        if self.tokenizer.eos_token_id is None:
            raise ValueError(f"The tokenizer {self.tokenizer_name!r} has no EOS token; instruction tuning needs one.")
        return [encode_instruction(self.tokenizer, p, r, self.max_length) for p, r in rows]

    def _encode_prompts(self, rows: list[PromptAndResponse]) -> list[Example]:
        """Prompts only (the last ``max_length`` tokens), for ``predict`` to continue with generation."""
        encoded = [prompt_tokens(self.tokenizer, p)[-self.max_length :] for p, _ in rows]
        return [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in encoded]
