"""Parameter roles and LoRA+ groups: exact parameter-name sets, learning rates and weight decay.

In the spirit of PEFT's own ``test_loraplus.py``, but for every placement rule: each case builds a
tiny config-built model, applies a LoRA config, and asserts the exact set of names in each
named group together with the group's learning rate and weight decay.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from lit_loraplus import loraplus_param_groups, parameter_roles
from lit_loraplus.testing import tiny_bert, tiny_gpt2, tiny_llama, tiny_roberta

LR, RATIO, WD = 1e-3, 16.0, 0.01


def summary(model: nn.Module, **kwargs) -> dict[str, tuple[set[str], float, float]]:
    """``{group name: (parameter names, lr, weight decay)}`` of the LoRA+ groups."""
    names = {id(p): n for n, p in model.named_parameters()}
    kwargs = {"lr": LR, "ratio": RATIO, "weight_decay": WD} | kwargs
    return {
        g["name"]: ({names[id(p)] for p in g["params"]}, g["lr"], g["weight_decay"])
        for g in loraplus_param_groups(model, **kwargs)
    }


def expand(template: str, layers: int = 2, adapter: str = "default", **fields: tuple[str, ...]) -> set[str]:
    """Expand a name template over layers (``{i}``), the adapter (``{a}``) and named alternatives."""
    out = {template}
    for key, values in fields.items():
        out = {t.replace("{" + key + "}", v) for t in out for v in values}
    return {t.format(i=i, a=adapter) for t in out for i in range(layers)}


def assert_partition(model: nn.Module, groups: dict) -> None:
    """Every trainable parameter in exactly one group, frozen ones in none."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    listed = [n for names, _, _ in groups.values() for n in names]
    assert sorted(listed) == sorted(trainable)


GPT2 = "base_model.model.transformer.h.{i}"


def test_gpt2_conv1d_plain_lora() -> None:
    """GPT-2's Conv1D projections: A at η with decay, B at λη with decay, nothing else trainable."""
    model = get_peft_model(tiny_gpt2(), LoraConfig(r=4, target_modules=["c_attn", "c_proj", "c_fc"]))
    groups = summary(model)
    mods = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    assert groups == {
        "lora_A": (expand(GPT2 + ".{m}.lora_A.{a}.weight", m=mods), LR, WD),
        "lora_B": (expand(GPT2 + ".{m}.lora_B.{a}.weight", m=mods), LR * RATIO, WD),
    }
    assert_partition(model, groups)


ROBERTA = "base_model.model.roberta.encoder.layer.{i}.attention.self"


def test_roberta_seq_cls_head_and_embedding_lora() -> None:
    """Embedding LoRA at the embedding lr (both matrices), the SEQ_CLS head in ``saved`` at the head lr,
    its biases without decay."""
    model = get_peft_model(
        tiny_roberta(),
        LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value", "word_embeddings"]),
    )
    groups = summary(model, embedding_lr=5e-4, head_lr=2e-3)
    emb = "base_model.model.roberta.embeddings.word_embeddings"
    head = "base_model.model.classifier.modules_to_save.default"
    assert groups == {
        "lora_A": (expand(ROBERTA + ".{m}.lora_A.{a}.weight", m=("query", "value")), LR, WD),
        "lora_B": (expand(ROBERTA + ".{m}.lora_B.{a}.weight", m=("query", "value")), LR * RATIO, WD),
        "embedding_A": ({f"{emb}.lora_embedding_A.default"}, 5e-4, WD),
        "embedding_B": ({f"{emb}.lora_embedding_B.default"}, 5e-4, WD),
        "saved": ({f"{head}.dense.weight", f"{head}.out_proj.weight"}, 2e-3, WD),
        "saved_no_decay": ({f"{head}.dense.bias", f"{head}.out_proj.bias"}, 2e-3, 0.0),
    }
    assert_partition(model, groups)


def test_embedding_and_head_default_to_lr() -> None:
    """Without embedding_lr/head_lr both default to η (not the reference implementations' 1e-6)."""
    model = get_peft_model(
        tiny_roberta(), LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "word_embeddings"])
    )
    groups = summary(model)
    assert {name: lr for name, (_, lr, _) in groups.items()} == {
        "lora_A": LR,
        "lora_B": LR * RATIO,
        "embedding_A": LR,
        "embedding_B": LR,
        "saved": LR,
        "saved_no_decay": LR,
    }


LLAMA = "base_model.model.model.layers.{i}"


