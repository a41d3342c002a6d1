"""Scaling sketch: memory per GPU and step time of LoRA fine-tuning a Llama-style model (estimates, not measurements).

    python -m benchmarks.estimates.scaling_sketch                  # Llama-2-7B, LoRA r 8 on all 7 projections, 8×H100
    python -m benchmarks.estimates.scaling_sketch --num-labels 3   # the MNLI config: a 3-class score head, no lm_head
    python -m benchmarks.estimates.scaling_sketch --hidden 5120 --intermediate 13824 --layers 40 --heads 40 \\
        --kv-heads 40 --gpus 4 --gpu-memory-gb 40 --peak-tflops 312 --hbm-tbps 1.56 --micro-batch 2 8  # 13B, 4×A100

Pure arithmetic, standard library only. Settings (columns), all ``bf16-mixed`` with fp32 LoRA matrices
(PEFT upcasts adapters to fp32; Lightning's autocast computes in bf16):

    DDP        replicated base, loaded in bf16 (``model.model_kwargs: {dtype: bfloat16}``)
    FSDP       ``configs/strategy/fsdp.yaml``: FULL_SHARD, ``use_orig_params=True``, Lightning's bf16
               ``MixedPrecision`` (param and reduce dtype bf16); ``NoSplitModulesPolicy`` wraps each decoder
               layer, and each LoRA A/B linear as a unit of its own, so the frozen flat parameters hold the
               bf16 base only (sharded, no gradients) and the fp32 adapters are sharded beside them.
    QLoRA      DDP over a 4-bit NF4 base (bitsandbytes, double quantisation), as ``model.quantization: 4bit``

each with and without gradient checkpointing (``+ckpt``: HF's per-decoder-layer checkpointing).

Activation memory follows Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
Transformer Models"), s·b·h·(34 + 5·a·s/h) bytes per layer for a GPT block at 16 bit, re-derived tensor
by tensor for a Llama block under LoRA (see :func:`layer_activation_bytes_per_token`). FLOPs: a frozen
base costs 2 FLOPs per weight per token forward and 2 backward (input gradients only), LoRA 2 + 4, the
attention score/value products 4·s·h per layer forward and twice that backward; checkpointing recomputes
the decoder layers' forward (the same under all three: FSDP computes no frozen-weight gradients). Step
time = FLOPs / (utilisation × peak), plus NF4 dequantisation (memory bound) for QLoRA; communication is
listed beside it (it overlaps compute at best).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.harness.shapes import LLAMA_PROJECTIONS
from benchmarks.harness.stats import markdown_table

GIB = 2**30
# bitsandbytes NF4 with double quantisation (QLoRA, Dettmers et al. 2023, §3): 4-bit codes, one absmax per
# block of 64 stored as 8 bits, one fp32 scale per 256 of those absmax values.
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
NF4_BITS_NO_DOUBLE_QUANT = 4 + 32 / 64
# Allowance for the CUDA context, cuBLAS/NCCL workspaces and buffers, and gradients in flight during
# backward, plus allocator fragmentation as a share of the activation-like memory. Stated, not measured.
OVERHEAD_GIB = 2.0
FRAGMENTATION = 0.10
MNLI_TRAIN_EXAMPLES = 392_702


@dataclass(frozen=True)
class LlamaShape:
    """The sizes of a Llama-style decoder (transformers ``LlamaConfig`` names in brackets).

    Args:
        hidden: Model width h (``hidden_size``).
        intermediate: MLP width I (``intermediate_size``).
        layers: Decoder layers L (``num_hidden_layers``).
        heads: Attention heads a (``num_attention_heads``); head dim = h / a.
        kv_heads: Key/value heads (``num_key_value_heads``; = heads without GQA).
        vocab: Vocabulary size V (``vocab_size``).
        tied_embeddings: ``tie_word_embeddings`` (the lm_head reuses the embedding matrix).
        num_labels: 0 for a causal LM (``LlamaForCausalLM``); > 0 for ``LlamaForSequenceClassification``
            (a ``score`` head with that many outputs instead of the lm_head).
    """

    hidden: int = 4096
    intermediate: int = 11008
    layers: int = 32
    heads: int = 32
    kv_heads: int = 32
    vocab: int = 32000
    tied_embeddings: bool = False
    num_labels: int = 0

    @property
    def head_dim(self) -> int:
        """h / a."""
        return self.hidden // self.heads


@dataclass(frozen=True)
class Setting:
    """One column of the tables: a strategy, with or without checkpointing.

    Args:
        name: Column title.
        strategy: ``ddp``, ``fsdp`` or ``qlora`` (DDP over an NF4 base).
        checkpointing: Per-decoder-layer activation checkpointing.
    """

    name: str
    strategy: str
    checkpointing: bool


# LlamaShape fields set from the command line (``--kv-heads`` for kv_heads), with what they are.
SHAPE_OPTIONS = {
    "hidden": "hidden_size h",
    "intermediate": "intermediate_size I",
    "layers": "num_hidden_layers L",
    "heads": "num_attention_heads a",
    "kv_heads": "num_key_value_heads",
    "vocab": "vocab_size V",
}
RUN_OPTIONS = {
    "r": (8, "LoRA rank (all 7 projections adapted)"),
    "seq": (128, "sequence length s"),
    "gpus": (8, "GPUs G"),
}

SETTINGS = tuple(
    Setting(name + (" +ckpt" if ckpt else ""), strategy, ckpt)
    for name, strategy in (("DDP", "ddp"), ("FSDP", "fsdp"), ("QLoRA", "qlora"))
    for ckpt in (False, True)
)


def shape_problems(shape: LlamaShape) -> list[str]:
    """Why ``shape`` is not a valid Llama shape (empty when it is), naming the CLI option.

    Args:
        shape: The model sizes.

    Returns:
        One message per problem.
    """
    problems = [
        f"`--{field.replace('_', '-')}={getattr(shape, field)}` must be a positive integer (the model's {what})."
        for field, what in SHAPE_OPTIONS.items()
        if getattr(shape, field) < 1
    ]
    if shape.num_labels < 0:
        problems.append(f"`--num-labels={shape.num_labels}` must be 0 (causal LM) or the number of classes.")
    if not problems and shape.hidden % shape.heads:
        problems.append(f"`--heads={shape.heads}` must divide `--hidden={shape.hidden}` (head dim = hidden / heads).")
    if not problems and shape.heads % shape.kv_heads:
        problems.append(f"`--kv-heads={shape.kv_heads}` must divide `--heads={shape.heads}` (grouped-query attention).")
    return problems


def projection_shapes(shape: LlamaShape) -> dict[str, tuple[int, int]]:
    """``(in_features, out_features)`` of the 7 linear layers of one decoder layer (no biases in Llama).

    Args:
        shape: The model sizes.

    Returns:
        ``{"q_proj": (h, a·d), "k_proj": (h, kv·d), ...}``.
    """
    h, q, kv, mlp = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.intermediate
    return {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, mlp),
        "up_proj": (h, mlp),
        "down_proj": (mlp, h),
    }


def layer_linear_parameters(shape: LlamaShape) -> int:
    """Weights of one decoder layer's 7 linear layers (what NF4 quantises, what FLOPs run over)."""
    return sum(i * o for i, o in projection_shapes(shape).values())


