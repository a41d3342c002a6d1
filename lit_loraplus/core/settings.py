"""The learning-rate settings of the LoRA+ groups, in one object, validated in one place.

``GroupSettings`` is what every function that builds LoRA+ groups takes (``loraplus_param_groups``,
``create_loraplus_optimizer``, ``configure_loraplus_optimizers``, ``LoraPlusModule``); the keyword
form ``loraplus_param_groups(model, lr=1e-3, ratio=4)`` is a shorthand for
``loraplus_param_groups(model, GroupSettings(lr=1e-3, ratio=4))``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from lit_loraplus.core.checks import non_negative, one_of, positive, raise_problems

Compat = Literal["peft"]
# The default pair (η_A, λ), chosen together from the evidence benchmark (docs/benchmarks/evidence.md): the cell
# that stays close to each task's best (SST-2, MRPC, the quickstart's tweets) without failing to learn CoLA, where
# larger λ·η_A stays at the majority class. λ and η_A go together: raising one calls for lowering the other.
DEFAULT_LR = 1e-3
DEFAULT_RATIO = 4.0
RATIO_HINT = "λ = η_B/η_A: 2-8 under PEFT's standard init, ~16 under the paper's init, 1 is plain LoRA"


@dataclass(frozen=True)
class GroupSettings:
    """Learning rates and weight decay of the LoRA+ optimizer groups.

    Attributes:
        lr: η, the learning rate of A (and the base of every other group). ``LoraPlusModule``'s default
            is ``DEFAULT_LR`` (1e-3), paired with ``DEFAULT_RATIO``.
        ratio: λ = η_B / η_A (default ``DEFAULT_RATIO``, 4). 16 (2^4) is the paper's choice under its
            Init[2]; under PEFT's standard init the paper found 2^1-2^3 better. 1 reproduces plain LoRA.
        weight_decay: Decoupled weight decay of the groups that decay (never biases, norms, DoRA
            magnitudes or token deltas).
        embedding_lr: Learning rate of LoRA embedding A and B (default: ``lr``).
        head_lr: Learning rate of ``modules_to_save`` copies, e.g. a classifier head (default: ``lr``).
        magnitude_lr: Learning rate of DoRA magnitude vectors (default: ``lr``).
        compat: ``"peft"`` reproduces ``peft.optimizers.create_loraplus_optimizer``'s placement
            exactly (every 1-D parameter at λ·η, embedding at 1e-6 unless ``embedding_lr``).

    Raises:
        ValueError: At construction, listing every bad field with its value and the fix.

    Example:
        >>> GroupSettings(lr=2e-4, ratio=4).role_lr("lora_B")
        0.0008
    """

    lr: float
    ratio: float = DEFAULT_RATIO
    weight_decay: float = 0.0
    embedding_lr: float | None = None
    head_lr: float | None = None
    magnitude_lr: float | None = None
    compat: Compat | None = None

    def __post_init__(self) -> None:
        raise_problems(self.problems_in(asdict(self)), "LoRA+ optimizer settings")
        if self.ratio < 1:  # legal, so a warning, not an error
            warnings.warn(
                f"`ratio={self.ratio}` < 1 gives B a smaller learning rate than A. That is legal but the opposite of "
                "what LoRA+ recommends (λ > 1: 2-8 under the standard init, ~16 under the paper's init).",
                UserWarning,
                stacklevel=4,
            )

    @classmethod
    def problems_in(cls, values: Mapping[str, Any]) -> list[str]:
        """Every problem of these field values (empty when valid); the constructor raises them all at once.

        Args:
            values: Field values by name; missing optional fields take their defaults.
        """
        get = values.get
        problems = positive("lr", get("lr"), "η, the learning rate of A")
        problems += positive("ratio", get("ratio", DEFAULT_RATIO), RATIO_HINT)
        problems += non_negative("weight_decay", get("weight_decay", 0.0))
        for name in ("embedding_lr", "head_lr", "magnitude_lr"):
            problems += positive(name, get(name), optional=True)
        problems += one_of("compat", get("compat"), (None, "peft"), "None is lit_loraplus's placement")
        if get("compat") == "peft" and (extra := [n for n in ("head_lr", "magnitude_lr") if get(n) is not None]):
            problems.append(
                f"compat='peft' reproduces peft.optimizers.create_loraplus_optimizer, which has no "
                f"equivalent of {extra}: drop them or set compat=None."
            )
        return problems

    def role_lr(self, role: str) -> float:
        """The learning rate of a parameter role (see :data:`lit_loraplus.core.roles.ROLES`) outside PEFT compat."""
        overrides = {
            "lora_B": self.lr * self.ratio,
            "embedding_A": self.embedding_lr or self.lr,
            "embedding_B": self.embedding_lr or self.lr,
            "magnitude": self.magnitude_lr or self.lr,
            "saved": self.head_lr or self.lr,
        }
        return overrides.get(role, self.lr)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The settings' field names (``lr``, ``ratio``, ...)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def resolve(cls, settings: GroupSettings | None, kwargs: Mapping[str, Any]) -> GroupSettings:
        """``settings``, or one built from keyword arguments (the shorthand of the public functions).

        Args:
            settings: A ready object, or None.
            kwargs: Field values (``lr=..., ratio=...``); only when ``settings`` is None.

        Returns:
            The settings.

        Raises:
            TypeError: For both forms at once, or an unknown keyword (the valid ones are listed).
            ValueError: For invalid values.
        """
        if settings is not None:
            if kwargs:
                raise TypeError(f"Pass either `settings` or the keywords {sorted(kwargs)}, not both.")
            return settings
        if unknown := sorted(set(kwargs) - set(cls.field_names())):
            raise TypeError(f"Unknown LoRA+ group setting(s) {unknown}; valid: {list(cls.field_names())}.")
        if "lr" not in kwargs:
            raise TypeError("The LoRA+ groups need `lr` (η, the learning rate of A), e.g. lr=1e-3.")
        return cls(**kwargs)


def split_settings(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword arguments into :class:`GroupSettings` fields and the rest (e.g. optimizer arguments).

    Args:
        kwargs: Mixed keyword arguments.

    Returns:
        ``(group settings, others)``.
    """
    names = set(GroupSettings.field_names())
    return {k: v for k, v in kwargs.items() if k in names}, {k: v for k, v in kwargs.items() if k not in names}
