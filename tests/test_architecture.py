"""The package's structure: layer contracts, module sizes, and old import paths that still resolve.

The layer rule is checked by import-linter with the contracts in pyproject.toml; the promise that the
pure core loads no Lightning at run time is in test_package.py (a fresh interpreter).
"""

from __future__ import annotations

import importlib
import logging
import re
import warnings
from pathlib import Path

import pytest
import yaml
from importlinter.cli import lint_imports

import lit_loraplus
from lit_loraplus._compat import MOVED

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lit_loraplus"
# Modules allowed past ~300 lines, each one concept (the architecture page says why).
LONG_MODULES = {"training/module.py"}
MAX_LINES = 300


def test_layer_contracts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """import-linter finds every import pointing down the layers and none of Lightning in the pure layers."""
    monkeypatch.chdir(REPO)
    # import-linter configures logging with disable_existing_loggers: without this, Lightning's loggers stay off for
    # every later test of the session (caplog then captures nothing).
    loggers = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    disabled = [(lg, lg.disabled) for lg in loggers]
    try:
        assert lint_imports(config_filename="pyproject.toml", no_cache=True, no_logo=True) == 0
    finally:
        for lg, state in disabled:
            lg.disabled = state


def test_modules_are_short() -> None:
    """No module of the package is over ~300 lines, except the ones named in LONG_MODULES."""
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert set(long) <= LONG_MODULES, long


def test_peft_attribute_names_live_in_one_module() -> None:
    """Only lit_loraplus/core/adapters.py reads PEFT's LoRA attributes (docstrings and comments aside)."""
    # PEFT's containers: lora_A/B, lora_embedding_A/B, lora_magnitude_vector, a ModulesToSaveWrapper's copies,
    # trainable-token deltas (``h.modules_to_save``, our own setting, is not PEFT's attribute).
    attribute = re.compile(
        r"\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B|lora_magnitude_vector|trainable_tokens_delta)\b"
        r"|\.modules_to_save\.|getattr\([^)]*\"lora_"
    )
    readers = set()
    for path in PACKAGE.rglob("*.py"):
        code = re.sub(r'""".*?"""', "", path.read_text(), flags=re.S)
        code = "\n".join(line.split("#")[0] for line in code.splitlines())
        if attribute.search(code):
            readers.add(str(path.relative_to(PACKAGE)))
    assert readers == {"core/adapters.py"}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_still_import_with_a_warning(old: str) -> None:
    """Every name a moved module exported still imports from its old path, with a FutureWarning naming the
    new path; an unknown name names the new homes."""
    module = importlib.import_module(old)
    targets = [importlib.import_module(t) for t in MOVED[old]]
    names = [
        n
        for t in targets
        for n in vars(t)
        if not n.startswith("_") and getattr(vars(t)[n], "__module__", "").startswith("lit_loraplus")
    ]
    assert names, old
    name = names[0]
    module.__dict__.pop(name, None)
    with pytest.warns(FutureWarning, match=rf"`{re.escape(old)}\.{name}` moved to `lit_loraplus\.[a-z_.]+\.{name}`"):
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError, match=r"has moved and none of its new homes"):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("lit_loraplus.checkpoint.AdapterCheckpoint", "lit_loraplus.callbacks.AdapterCheckpoint"),
        ("lit_loraplus.export.AdapterExport", "lit_loraplus.callbacks.AdapterExport"),
        ("lit_loraplus.predict.JsonlPredictionWriter", "lit_loraplus.callbacks.JsonlPredictionWriter"),
        ("lit_loraplus.checkpoint_io.AtomicCheckpointIO", "lit_loraplus.training.AtomicCheckpointIO"),
        ("lit_loraplus.precision.AdapterFP32Precision", "lit_loraplus.training.AdapterFP32Precision"),
        ("lit_loraplus.distributed.NoSplitModulesPolicy", "lit_loraplus.training.NoSplitModulesPolicy"),
        ("lit_loraplus.module.LoraPlusModule", "lit_loraplus.training.LoraPlusModule"),
        ("lit_loraplus.tuner.find_ratio", "lit_loraplus.tools.finder.find_ratio"),
        ("lit_loraplus.optim.loraplus_param_groups", "lit_loraplus.core.optim.loraplus_param_groups"),
    ],
)
def test_old_class_paths_of_user_configs_resolve_to_the_same_object(old: str, new: str) -> None:
    """A `class_path` from a config written for the flat layout gives the very class the new path gives."""
    resolve = lambda path: getattr(importlib.import_module(path.rsplit(".", 1)[0]), path.rsplit(".", 1)[1])  # noqa: E731
    with pytest.warns(FutureWarning, match=re.escape(new)):
        importlib.import_module(old.rsplit(".", 1)[0]).__dict__.pop(old.rsplit(".", 1)[1], None)
        assert resolve(old) is resolve(new)


def _class_paths(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["class_path"]] if isinstance(node.get("class_path"), str) else []
        return found + [p for v in node.values() for p in _class_paths(v)]
    if isinstance(node, list):
        return [p for v in node for p in _class_paths(v)]
    return []


def test_configs_use_current_paths_only() -> None:
    """Every `class_path` in configs/ resolves without a deprecation warning (the configs teach the new paths)."""
    paths = sorted({p for f in (REPO / "configs").rglob("*.yaml") for p in _class_paths(yaml.safe_load(f.read_text()))})
    assert any(p.startswith("lit_loraplus.") for p in paths)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        for path in paths:
            module, _, name = path.rpartition(".")
            assert getattr(importlib.import_module(module), name) is not None, path


def test_public_api_is_the_documented_one() -> None:
    """The top-level names users import are exported and come from the layer that owns them."""
    assert lit_loraplus.LoraPlusModule.__module__ == "lit_loraplus.training.module"
    assert lit_loraplus.loraplus_param_groups.__module__ == "lit_loraplus.core.optim"
    assert lit_loraplus.GroupSettings.__module__ == "lit_loraplus.core.settings"
    assert lit_loraplus.find_ratio.__module__ == "lit_loraplus.tools.finder.search"
