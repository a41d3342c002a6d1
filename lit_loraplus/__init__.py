"""lit_loraplus: LoRA+ fine-tuning for PyTorch Lightning and Hugging Face PEFT.

LoRA+ (Hayou, Ghosh, Yu, ICML 2024, arXiv 2402.12354) trains the LoRA matrix B with a learning
rate λ times A's. This package decides the learning rate of every trainable parameter
(:mod:`lit_loraplus.groups`, :mod:`lit_loraplus.optim`), schedules λ on top of the learning
rate (:mod:`lit_loraplus.schedule`), and wires both into Lightning.
"""

from typing import TYPE_CHECKING

from lit_loraplus.groups import ROLES, ParamRole, parameter_roles
from lit_loraplus.optim import configure_loraplus_optimizers, create_loraplus_optimizer, loraplus_param_groups
from lit_loraplus.schedule import GroupMultiplier, LRSchedule, RatioSchedule, loraplus_scheduler

__version__ = "0.1.0.dev0"

if TYPE_CHECKING:  # seen by type checkers and the API reference; imported lazily at run time (below)
    from lit_loraplus.module import LoraPlusModule
    from lit_loraplus.tuner import find_ratio


def __getattr__(name: str) -> object:
    """Import the Lightning-level classes on first use, so the pure core never pulls in Lightning."""
    if name == "LoraPlusModule":
        from lit_loraplus.module import LoraPlusModule

        return LoraPlusModule
    if name == "find_ratio":
        from lit_loraplus.tuner import find_ratio

        return find_ratio
    raise AttributeError(f"module 'lit_loraplus' has no attribute {name!r}")


__all__ = [
    "ROLES",
    "GroupMultiplier",
    "LRSchedule",
    "LoraPlusModule",
    "ParamRole",
    "RatioSchedule",
    "configure_loraplus_optimizers",
    "create_loraplus_optimizer",
    "find_ratio",
    "loraplus_param_groups",
    "loraplus_scheduler",
    "parameter_roles",
]
