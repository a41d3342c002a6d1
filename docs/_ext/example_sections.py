"""Griffe extension: render a Google-style ``Example:`` section as code, like ``Examples:``.

The package's docstrings follow Lightning's convention, ``Example:`` followed by ``>>>`` lines.
Griffe reads the singular title as an admonition, so the prompts would render as nested block
quotes; the plural is its doctest section. Only the title changes, in the rendered site.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", flags=re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` to ``Examples:`` in every docstring before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