def test_llama_dora_magnitude_and_non_head_modules_to_save() -> None:
    """DoRA magnitudes at magnitude_lr without decay; RMSNorm copies in modules_to_save are ``saved``
    without decay (norm recognised by class, not by ndim)."""
    model = get_peft_model(
        tiny_llama(),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], use_dora=True, modules_to_save=["norm"]),
    )
    groups = summary(model, magnitude_lr=3e-3)
    qv = ("self_attn.q_proj", "self_attn.v_proj")
    assert groups == {
        "lora_A": (expand(LLAMA + ".{m}.lora_A.{a}.weight", m=qv), LR, WD),
        "lora_B": (expand(LLAMA + ".{m}.lora_B.{a}.weight", m=qv), LR * RATIO, WD),
        "magnitude": (expand(LLAMA + ".{m}.lora_magnitude_vector.{a}.weight", m=qv), 3e-3, 0.0),
        # PEFT matches modules_to_save by name suffix: "norm" also takes the *_layernorm modules.
        "saved_no_decay": (
            {"base_model.model.model.norm.modules_to_save.default.weight"}
            | expand(LLAMA + ".{m}.modules_to_save.{a}.weight", m=("input_layernorm", "post_attention_layernorm")),
            LR,
            0.0,
        ),
    }
    assert_partition(model, groups)


BERT = "base_model.model.bert.encoder.layer.{i}.attention.self"


def test_bert_bias_lora_only() -> None:
    """``bias="lora_only"``: the adapted layers' base biases are trainable, at η without decay."""
    model = get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query", "value"], bias="lora_only"))
    groups = summary(model)
    qv = ("query", "value")
    assert groups == {
        "lora_A": (expand(BERT + ".{m}.lora_A.{a}.weight", m=qv), LR, WD),
        "lora_B": (expand(BERT + ".{m}.lora_B.{a}.weight", m=qv), LR * RATIO, WD),
        "no_decay": (expand(BERT + ".{m}.base_layer.bias", m=qv), LR, 0.0),
    }
    assert_partition(model, groups)


def test_bert_bias_all() -> None:
    """``bias="all"``: every bias of the model (LayerNorm biases included) at η without decay, none at λη."""
    model = get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query", "value"], bias="all"))
    groups = summary(model)
    biases = {n for n, p in model.named_parameters() if p.requires_grad and n.endswith(".bias")}
    assert len(biases) > 10
    assert groups["no_decay"] == (biases, LR, 0.0)
    assert set(groups) == {"lora_A", "lora_B", "no_decay"}
    assert_partition(model, groups)


def test_lora_bias_goes_with_b_without_decay() -> None:
    """``lora_bias=True``: B's bias scales like B (λη) but, being a bias, gets no weight decay."""
    model = get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query"], lora_bias=True))
    groups = summary(model)
    assert groups["lora_B"] == (expand(BERT + ".query.lora_B.{a}.weight"), LR * RATIO, WD)
    assert groups["lora_B_no_decay"] == (expand(BERT + ".query.lora_B.{a}.bias"), LR * RATIO, 0.0)
    assert set(groups) == {"lora_A", "lora_B", "lora_B_no_decay"}


def test_two_adapters_only_the_active_one_counts() -> None:
    """With two adapters, the inactive (frozen) one is in no group."""
    model = get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query"]))
    model.add_adapter("other", LoraConfig(r=2, target_modules=["query"]))
    model.set_adapter("other")
    groups = summary(model)
    assert groups == {
        "lora_A": (expand(BERT + ".query.lora_A.{a}.weight", adapter="other"), LR, WD),
        "lora_B": (expand(BERT + ".query.lora_B.{a}.weight", adapter="other"), LR * RATIO, WD),
    }


def test_rslora_same_placement() -> None:
    """rsLoRA changes the scaling only: the groups are those of plain LoRA."""
    plain = summary(get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules=["q_proj"])))
    rs = summary(get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules=["q_proj"], use_rslora=True)))
    assert rs == plain
    assert set(rs) == {"lora_A", "lora_B"}


def test_trainable_tokens() -> None:
    """``trainable_token_indices`` deltas are ``tokens``: η, no decay."""
    model = get_peft_model(
        tiny_llama(), LoraConfig(r=4, target_modules=["q_proj"], trainable_token_indices={"embed_tokens": [1, 2]})
    )
    groups = summary(model)
    tok = "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta.default"
    assert groups["tokens"] == ({tok}, LR, 0.0)


class UserModel(nn.Module):
    """A model whose own module names contain ``lora_B`` and ``lora_A``."""

    def __init__(self) -> None:
        super().__init__()
        self.my_lora_B_proj = nn.Linear(8, 8)
        self.lora_A_like = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.lora_A_like(self.my_lora_B_proj(x)))


def test_user_module_named_like_lora_is_not_a_lora_matrix() -> None:
    """``my_lora_B_proj`` stays ordinary: its weight is ``other``, its bias and the norm ``no_decay``."""
    model = get_peft_model(UserModel(), LoraConfig(r=2, target_modules=["lora_A_like"]))
    model.base_model.model.my_lora_B_proj.requires_grad_(True)
    model.base_model.model.norm.requires_grad_(True)
    groups = summary(model)
    root = "base_model.model"
    assert groups == {
        "lora_A": ({f"{root}.lora_A_like.lora_A.default.weight"}, LR, WD),
        "lora_B": ({f"{root}.lora_A_like.lora_B.default.weight"}, LR * RATIO, WD),
        "no_decay": ({f"{root}.my_lora_B_proj.bias", f"{root}.norm.weight", f"{root}.norm.bias"}, LR, 0.0),
        "other": ({f"{root}.my_lora_B_proj.weight"}, LR, WD),
    }


