"""lit_loraplus: LoRA+ fine-tuning for PyTorch Lightning and Hugging Face PEFT.

LoRA+ (Hayou, Ghosh, Yu, ICML 2024, arXiv 2402.12354) trains the LoRA matrix B with a learning
rate λ times A's. The package is layered, imports pointing one way only (see the Architecture
page of the documentation):

- :mod:`lit_loraplus.core` — pure torch + PEFT: the role of every trainable parameter, the LoRA+
  groups and optimizer, the LR × ratio schedules, the feature-learning terms;
- :mod:`lit_loraplus.evaluation`, :mod:`lit_loraplus.data` — metrics and LightningDataModules;
- :mod:`lit_loraplus.training`, :mod:`lit_loraplus.callbacks` — ``LoraPlusModule`` and Lightning plumbing;
- :mod:`lit_loraplus.tools` — the ratio finder, checkpoint export, plots; :mod:`lit_loraplus.cli` on top.

Importing this package loads only the pure core; ``LoraPlusModule`` and ``find_ratio`` are
imported (with Lightning) on first use.
"""

from typing import TYPE_CHECKING

from lit_loraplus import _compat
from lit_loraplus._version import __version__
from lit_loraplus.core.optim import configure_loraplus_optimizers, create_loraplus_optimizer, loraplus_param_groups
from lit_loraplus.core.roles import ROLES, ParamRole, parameter_roles
from lit_loraplus.core.schedule import GroupMultiplier, LRSchedule, RatioSchedule, loraplus_scheduler
from lit_loraplus.core.settings import GroupSettings

_compat.install()

# Lightning-level names, imported on first use so that `import lit_loraplus` stays free of Lightning.
_LAZY = {"LoraPlusModule": "lit_loraplus.training.module", "find_ratio": "lit_loraplus.tools.finder"}

if TYPE_CHECKING:  # seen by type checkers and the API reference; imported lazily at run time (below)
    from lit_loraplus.tools.finder import find_ratio
    from lit_loraplus.training.module import LoraPlusModule


def __getattr__(name: str) -> object:
    """Import a Lightning-level public name (``LoraPlusModule``, ``find_ratio``) on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lit_loraplus' has no attribute {name!r}")


__all__ = [
    "ROLES",
    "GroupMultiplier",
    "GroupSettings",
    "LRSchedule",
    "LoraPlusModule",
    "ParamRole",
    "RatioSchedule",
    "__version__",
    "configure_loraplus_optimizers",
    "create_loraplus_optimizer",
    "find_ratio",
    "loraplus_param_groups",
    "loraplus_scheduler",
    "parameter_roles",
]
