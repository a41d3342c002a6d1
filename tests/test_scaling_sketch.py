"""``python -m benchmarks.estimates.scaling_sketch``: its counts equal real transformers/PEFT models, its activation
formula equals the tensors autograd saves in a tiny real Llama, its memory model shards and checkpoints as claimed,
and its CLI prints the tables and refuses bad input by option name.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from benchmarks.estimates.scaling_sketch import (
    GIB,
    NF4_BITS,
    NF4_BITS_NO_DOUBLE_QUANT,
    SETTINGS,
    LlamaShape,
    activation_bytes,
    block_parameters,
    flops_per_token,
    layer_activation_bytes_per_token,
    layer_linear_parameters,
    lora_parameter_count,
    memory_per_gpu,
    parameter_count,
    step_time,
)
from benchmarks.harness.shapes import LLAMA_PROJECTIONS
from lit_loraplus.testing import tiny_llama, tiny_llama_config

LLAMA_7B = LlamaShape()  # meta-llama/Llama-2-7b-hf


def shape_of(config: LlamaConfig, num_labels: int = 0) -> LlamaShape:
    """The sketch's shape for a transformers config."""
    return LlamaShape(
        config.hidden_size,
        config.intermediate_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.num_key_value_heads,
        config.vocab_size,
        config.tie_word_embeddings,
        num_labels,
    )


def setting(name: str):
    return next(s for s in SETTINGS if s.name == name)


MODULE = "benchmarks.estimates.scaling_sketch"


def tied_config() -> LlamaConfig:
    """The tiny GQA Llama with ``tie_word_embeddings`` (no separate lm_head)."""
    config = tiny_llama_config(vocab_size=300)
    config.tie_word_embeddings = True
    return config


@pytest.mark.parametrize(
    "config",
    [LlamaConfig(), tiny_llama_config(), tied_config()],  # LlamaConfig()'s defaults are Llama-2-7B's sizes
    ids=["7b", "tiny-gqa", "tied"],
)
def test_parameter_count_equals_transformers(config: LlamaConfig) -> None:
    """The closed-form count equals ``sum(p.numel())`` of ``LlamaForCausalLM`` built on the meta device."""
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    assert parameter_count(shape_of(config)) == sum(p.numel() for p in model.parameters())
    assert block_parameters(shape_of(config)) == sum(p.numel() for p in model.model.layers.parameters())


def test_parameter_count_sequence_classifier() -> None:
    """The MNLI config's model (``LlamaForSequenceClassification``, 3 labels: a score head, no lm_head)."""
    config = LlamaConfig(num_labels=3)
    with torch.device("meta"):
        model = LlamaForSequenceClassification(config)
    assert parameter_count(shape_of(config, num_labels=3)) == sum(p.numel() for p in model.parameters())


def test_known_7b_numbers() -> None:
    """Llama-2-7B: N ≈ 6.74e9 parameters; LoRA r 8 on all 7 projections ≈ 19.99e6 (published sizes)."""
    assert parameter_count(LLAMA_7B) == pytest.approx(6.74e9, rel=1e-3)
    assert lora_parameter_count(LLAMA_7B, 8) == pytest.approx(19.99e6, rel=1e-3)
    assert lora_parameter_count(LLAMA_7B, 64) == 8 * lora_parameter_count(LLAMA_7B, 8)  # linear in r


def test_lora_count_equals_peft() -> None:
    """r 8 on all 7 projections: the count equals the trainable parameters ``get_peft_model`` creates on a real
    tiny (GQA) Llama; two projections only, too."""
    for targets in (LLAMA_PROJECTIONS, ("q_proj", "v_proj")):
        model = get_peft_model(tiny_llama(), LoraConfig(r=8, target_modules=list(targets), task_type="CAUSAL_LM"))
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert lora_parameter_count(shape_of(tiny_llama_config()), 8, targets) == trainable
    with pytest.raises(ValueError, match="not Llama projections"):
        lora_parameter_count(LLAMA_7B, 8, ["query"])
    with pytest.raises(ValueError, match="--r=0"):
        lora_parameter_count(LLAMA_7B, 0)