def head_parameters(shape: LlamaShape) -> int:
    """The output head: lm_head V·h (0 when tied), or the classifier's h·num_labels."""
    if shape.num_labels:
        return shape.hidden * shape.num_labels
    return 0 if shape.tied_embeddings else shape.vocab * shape.hidden


def parameter_count(shape: LlamaShape) -> int:
    """Parameters of ``LlamaForCausalLM`` (or ``LlamaForSequenceClassification``) built from the config.

    embeddings V·h + L·(7 projections + 2 RMSNorm weights of h) + final norm h + head.

    Args:
        shape: The model sizes.

    Returns:
        The count that ``sum(p.numel() for p in model.parameters())`` gives.
    """
    per_layer = layer_linear_parameters(shape) + 2 * shape.hidden
    return shape.vocab * shape.hidden + shape.layers * per_layer + shape.hidden + head_parameters(shape)


def block_parameters(shape: LlamaShape) -> int:
    """Parameters inside the decoder layers (7 projections + 2 RMSNorm weights each): FSDP's block units.

    The rest (embeddings, final norm, head) is FSDP's root unit.
    """
    return shape.layers * (layer_linear_parameters(shape) + 2 * shape.hidden)


def lora_parameter_count(shape: LlamaShape, r: int, targets: Sequence[str] = LLAMA_PROJECTIONS) -> int:
    """Trainable LoRA parameters: r·(in + out) per adapted projection (A is r×in, B is out×r), per layer.

    Args:
        shape: The model sizes.
        r: LoRA rank.
        targets: Adapted projections (names from :data:`~benchmarks.harness.shapes.LLAMA_PROJECTIONS`).

    Returns:
        The adapter parameter count.

    Raises:
        ValueError: For a rank below 1 or an unknown projection name.
    """
    shapes = projection_shapes(shape)
    if r < 1:
        raise ValueError(f"`--r={r}` must be a positive integer (the LoRA rank).")
    if unknown := sorted(set(targets) - set(shapes)):
        raise ValueError(f"target modules {unknown} are not Llama projections; pick from {LLAMA_PROJECTIONS}.")
    return shape.layers * sum(r * sum(shapes[t]) for t in targets)


