"""The validation helpers every settings check is built from, and the LoRA+ group settings object."""

from __future__ import annotations

import math

import pytest

from lit_loraplus import GroupSettings, loraplus_param_groups
from lit_loraplus.core.checks import in_range, int_at_least, non_negative, one_of, positive, raise_problems
from lit_loraplus.core.settings import split_settings
from lit_loraplus.testing import tiny_bert


@pytest.mark.parametrize("value", [1, 0.5, 1e-12])
def test_positive_accepts_finite_positive_numbers(value: float) -> None:
    """Ints and floats > 0 pass."""
    assert positive("lr", value) == []


@pytest.mark.parametrize("value", [0, -1.0, math.inf, math.nan, True, "1e-3", None])
def test_positive_rejects_with_name_value_and_hint(value: object) -> None:
    """Zero, negatives, inf/nan, bools, strings and None fail with one message quoting name, value and hint."""
    (message,) = positive("lr", value, "η, the learning rate of A")
    assert message == f"`lr={value!r}` must be a positive finite number (η, the learning rate of A)."


def test_optional_integer_range_and_choice_checks() -> None:
    """None passes where optional; ints below the minimum, floats and bools fail; ranges and choices quote the
    bounds."""
    assert int_at_least("r", None, 1, optional=True) == [] and int_at_least("r", 8, 1) == []
    assert int_at_least("r", 0, 1) == ["`r=0` must be an integer >= 1."]
    assert int_at_least("r", 2.0, 1) and int_at_least("r", True, 0)
    assert non_negative("weight_decay", 0.0) == [] and non_negative("weight_decay", -0.1)
    assert in_range("dropout", 1.0, 0, 1, high_open=True) == ["`dropout=1.0` must be in [0, 1)."]
    assert one_of("bias", "some", ("none", "all")) == ["`bias='some'` must be one of ['none', 'all']."]


def test_raise_problems_lists_every_problem_once() -> None:
    """No problem: nothing raised; several: one error listing them all after what was checked."""
    raise_problems([], "X settings")
    with pytest.raises(ValueError, match=r"^Invalid X settings: a\. b\.$"):
        raise_problems(["a.", "b."], "X settings")


def test_group_settings_collect_every_problem() -> None:
    """Every bad field is reported at once, with its value."""
    with pytest.raises(ValueError, match=r"(?s)`lr=0`.*`ratio=-1`.*`weight_decay=-0.1`.*`head_lr=0`"):
        GroupSettings(lr=0, ratio=-1, weight_decay=-0.1, head_lr=0)
    with pytest.raises(ValueError, match=r"compat='peft' reproduces .* no equivalent of \['head_lr'\]"):
        GroupSettings(lr=1e-3, compat="peft", head_lr=1e-2)
    with pytest.warns(UserWarning, match=r"`ratio=0.5` < 1 gives B a smaller learning rate"):
        GroupSettings(lr=1e-3, ratio=0.5)


def test_group_settings_role_rates() -> None:
    """B gets λ·η; embeddings, magnitudes and saved copies their own rates when set, η otherwise."""
    s = GroupSettings(lr=1e-3, ratio=4, embedding_lr=1e-4, head_lr=1e-2)
    assert s.role_lr("lora_A") == 1e-3 and s.role_lr("lora_B") == 4e-3
    assert s.role_lr("embedding_A") == s.role_lr("embedding_B") == 1e-4
    assert s.role_lr("saved") == 1e-2 and s.role_lr("magnitude") == 1e-3 and s.role_lr("no_decay") == 1e-3


def test_keywords_and_settings_object_build_the_same_groups() -> None:
    """`loraplus_param_groups(model, lr=..., ratio=...)` is a shorthand for the settings object; mixing both or
    an unknown keyword is a TypeError; optimizer arguments split from group settings."""
    model = _peft_bert()
    short = loraplus_param_groups(model, lr=1e-3, ratio=4)
    full = loraplus_param_groups(model, GroupSettings(lr=1e-3, ratio=4))
    assert [(g["name"], g["lr"], len(g["params"])) for g in short] == [
        (g["name"], g["lr"], len(g["params"])) for g in full
    ]
    with pytest.raises(TypeError, match=r"either `settings` or the keywords \['ratio'\]"):
        loraplus_param_groups(model, GroupSettings(lr=1e-3), ratio=4)
    with pytest.raises(TypeError, match=r"Unknown LoRA\+ group setting\(s\) \['rati'\]; valid: \['lr', 'ratio'"):
        loraplus_param_groups(model, lr=1e-3, rati=4)
    with pytest.raises(TypeError, match=r"need `lr`"):
        loraplus_param_groups(model, ratio=4)
    assert split_settings({"lr": 1, "betas": (0.9, 0.99)}) == ({"lr": 1}, {"betas": (0.9, 0.99)})


def _peft_bert():
    from peft import LoraConfig, get_peft_model

    return get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query", "value"], task_type="SEQ_CLS"))