def saved_bytes(
    layers: int, tokens: tuple[int, int], bf16_adapters: bool = False, base_dtype: torch.dtype = torch.bfloat16
) -> int:
    """Bytes of the tensors autograd saves in one forward of a tiny Llama (SDPA, base in ``base_dtype``) + LoRA
    (r 8, all 7, dropout 0.1) under CPU bf16 autocast; parameters and tensors sharing their storage are not counted.
    ``bf16_adapters``: the LoRA weights in bf16, as FSDP's bf16 param dtype gathers them."""
    config = tiny_llama_config()  # hidden 32, 4 heads, MLP 64, vocab 128
    config.num_hidden_layers, config.num_key_value_heads = layers, 4  # no GQA, as Llama-2-7B
    torch.manual_seed(0)
    base = LlamaForCausalLM(config).to(base_dtype)
    model = get_peft_model(base, LoraConfig(r=8, lora_dropout=0.1, target_modules=list(LLAMA_PROJECTIONS))).train()
    if bf16_adapters:
        model.to(torch.bfloat16)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(0, 128, tokens)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=ids, labels=ids)
    return sum(saved.values())


def test_layer_activation_formula_equals_saved_tensors() -> None:
    """One more decoder layer makes autograd save what ``layer_activation_bytes_per_token`` says, per token, plus
    the bf16 copies autocast makes of that layer's fp32 LoRA weights (2 bytes each), on a real tiny Llama (layers
    ≥ 1: layer 0's input, the frozen embedding output, needs no gradient). With bf16 adapters (FSDP) the same
    bytes per token and no weight copies. CPU dropout keeps its mask in the input's dtype (4 bytes per element
    for fp32 adapters, 2 for bf16; CUDA's fused dropout a 1-byte one)."""
    shape = LlamaShape(**{**shape_of(tiny_llama_config()).__dict__, "kv_heads": 4})
    lora_weight_copies = 2 * lora_parameter_count(shape, 8) // shape.layers
    for tokens in ((2, 16), (3, 24)):
        for bf16_adapters in (False, True):
            per_layer = saved_bytes(3, tokens, bf16_adapters) - saved_bytes(2, tokens, bf16_adapters)
            per_token = layer_activation_bytes_per_token(shape, 8, dropout_mask_bytes=2 if bf16_adapters else 4)
            copies = 0 if bf16_adapters else lora_weight_copies
            assert per_layer == per_token * tokens[0] * tokens[1] + copies


def test_an_fp16_base_under_bf16_autocast_saves_a_bf16_copy_of_its_frozen_weights() -> None:
    """The scaling page's warning: with an fp16 base (``dtype="auto"`` on an fp16 checkpoint) under bf16 autocast,
    autocast casts every frozen weight to bf16 and autograd keeps that copy for the input gradient: 2 bytes per
    weight of every frozen projection and lm_head, less layer 0's q/k/v (their input, the embedding output, needs
    no gradient). A bf16 base is used as it is."""
    layers, tokens = 2, (2, 16)
    extra = saved_bytes(layers, tokens, base_dtype=torch.float16) - saved_bytes(layers, tokens)
    config = tiny_llama_config()
    config.num_hidden_layers, config.num_key_value_heads = layers, 4
    base = LlamaForCausalLM(config)
    frozen = [m for n, m in base.named_modules() if isinstance(m, torch.nn.Linear)]
    first_qkv = [getattr(base.model.layers[0].self_attn, p) for p in ("q_proj", "k_proj", "v_proj")]
    assert extra == 2 * sum(m.weight.numel() for m in frozen if all(m is not q for q in first_qkv))