def test_roles_do_not_depend_on_shape() -> None:
    """Flattening every parameter to 1-D (as FSDP1's flat parameters do) leaves every role unchanged."""
    model = get_peft_model(
        tiny_llama(),
        LoraConfig(r=4, target_modules=["q_proj", "embed_tokens"], use_dora=True, modules_to_save=["norm"]),
    )
    before = parameter_roles(model)
    for module in model.modules():
        for local, param in list(module.named_parameters(recurse=False)):
            flat = nn.Parameter(param.detach().reshape(-1), requires_grad=param.requires_grad)
            if isinstance(module._parameters, dict) and local in module._parameters:
                module._parameters[local] = flat
    assert all(p.ndim == 1 for p in model.parameters())
    assert parameter_roles(model) == before
    assert {r.role for r in before.values()} == {"lora_A", "lora_B", "embedding_A", "embedding_B", "magnitude", "saved"}


def test_group_names_unique_and_groups_non_empty() -> None:
    """Group names are unique and no group is empty, on the richest configuration."""
    model = get_peft_model(
        tiny_roberta(),
        LoraConfig(
            task_type="SEQ_CLS", r=4, target_modules=["query", "word_embeddings"], use_dora=True, bias="lora_only"
        ),
    )
    groups = loraplus_param_groups(model, lr=LR)
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names))
    assert all(len(g["params"]) > 0 for g in groups)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, r"`lr=0.0` must be a positive"),
        ({"lr": float("nan")}, r"`lr=nan` must be a positive"),
        ({"lr": 1e-3, "ratio": 0}, r"`ratio=0` must be a positive finite number \(λ = η_B/η_A"),
        ({"lr": 1e-3, "ratio": -2.0}, r"`ratio=-2.0` must be a positive finite number"),
        ({"lr": 1e-3, "weight_decay": -1}, r"`weight_decay=-1` must be a number >= 0"),
        ({"lr": 1e-3, "head_lr": 0}, r"`head_lr=0` must be a positive"),
        ({"lr": 1e-3, "compat": "axolotl"}, r"`compat='axolotl'` must be one of \[None, 'peft'\]"),
        ({"lr": 1e-3, "compat": "peft", "head_lr": 1e-3}, r"no\s+equivalent of \['head_lr'\]"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    """Each bad argument is a ValueError naming it, its value and the fix."""
    model = get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query"]))
    with pytest.raises(ValueError, match=match):
        loraplus_param_groups(model, **kwargs)


def test_all_problems_reported_at_once() -> None:
    """Several bad arguments are listed in one error."""
    model = get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query"]))
    with pytest.raises(ValueError, match=r"(?s)`lr=-1`.*`ratio=0`"):
        loraplus_param_groups(model, lr=-1, ratio=0)


def test_ratio_below_one_warns() -> None:
    """``ratio < 1`` is legal but unusual: a warning that says so."""
    model = get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query"]))
    with pytest.warns(UserWarning, match=r"`ratio=0.5` < 1 gives B a smaller learning rate"):
        groups = loraplus_param_groups(model, lr=1e-3, ratio=0.5)
    assert {g["name"]: g["lr"] for g in groups} == {"lora_A": 1e-3, "lora_B": 5e-4}


def test_no_trainable_parameters() -> None:
    """A frozen model is refused, with the fix."""
    model = tiny_bert().requires_grad_(False)
    with pytest.raises(ValueError, match=r"no trainable parameters\. Wrap it with `peft\.get_peft_model"):
        loraplus_param_groups(model, lr=1e-3)


def test_no_lora_parameters_lists_target_modules() -> None:
    """A model that trains no LoRA parameter is refused; the message lists what target_modules can name."""
    model = tiny_gpt2()
    with pytest.raises(
        ValueError, match=r"trains no LoRA parameter.*\['c_attn', 'c_fc', 'c_proj', 'lm_head', 'wpe', 'wte'\]"
    ):
        loraplus_param_groups(model, lr=1e-3)


def test_non_lora_tuner_refused() -> None:
    """Prefix tuning / IA3 models are refused by type, naming the PEFT type."""
    from peft import IA3Config

    model = get_peft_model(tiny_bert(), IA3Config(target_modules=["query", "output.dense"], feedforward_modules=[]))
    with pytest.raises(TypeError, match=r"adapters of another PEFT type: \{'default': 'IA3'\}"):
        loraplus_param_groups(model, lr=1e-3)