def layer_activation_bytes_per_token(
    shape: LlamaShape,
    r: int,
    targets: Sequence[str] = LLAMA_PROJECTIONS,
    dropout_mask_bytes: int = 1,
) -> int:
    """Bytes one decoder layer saves for backward, per token, under bf16 autocast with SDPA attention.

    Korthikanti et al.'s 34·h + 5·a·s per token (GPT block, 16 bit) adapted, tensor by tensor:

    - RMSNorm (HF computes it in fp32): its fp32 input copy and 1/rms, 2 × (4·h + 4).
    - Attention (SDPA flash / memory-efficient kernels, no s² matrix, no attention dropout in Llama):
      q, k, v and the output in bf16, plus the fp32 log-sum-exp: 2·a·d + 4·kv·d + 2·a·d + 4·a. (With a
      padding mask and GQA, transformers repeats k and v to a heads first: 4·a·d instead of 4·kv·d.)
    - MLP: SiLU input, SiLU output and up output, 3 × 2·I (the GPT MLP's GeLU pair, at Llama's width).
    - Frozen projections save no input for their own weight gradient (none of a trained block's
      2·h + 2·h + 2·I), but every adapted one saves one for A's gradient: PEFT casts the input to the fp32
      adapter dtype, applies dropout (its mask is kept) and autocast casts it back to bf16, a copy per
      module: (2 + mask)·in per adapted module, plus A's output 2·r (B's input). (Under FSDP's bf16
      param dtype the adapters compute in bf16: no fp32 cast, but the dropout output is the same bf16 copy.)

    Args:
        shape: The model sizes.
        r: LoRA rank.
        targets: Adapted projections.
        dropout_mask_bytes: Bytes per element of the LoRA dropout mask: 1 on GPU (fused dropout keeps a
            bool mask), on CPU the input's element size (4 for fp32 adapters, 2 for bf16 ones), 0 without
            LoRA dropout.

    Returns:
        Bytes per token per layer.
    """
    h, q, kv, mlp = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.intermediate
    norms = 2 * (4 * h + 4)
    attention = 2 * q + 2 * 2 * kv + 2 * q + 4 * shape.heads
    feed_forward = 3 * 2 * mlp
    shapes = projection_shapes(shape)
    lora = sum((2 + dropout_mask_bytes) * shapes[t][0] + 2 * r for t in targets)
    return norms + attention + feed_forward + lora


def head_activation_bytes_per_token(shape: LlamaShape) -> int:
    """Bytes per token alive at the loss: final RMSNorm's fp32 copy, plus for a causal LM the logits.

    transformers' causal-LM loss upcasts the bf16 logits to fp32 and log-softmax keeps its fp32 output for
    backward: 2·V + 4·V + 4·V at the peak (4·V of it stays saved). A classifier's logits are negligible.
    """
    logits = 10 * shape.num_labels if shape.num_labels else 10 * shape.vocab
    return 4 * shape.hidden + 4 + logits


