"""Writing results: strict JSON (a diverged run's inf or NaN becomes null), atomic files, figures without pyplot."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively (JSON has no inf/NaN; here they mean
    diverged)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` through a temporary file and ``os.replace``.

    A reader (or a resumed benchmark) sees the previous file or the complete new one, never half.
    Non-finite floats are written as ``null`` (:func:`json_ready`), so the file is strict JSON.

    Args:
        path: Target file; its folder is created.
        payload: JSON-serialisable data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_ready(payload), indent=1))
    os.replace(tmp, path)


def new_figure(width: float, height: float) -> Any:
    """An empty matplotlib ``Figure`` of ``width`` × ``height`` inches (constrained layout), without pyplot.

    Raises:
        ImportError: If matplotlib (the ``plots`` extra) is missing, with the install command.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("The benchmark figures need matplotlib: `pip install 'lit-loraplus[plots]'`.") from err
    return Figure(figsize=(width, height), layout="constrained")
