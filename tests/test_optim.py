"""Optimizers over LoRA+ groups: real steps, plain-LoRA equivalence, and parity with PEFT's placement."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer as peft_create_loraplus_optimizer
from torch import nn

from lit_loraplus import create_loraplus_optimizer, loraplus_param_groups
from lit_loraplus.testing import tiny_bert, tiny_gpt2, tiny_llama, tiny_roberta


def lora_bert(seed: int = 0, **config) -> nn.Module:
    config = {"r": 4, "target_modules": ["query", "value"]} | config
    return get_peft_model(tiny_bert(seed=seed), LoraConfig(**config))


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> None:
    """A few real steps on fixed random tokens (dropout off: the comparison is about the optimizer)."""
    gen = torch.Generator().manual_seed(1)
    model.eval()
    for _ in range(steps):
        ids = torch.randint(0, 128, (4, 12), generator=gen)
        labels = torch.randint(0, 2, (4,), generator=gen)
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_ratio_one_is_plain_lora_bit_for_bit() -> None:
    """ratio=1, one weight decay everywhere, no special rates: 5 AdamW steps give bit-identical parameters
    to a single-group AdamW over the same parameters (λ = 1 reproduces plain LoRA exactly)."""
    ours = lora_bert(bias="lora_only", modules_to_save=["classifier"])
    plain = lora_bert(bias="lora_only", modules_to_save=["classifier"])
    groups = loraplus_param_groups(ours, lr=1e-3, ratio=1.0, weight_decay=0.0)
    assert len(groups) > 2  # several groups, yet the same numbers
    train_steps(ours, torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.0))
    trainable = [p for p in plain.parameters() if p.requires_grad]
    train_steps(plain, torch.optim.AdamW(trainable, lr=1e-3, weight_decay=0.0))
    for (name, a), (_, b) in zip(ours.named_parameters(), plain.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_frozen_weights_unchanged_and_adapters_move() -> None:
    """After real optimizer steps the frozen base weights are bit-identical and every adapter moved."""
    model = lora_bert()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, create_loraplus_optimizer(model, lr=1e-2, ratio=16), steps=2)
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert not torch.equal(param, before[name]), f"{name} did not move"
        else:
            assert torch.equal(param, before[name]), f"frozen {name} changed"


def test_sgd_step_scales_b_by_ratio() -> None:
    """With SGD and injected gradients: ‖ΔB‖ = λ·η·‖g_B‖ and ‖ΔA‖ = η·‖g_A‖ for every layer."""
    lr, ratio = 0.01, 8.0
    model = lora_bert()
    optimizer = create_loraplus_optimizer(model, torch.optim.SGD, lr=lr, ratio=ratio)
    params = dict(model.named_parameters())
    trainable = {n: p for n, p in params.items() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    gen = torch.Generator().manual_seed(3)
    grads = {n: torch.randn(p.shape, generator=gen) for n, p in trainable.items()}
    for name, param in trainable.items():
        param.grad = grads[name].clone()
    optimizer.step()
    for name, param in trainable.items():
        step = (param.detach() - before[name]).norm()
        scale = lr * ratio if ".lora_B." in name else lr
        torch.testing.assert_close(step, scale * grads[name].norm(), rtol=1e-5, atol=0)


def test_optimizer_kwargs_pass_through() -> None:
    """Optimizer keyword arguments reach the optimizer; weight decay is set per group, not globally."""
    model = lora_bert()
    optimizer = create_loraplus_optimizer(model, lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    assert {g["betas"] for g in optimizer.param_groups} == {(0.9, 0.99)}
    assert [g["name"] for g in optimizer.param_groups] == ["lora_A", "lora_B"]
    optimizer = create_loraplus_optimizer(model, torch.optim.SGD, lr=1e-3, weight_decay=0.1, momentum=0.9)
    assert [(g["weight_decay"], g["momentum"]) for g in optimizer.param_groups] == [(0.1, 0.9), (0.1, 0.9)]


def per_parameter(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, tuple[float, float]]:
    """``{parameter name: (lr, weight decay)}`` as an optimizer sees them."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}