def test_memory_sharding_checkpointing_and_nf4() -> None:
    """FSDP divides every per-parameter row by the GPU count (bf16 base shards: the LoRA units keep the fp32
    adapters out of the base's flat parameters) and keeps no gradient of a frozen weight; checkpointing lowers
    activations to the layer inputs plus one layer; NF4 costs 4.1-4.5 bits per quantised weight; micro-batch
    changes only the token-proportional rows."""
    n, lora = parameter_count(LLAMA_7B), lora_parameter_count(LLAMA_7B, 8)
    for gpus in (2, 8):
        ddp = memory_per_gpu(LLAMA_7B, setting("DDP"), 8, 128, 4, gpus)
        fsdp = memory_per_gpu(LLAMA_7B, setting("FSDP"), 8, 128, 4, gpus)
        assert list(fsdp) == list(ddp) and not any("frozen" in row for row in fsdp)  # no frozen-gradient row
        assert ddp["base weights"] == n * 2
        assert fsdp["base weights"] == pytest.approx(ddp["base weights"] / gpus)
        for row in ("LoRA weights (fp32)", "LoRA gradients (fp32)", "AdamW state (fp32 m, v)"):
            assert fsdp[row] == pytest.approx(ddp[row] / gpus)
        assert ddp["LoRA weights (fp32)"] == lora * 4 and ddp["AdamW state (fp32 m, v)"] == lora * 8
        # bf16 base over G plus the gathered root and two blocks: below DDP's replicated base from 2 GPUs on
        assert fsdp["base weights"] + fsdp["FSDP gathered bf16 working set"] < ddp["base weights"]
        assert fsdp["total"] < ddp["total"]
    for ckpt in (False, True):
        # the frozen weights save no input under FSDP either; only autocast's bf16 LoRA weight copies go
        ddp = activation_bytes(LLAMA_7B, 8, 512, ckpt)
        assert activation_bytes(LLAMA_7B, 8, 512, ckpt, lora_copies=False) == ddp - 2 * lora
        fsdp_row = memory_per_gpu(LLAMA_7B, setting("FSDP" + " +ckpt" * ckpt), 8, 128, 4, 8)
        assert fsdp_row["activations (decoder layers)"] == ddp - 2 * lora
    for strategy in ("DDP", "FSDP", "QLoRA"):
        for b in (4, 32):
            plain = memory_per_gpu(LLAMA_7B, setting(strategy), 8, 128, b, 8)["activations (decoder layers)"]
            ckpt = memory_per_gpu(LLAMA_7B, setting(strategy + " +ckpt"), 8, 128, b, 8)["activations (decoder layers)"]
            assert ckpt < plain / 8
    ckpt = memory_per_gpu(LLAMA_7B, setting("DDP +ckpt"), 8, 128, 4, 8)["activations (decoder layers)"]
    layer = layer_activation_bytes_per_token(LLAMA_7B, 8) * 512
    assert ckpt == 32 * 2 * 4096 * 512 + layer + 2 * lora
    qlora = memory_per_gpu(LLAMA_7B, setting("QLoRA"), 8, 128, 4, 8)["base weights"]
    quantised = LLAMA_7B.layers * layer_linear_parameters(LLAMA_7B)
    bits = (qlora - (n - quantised) * 4) * 8 / quantised
    assert 4.1 <= bits <= 4.5 and bits == pytest.approx(NF4_BITS) and NF4_BITS_NO_DOUBLE_QUANT == 4.5
    small, large = (memory_per_gpu(LLAMA_7B, setting("DDP"), 8, 128, b, 8) for b in (4, 32))
    assert small["base weights"] == large["base weights"] and large["total"] > 2 * small["total"]


def test_flops_and_step_time() -> None:
    """Frozen base: backward ≈ forward (input gradients only), checkpointing adds about one forward; step time
    is executed FLOPs over utilisation × peak, so doubling the micro-batch doubles it; QLoRA only adds time."""
    ddp, ckpt = (
        flops_per_token(LLAMA_7B, 8, 128, setting("DDP")),
        flops_per_token(LLAMA_7B, 8, 128, setting("DDP +ckpt")),
    )
    n_non_embedding = parameter_count(LLAMA_7B) - 32000 * 4096
    assert ddp["forward"] == pytest.approx(2 * n_non_embedding, rel=0.02)
    assert ddp["backward"] == pytest.approx(ddp["forward"], rel=0.02)
    assert ckpt["executed"] - ddp["executed"] == pytest.approx(ddp["forward"], rel=0.03)
    assert ckpt["model"] == ddp["model"]
    t4 = step_time(LLAMA_7B, setting("DDP"), 8, 128, 4, 8, mfu=0.4, peak_tflops=989)
    t8 = step_time(LLAMA_7B, setting("DDP"), 8, 128, 8, 8, mfu=0.4, peak_tflops=989)
    assert t4["compute_s"] == pytest.approx(512 * ddp["executed"] / (0.4 * 989e12))
    assert t8["step_s"] == pytest.approx(2 * t4["step_s"]) and t4["mfu_achieved"] == pytest.approx(0.4)
    q = step_time(LLAMA_7B, setting("QLoRA"), 8, 128, 4, 8, mfu=0.4, peak_tflops=989)
    assert q["dequant_s"] > 0 and q["step_s"] > t4["step_s"] and q["mfu_achieved"] < 0.4