def activation_bytes(
    shape: LlamaShape, r: int, tokens: int, checkpointing: bool, residual_bytes: int = 2, lora_copies: bool = True
) -> float:
    """Activation memory of the decoder layers for ``tokens`` = micro-batch × sequence tokens on one GPU.

    Without checkpointing every layer keeps its saved tensors: L × per-layer bytes. With per-layer
    checkpointing only each layer's input (the residual stream, ``residual_bytes``·h per token) is kept,
    plus one layer's full set while it is recomputed in backward. Also counted (``lora_copies``): the bf16
    copies of the fp32 LoRA weights that autocast saves (2 bytes per adapter parameter, token-independent).

    Args:
        shape: The model sizes.
        r: LoRA rank (all 7 projections adapted, LoRA dropout on).
        tokens: Tokens per micro-batch per GPU (b·s).
        checkpointing: Per-layer activation checkpointing.
        residual_bytes: Bytes per element of the residual stream (2 in bf16; 4 under QLoRA, whose
            embeddings ``prepare_model_for_kbit_training`` keeps in fp32).
        lora_copies: Autocast casts the LoRA weights to bf16 (DDP, QLoRA). False under FSDP, which gathers
            them in bf16 already; autograd saves those gathered weights, whose storage FSDP frees at reshard.

    Returns:
        Bytes.
    """
    layer = layer_activation_bytes_per_token(shape, r) * tokens
    kept = shape.layers * residual_bytes * shape.hidden * tokens + layer if checkpointing else shape.layers * layer
    return kept + (2 * lora_parameter_count(shape, r) if lora_copies else 0)


def memory_per_gpu(
    shape: LlamaShape, setting: Setting, r: int, seq: int, micro_batch: int, gpus: int
) -> dict[str, float]:
    """Estimated memory of one GPU at its peak (start of backward), by component, in bytes.

    Args:
        shape: The model sizes.
        setting: Strategy and checkpointing.
        r: LoRA rank (all 7 projections).
        seq: Sequence length.
        micro_batch: Sequences per GPU per forward pass (not the global batch).
        gpus: Data-parallel GPUs.

    Returns:
        Ordered components (see the README table) and ``total``.
    """
    n = parameter_count(shape)
    lora = lora_parameter_count(shape, r)
    fsdp = setting.strategy == "fsdp"
    shard = gpus if fsdp else 1
    if setting.strategy == "qlora":
        quantised = shape.layers * layer_linear_parameters(shape)
        base = quantised * NF4_BITS / 8 + (n - quantised) * 4  # embeddings, head, norms in fp32
    else:
        base = n * 2 / shard  # bf16; under FSDP the LoRA units are separate, so the base flat params stay bf16
    # FSDP all-gathers in bf16: the root unit (embeddings, head, final norm) stays gathered from forward to
    # backward; two blocks are in flight (the current one and the prefetched next one), with their LoRA units.
    blocks = block_parameters(shape)
    gathered = ((n - blocks) + 2 * (blocks + lora) / shape.layers) * 2 if fsdp else 0.0
    tokens = micro_batch * seq
    residual = 4 if setting.strategy == "qlora" else 2
    activations = activation_bytes(shape, r, tokens, setting.checkpointing, residual, lora_copies=not fsdp)
    head = head_activation_bytes_per_token(shape) * tokens
    rows = {
        "base weights": base,
        "FSDP gathered bf16 working set": gathered,
        "LoRA weights (fp32)": lora * 4 / shard,
        "LoRA gradients (fp32)": lora * 4 / shard,
        "AdamW state (fp32 m, v)": lora * 8 / shard,
        "DDP gradient buckets": 0.0 if fsdp else lora * 4,
        "activations (decoder layers)": activations,
        "final norm + logits / cross-entropy": head,
        "overhead allowance": OVERHEAD_GIB * GIB + FRAGMENTATION * (activations + head + gathered),
    }
    rows["total"] = sum(rows.values())
    return rows


def flops_per_token(shape: LlamaShape, r: int, seq: int, setting: Setting) -> dict[str, float]:
    """Matmul FLOPs per token of one training step: forward, backward, recompute (frozen base, LoRA on 7).

    forward   2·(L·P_layer + P_head) + 2·P_lora + 4·L·s·a·d
    backward  2·(L·P_layer + P_head) + 4·P_lora + 8·L·s·a·d   (input gradients only for frozen weights,
              under FSDP too; LoRA: input and weight gradients)
    recompute 2·L·P_layer + 2·P_lora + 4·L·s·a·d               (checkpointing: the decoder layers' forward)

    P_layer: one layer's projection weights; the embedding lookup has no FLOPs. The attention term counts
    the full s×s products (as in PaLM's 6N + 12·L·h·s); causal kernels skip about half of them.

    Args:
        shape: The model sizes.
        r: LoRA rank (all 7 projections).
        seq: Sequence length.
        setting: Strategy and checkpointing.

    Returns:
        ``forward``, ``backward``, ``recompute``, ``model`` (forward + useful backward: what MFU counts)
        and ``executed`` (everything the GPU runs).
    """
    layers = shape.layers * layer_linear_parameters(shape)
    lora = lora_parameter_count(shape, r)
    attention = 4 * shape.layers * seq * shape.heads * shape.head_dim
    forward = 2 * (layers + head_parameters(shape)) + 2 * lora + attention
    backward = 2 * (layers + head_parameters(shape)) + 4 * lora + 2 * attention
    recompute = 2 * layers + 2 * lora + attention if setting.checkpointing else 0
    return {
        "forward": forward,
        "backward": backward,
        "recompute": recompute,
        "model": forward + backward,
        "executed": forward + backward + recompute,
    }


def step_time(
    shape: LlamaShape,
    setting: Setting,
    r: int,
    seq: int,
    micro_batch: int,
    gpus: int,
    mfu: float,
    peak_tflops: float,
    hbm_tbps: float = 3.35,
    link_gbps: float = 360.0,
) -> dict[str, float]:
    """Seconds per optimizer step (no accumulation: global batch = micro-batch × GPUs) and what drives it.

    compute = tokens per GPU × executed FLOPs per token / (utilisation × peak). QLoRA adds the NF4
    dequantisation, memory bound: each pass over the quantised weights reads 4.13 bits and writes 16 bits
    per weight, once in forward, once in backward, once more in recompute. Communication per GPU:
    DDP all-reduces the fp32 LoRA gradients, 2·(G−1)/G·4·P_lora bytes; FSDP (bf16 param and reduce dtype)
    all-gathers the root unit once (it stays gathered from forward to backward), the blocks and LoRA units
    in forward and again in backward, and reduce-scatters only the LoRA gradients (the frozen flat
    parameters have none): (G−1)/G·(2·P_root + 2·2·(P_blocks + P_lora) + 2·P_lora) bytes.

    Args:
        shape: The model sizes.
        setting: Strategy and checkpointing.
        r: LoRA rank.
        seq: Sequence length.
        micro_batch: Sequences per GPU per step.
        gpus: Data-parallel GPUs.
        mfu: Fraction of the dense bf16 peak achieved on the FLOPs the GPU executes (recompute included).
        peak_tflops: Dense bf16 peak of one GPU (H100 SXM: 989).
        hbm_tbps: Memory bandwidth of one GPU in TB/s (H100 SXM: 3.35), for the dequantisation.
        link_gbps: Achievable collective bus bandwidth per GPU in GB/s (NVLink 4 in nccl-tests: ~360).

    Returns:
        ``compute_s``, ``dequant_s``, ``comm_s``, ``step_s`` (= max(compute + dequant, comm): perfect
        overlap), ``tokens_per_s`` per GPU and ``mfu_achieved`` (model FLOPs / (step time × peak)).
    """
    flops = flops_per_token(shape, r, seq, setting)
    tokens = micro_batch * seq
    peak = peak_tflops * 1e12
    compute = tokens * flops["executed"] / (mfu * peak)
    dequant = 0.0
    if setting.strategy == "qlora":
        passes = 3 if setting.checkpointing else 2
        dequant = passes * shape.layers * layer_linear_parameters(shape) * (NF4_BITS / 8 + 2) / (hbm_tbps * 1e12)
    share = (gpus - 1) / gpus
    lora = lora_parameter_count(shape, r)
    if setting.strategy == "fsdp":
        blocks = block_parameters(shape)
        moved = share * (2 * (parameter_count(shape) - blocks) + 2 * 2 * (blocks + lora) + 2 * lora)
    else:
        moved = 2 * share * 4 * lora
    comm = moved / (link_gbps * 1e9)
    step = max(compute + dequant, comm)
    return {
        "compute_s": compute,
        "dequant_s": dequant,
        "comm_s": comm,
        "step_s": step,
        "tokens_per_s": tokens / step,
        "mfu_achieved": tokens * flops["model"] / (step * peak),
    }


def _gib(value: float) -> str:
    return f"{value / GIB:.2f}"


def memory_table(shape: LlamaShape, r: int, seq: int, micro_batch: int, gpus: int, gpu_memory_gb: float) -> str:
    """The memory-per-GPU table (GiB) for every setting of :data:`SETTINGS` at one micro-batch.

    Args:
        shape: The model sizes.
        r: LoRA rank.
        seq: Sequence length.
        micro_batch: Sequences per GPU per forward pass.
        gpus: Data-parallel GPUs.
        gpu_memory_gb: Memory of one GPU in GiB, for the "fits" row.

    Returns:
        A markdown table, components as rows, settings as columns.
    """
    columns = [memory_per_gpu(shape, s, r, seq, micro_batch, gpus) for s in SETTINGS]
    rows = [[name] + [_gib(c[name]) for c in columns] for name in columns[0] if name != "total"]
    rows.append(["**total**"] + [f"**{_gib(c['total'])}**" for c in columns])
    rows.append(
        [f"fits {gpu_memory_gb:g} GiB"] + ["yes" if c["total"] <= gpu_memory_gb * GIB else "NO" for c in columns]
    )
    return markdown_table(["GiB per GPU"] + [s.name for s in SETTINGS], rows)


def time_table(
    shape: LlamaShape,
    r: int,
    seq: int,
    micro_batches: Sequence[int],
    gpus: int,
    mfu: float,
    peak_tflops: float,
    hbm_tbps: float = 3.35,
    link_gbps: float = 360.0,
) -> str:
    """The step-time table: one row per setting and micro-batch.

    Args:
        shape: The model sizes.
        r: LoRA rank.
        seq: Sequence length.
        micro_batches: Micro-batch sizes per GPU.
        gpus: Data-parallel GPUs.
        mfu: Utilisation of the executed FLOPs.
        peak_tflops: Dense bf16 peak per GPU.
        hbm_tbps: Memory bandwidth per GPU, TB/s.
        link_gbps: Collective bus bandwidth per GPU, GB/s.

    Returns:
        A markdown table.
    """
    rows = []
    for b in micro_batches:
        for s in SETTINGS:
            f = flops_per_token(shape, r, seq, s)
            t = step_time(shape, s, r, seq, b, gpus, mfu, peak_tflops, hbm_tbps, link_gbps)
            epoch = MNLI_TRAIN_EXAMPLES / (b * gpus) * t["step_s"] / 60
            rows.append(
                [
                    f"{b} × {gpus} = {b * gpus}",
                    s.name,
                    f"{f['executed'] / 1e9:.1f}",
                    f"{t['compute_s'] * 1e3:.0f}",
                    f"{t['dequant_s'] * 1e3:.0f}",
                    f"{t['comm_s'] * 1e3:.0f}",
                    f"**{t['step_s'] * 1e3:.0f}**",
                    f"{t['tokens_per_s']:,.0f}",
                    f"{t['mfu_achieved']:.0%}",
                    f"{epoch:.0f}",
                ]
            )
    header = [
        "micro-batch × GPUs = global",
        "setting",
        "GFLOP/token",
        "compute ms",
        "dequant ms",
        "comm ms",
        "step ms",
        "tokens/s/GPU",
        "MFU",
        "MNLI epoch min",
    ]
    return markdown_table(header, rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line; a bad value exits with a message naming the option and the fix."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field, what in SHAPE_OPTIONS.items():
        default = getattr(LlamaShape(), field)
        parser.add_argument(
            f"--{field.replace('_', '-')}", type=int, default=default, help=f"{what} (default {default})"
        )
    for flag, (default, what) in RUN_OPTIONS.items():
        parser.add_argument(f"--{flag}", type=int, default=default, help=f"{what} (default {default})")
    parser.add_argument("--num-labels", type=int, default=0, help="0 = causal LM (default); > 0 = classifier classes")
    parser.add_argument("--tied-embeddings", action="store_true", help="tie_word_embeddings (no separate lm_head)")
    parser.add_argument("--micro-batch", type=int, nargs="+", default=[4, 32], help="per-GPU micro-batch(es)")
    parser.add_argument("--mfu", type=float, default=0.4, help="utilisation of the dense bf16 peak (default 0.4)")
    parser.add_argument("--gpu-memory-gb", type=float, default=80.0, help="memory per GPU in GiB (default 80)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU (H100 SXM: 989)")
    parser.add_argument("--hbm-tbps", type=float, default=3.35, help="memory bandwidth per GPU, TB/s (H100 SXM: 3.35)")
    parser.add_argument("--link-gbps", type=float, default=360.0, help="collective bus bandwidth per GPU, GB/s")
    args = parser.parse_args(argv)
    problems = shape_problems(shape_from_args(args))
    problems += [f"`--{f}={getattr(args, f)}` must be a positive integer." for f in RUN_OPTIONS if getattr(args, f) < 1]
    if bad := [b for b in args.micro_batch if b < 1]:
        problems.append(f"`--micro-batch` values {bad} must be positive integers (sequences per GPU).")
    if not 0 < args.mfu <= 1:
        problems.append(f"`--mfu={args.mfu}` must be in (0, 1]: a fraction of the peak, e.g. `--mfu 0.4` for 40 %.")
    for flag in ("gpu_memory_gb", "peak_tflops", "hbm_tbps", "link_gbps"):
        value = getattr(args, flag)
        if not value > 0:
            problems.append(f"`--{flag.replace('_', '-')}={value}` must be > 0.")
    if problems:
        parser.error(" ".join(problems))
    return args


def shape_from_args(args: argparse.Namespace) -> LlamaShape:
    """The :class:`LlamaShape` the command-line options describe."""
    fields = {field: getattr(args, field) for field in SHAPE_OPTIONS}
    return LlamaShape(**fields, tied_embeddings=args.tied_embeddings, num_labels=args.num_labels)


def report(args: argparse.Namespace) -> str:
    """The markdown the CLI prints: sizes, then a memory table per micro-batch, then the step-time table."""
    shape = shape_from_args(args)
    n, lora = parameter_count(shape), lora_parameter_count(shape, args.r)
    layer = layer_activation_bytes_per_token(shape, args.r)
    head = "causal LM" if not shape.num_labels else f"{shape.num_labels}-class sequence classifier"
    parts = [
        f"Model: {head}, {n:,} parameters (N = {n / 1e9:.3f} B); LoRA r {args.r} on all 7 projections: "
        f"{lora:,} trainable ({lora / n:.3%}). Sequence {args.seq}, {args.gpus} GPUs, "
        f"{args.mfu:.0%} of {args.peak_tflops:g} TFLOP/s. Estimates, not measurements.",
        f"Saved activations per decoder layer per token: {layer:,} bytes ({layer / shape.hidden:.1f}·h).",
    ]
    for b in args.micro_batch:
        parts.append(f"**Micro-batch {b} per GPU** (global {b * args.gpus}), {b * args.seq} tokens per GPU:")
        parts.append(memory_table(shape, args.r, args.seq, b, args.gpus, args.gpu_memory_gb))
    parts.append(f"**Step time** ({args.mfu:.0%} utilisation, no gradient accumulation):")
    parts.append(
        time_table(
            shape,
            args.r,
            args.seq,
            args.micro_batch,
            args.gpus,
            args.mfu,
            args.peak_tflops,
            args.hbm_tbps,
            args.link_gbps,
        )
    )
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the scaling sketch for the command-line setting (default: Llama-2-7B on 8×H100)."""
    print(report(parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