def roberta_embedding_lora() -> nn.Module:
    return get_peft_model(
        tiny_roberta(),
        LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value", "word_embeddings"], bias="all"),
    )


def llama_dora() -> nn.Module:
    return get_peft_model(
        tiny_llama(), LoraConfig(r=4, target_modules=["q_proj", "v_proj", "embed_tokens"], use_dora=True)
    )


def gpt2_lora_bias() -> nn.Module:
    return get_peft_model(
        tiny_gpt2(), LoraConfig(r=4, target_modules=["c_attn"], lora_bias=True, modules_to_save=["ln_f"])
    )


@pytest.mark.parametrize("build", [roberta_embedding_lora, llama_dora, gpt2_lora_bias])
@pytest.mark.parametrize("embedding_lr", [None, 3e-4])
def test_compat_peft_matches_peft(build, embedding_lr: float | None) -> None:
    """compat='peft': every parameter's learning rate and weight decay equal those of
    ``peft.optimizers.create_loraplus_optimizer`` (its quirks included), with named, non-empty groups."""
    model = build()
    peft_kwargs = {"loraplus_lr_embedding": embedding_lr} if embedding_lr is not None else {}
    theirs = peft_create_loraplus_optimizer(
        model, torch.optim.AdamW, lr=1e-3, loraplus_lr_ratio=16, loraplus_weight_decay=0.05, **peft_kwargs
    )
    ours = create_loraplus_optimizer(
        model, lr=1e-3, ratio=16, weight_decay=0.05, embedding_lr=embedding_lr, compat="peft"
    )
    assert per_parameter(model, ours) == per_parameter(model, theirs)
    assert all(g["params"] and g["name"] for g in ours.param_groups)
    assert len({g["name"] for g in ours.param_groups}) == len(ours.param_groups)


def test_compat_peft_differs_from_ours_where_peft_is_wrong() -> None:
    """The DESIGN defects, seen through the two placements: PEFT puts norm weights and biases at λ·η
    and gives the embedding 1e-6; ours keeps them at η."""
    model = roberta_embedding_lora()
    peft_view = per_parameter(model, create_loraplus_optimizer(model, lr=1e-3, ratio=16, compat="peft"))
    ours = per_parameter(model, create_loraplus_optimizer(model, lr=1e-3, ratio=16))
    bias = "base_model.model.roberta.encoder.layer.0.attention.self.query.base_layer.bias"
    emb_a = "base_model.model.roberta.embeddings.word_embeddings.lora_embedding_A.default"
    assert peft_view[bias][0] == pytest.approx(16e-3) and ours[bias][0] == 1e-3
    assert peft_view[emb_a][0] == 1e-6 and ours[emb_a][0] == 1e-3


def test_adamw_class_gets_the_fused_kernel_unless_the_caller_chose() -> None:
    """torch.optim.AdamW/Adam given as a class use fused=True on CPU tensors; an explicit foreach/fused, another
    optimizer, or a parameter fused cannot take (integer) keeps torch's own default."""
    from lit_loraplus.core.optim import fused_supported

    model = lora_bert()
    assert create_loraplus_optimizer(model, lr=1e-3).defaults["fused"] is True
    assert create_loraplus_optimizer(model, torch.optim.Adam, lr=1e-3).defaults["fused"] is True
    assert create_loraplus_optimizer(model, lr=1e-3, foreach=True).defaults["fused"] is None
    assert create_loraplus_optimizer(model, lr=1e-3, fused=False).defaults["fused"] is False
    assert create_loraplus_optimizer(model, torch.optim.SGD, lr=1e-3).defaults["fused"] is None
    assert not fused_supported([torch.zeros(2, dtype=torch.long)]) and not fused_supported([])
    assert fused_supported([torch.nn.Parameter(torch.zeros(2))])
