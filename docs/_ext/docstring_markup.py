"""Griffe extension: render the package's docstring conventions in Markdown.

The docstrings follow Lightning's conventions, written for Sphinx as much as for Markdown:

- an ``Example:`` section of ``>>>`` lines: Griffe reads the singular title as an admonition, so
  the prompts would render as nested block quotes; the plural is its doctest section;
- Sphinx roles such as ``:func:`loraplus_param_groups``` or ``:class:`~lit_loraplus.LoraPlusModule```:
  shown as code (the ``~`` form by its last name), as Sphinx would print them.

Only the rendered site changes; the source stays as it is.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", flags=re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc):`(~?)([^`]+)`")


def _role_as_code(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class DocstringMarkup(griffe.Extension):
    """Rewrite ``Example:`` titles and Sphinx roles in every docstring before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(_role_as_code, text)
