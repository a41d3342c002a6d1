"""Old import paths of moved modules keep working, with a warning that names the new path.

Until version 0.2 the package was flat (``lit_loraplus.checkpoint``, ``lit_loraplus.optim``, ...).
Those paths still import — in Python and as ``class_path`` strings in YAML configs — through one
import hook: each old module is a stand-in whose attributes are looked up in the modules that now
hold them, and the first use of each name warns (``FutureWarning``, shown to users by default)
with the path to use instead. A name that exists in none of them raises ``AttributeError`` naming
where the module's contents went.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

# old module -> the modules that now hold its public names, searched in order
MOVED: dict[str, tuple[str, ...]] = {
    "lit_loraplus.groups": ("lit_loraplus.core.roles", "lit_loraplus.core.adapters"),
    "lit_loraplus.optim": ("lit_loraplus.core.optim", "lit_loraplus.core.settings"),
    "lit_loraplus.schedule": ("lit_loraplus.core.schedule",),
    "lit_loraplus.lora": ("lit_loraplus.core.model",),
    "lit_loraplus.quantization": ("lit_loraplus.core.quantization",),
    "lit_loraplus.resources": ("lit_loraplus.core.resources",),
    "lit_loraplus.metrics": ("lit_loraplus.evaluation.metrics", "lit_loraplus.evaluation.mmlu"),
    "lit_loraplus.plots": ("lit_loraplus.tools.plots",),
    "lit_loraplus.module": ("lit_loraplus.training.module", "lit_loraplus.training.settings"),
    "lit_loraplus.checkpoint": (
        "lit_loraplus.callbacks.checkpoint",
        "lit_loraplus.training.checkpoint",
        "lit_loraplus.core.rng",
    ),
    "lit_loraplus.checkpoint_io": ("lit_loraplus.training.checkpoint_io",),
    "lit_loraplus.precision": ("lit_loraplus.training.precision",),
    "lit_loraplus.distributed": ("lit_loraplus.training.distributed",),
    "lit_loraplus.export": (
        "lit_loraplus.callbacks.export",
        "lit_loraplus.training.export",
        "lit_loraplus.tools.export",
    ),
    "lit_loraplus.predict": ("lit_loraplus.callbacks.prediction_writer", "lit_loraplus.training.predict"),
    "lit_loraplus.tuner": (
        "lit_loraplus.tools.finder",
        "lit_loraplus.tools.finder.search",
        "lit_loraplus.tools.finder.trials",
        "lit_loraplus.cli.commands",
    ),
}


def new_path(module: ModuleType, name: str) -> str:
    """Where to import ``name`` from now: its package if the package exports it, else its module."""
    package = sys.modules.get(module.__name__.rpartition(".")[0])
    if package is not None and name in getattr(package, "__all__", ()):
        return f"{package.__name__}.{name}"
    return f"{module.__name__}.{name}"


class MovedModule(ModuleType):
    """Stand-in for an old module path: attributes come from the modules that hold them now."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Moved: see {', '.join(targets)}.")
        self._targets = targets

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, name):
                value = getattr(module, name)
                warnings.warn(
                    f"`{self.__name__}.{name}` moved to `{new_path(module, name)}`: import it from there "
                    "(the old path will be removed in a future release).",
                    FutureWarning,
                    stacklevel=2,
                )
                setattr(self, name, value)  # warn once per name
                return value
        raise AttributeError(
            f"module {self.__name__!r} has moved and none of its new homes ({', '.join(self._targets)}) "
            f"defines {name!r}."
        )


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import hook that answers for the old module paths in :data:`MOVED` only."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return MovedModule(spec.name, MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        pass


def install() -> None:
    """Put the hook first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