def test_fsdp_flops_and_communication() -> None:
    """FSDP runs DDP's FLOPs (no frozen-weight gradients), with and without checkpointing; it moves the bf16 block
    weights twice per step (forward and backward all-gathers), whatever the micro-batch, and only LoRA gradients
    on top: more than the blocks' two gathers, less than gathering and reduce-scattering all N weights."""
    for suffix in ("", " +ckpt"):
        assert flops_per_token(LLAMA_7B, 8, 128, setting("FSDP" + suffix)) == flops_per_token(
            LLAMA_7B, 8, 128, setting("DDP" + suffix)
        )
    fsdp4, fsdp32 = (step_time(LLAMA_7B, setting("FSDP"), 8, 128, b, 8, mfu=0.4, peak_tflops=989) for b in (4, 32))
    ddp4 = step_time(LLAMA_7B, setting("DDP"), 8, 128, 4, 8, mfu=0.4, peak_tflops=989)
    assert fsdp4["compute_s"] == ddp4["compute_s"] and fsdp4["comm_s"] == fsdp32["comm_s"] > 100 * ddp4["comm_s"]
    moved = fsdp4["comm_s"] * 360e9 / (7 / 8)
    assert 2 * 2 * block_parameters(LLAMA_7B) < moved < 3 * 2 * parameter_count(LLAMA_7B)
    assert fsdp4["step_s"] == fsdp4["comm_s"] and fsdp32["step_s"] == fsdp32["compute_s"]  # comm-bound at 4 only


@pytest.mark.subprocess
def test_cli_prints_tables(run_python) -> None:
    """The default command prints both micro-batch memory tables (GiB) and the step-time table."""
    done = run_python("-m", MODULE, timeout=120)
    out = done.stdout
    assert "6,738,415,616 parameters" in out and "19,988,480 trainable" in out
    assert "**Micro-batch 4 per GPU** (global 32)" in out and "**Micro-batch 32 per GPU** (global 256)" in out
    assert out.count("| GiB per GPU | DDP | DDP +ckpt | FSDP | FSDP +ckpt | QLoRA | QLoRA +ckpt |") == 2
    assert out.count("| **total** |") == 2 and "| 4 × 8 = 32 | QLoRA +ckpt |" in out
    total = memory_per_gpu(LLAMA_7B, setting("DDP"), 8, 128, 4, 8)["total"]
    assert f"**{total / GIB:.2f}**" in out


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mfu", "1.5"], "`--mfu=1.5` must be in (0, 1]"),
        (["--mfu", "0"], "`--mfu=0.0` must be in (0, 1]"),
        (["--hidden", "0"], "`--hidden=0` must be a positive integer"),
        (["--heads", "5"], "`--heads=5` must divide `--hidden=4096`"),
        (["--micro-batch", "4", "-1"], "`--micro-batch` values [-1]"),
        (["--gpus", "0", "--peak-tflops", "-1"], "`--gpus=0` must be a positive integer. `--peak-tflops=-1.0`"),
    ],
)
def test_cli_refuses_bad_input(args: list[str], message: str, run_python) -> None:
    """Bad values exit with status 2 and one message naming each bad option, its value and what it must be."""
    done = run_python("-m", MODULE, *args, timeout=120, check=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr
