"""One check per kind of setting value, each returning the problem as text instead of raising.

Every settings check in the package is built from these, so that "a positive number" means the
same thing everywhere (finite, > 0, not a bool) and a caller can collect every problem of a
configuration and raise once::

    problems = positive("lr", lr) + int_at_least("r", r, 1, "the LoRA rank")
    raise_problems(problems, "LoraPlusModule settings")

Each helper returns ``[]`` when the value is fine, else a one-item list whose message quotes the
setting, the bad value and what it must be.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence


def is_number(value: object) -> bool:
    """A real, finite int or float (bools excluded: ``True`` is no learning rate)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_positive(value: object) -> bool:
    """A real, finite number > 0 (bools excluded)."""
    return is_number(value) and value > 0


def is_int_at_least(value: object, minimum: int) -> bool:
    """An int (bools excluded) >= ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _message(name: str, value: object, requirement: str, hint: str) -> list[str]:
    return [f"`{name}={value!r}` must be {requirement}" + (f" ({hint})." if hint else ".")]


def positive(name: str, value: object, hint: str = "", optional: bool = False) -> list[str]:
    """The problem with a setting that must be a positive finite number.

    Args:
        name: The setting, as the user writes it (``lr``, ``model.ratio``).
        value: Its value.
        hint: What the setting means or a typical value, appended to the message.
        optional: Accept None.

    Returns:
        ``[]`` or one message.
    """
    if (optional and value is None) or is_positive(value):
        return []
    return _message(name, value, "a positive finite number" + (" or null" if optional else ""), hint)


def non_negative(name: str, value: object, hint: str = "") -> list[str]:
    """The problem with a setting that must be a finite number >= 0 (``[]`` or one message)."""
    return [] if is_number(value) and value >= 0 else _message(name, value, "a number >= 0", hint)


def int_at_least(name: str, value: object, minimum: int, hint: str = "", optional: bool = False) -> list[str]:
    """The problem with a setting that must be an integer >= ``minimum`` (``[]`` or one message).

    Args:
        name: The setting.
        value: Its value.
        minimum: The smallest allowed value.
        hint: Appended to the message.
        optional: Accept None.
    """
    if (optional and value is None) or is_int_at_least(value, minimum):
        return []
    return _message(name, value, f"an integer >= {minimum}" + (" or null" if optional else ""), hint)


def in_range(
    name: str, value: object, low: float, high: float, hint: str = "", *, high_open: bool = False
) -> list[str]:
    """The problem with a setting that must lie in [low, high] (or [low, high) with ``high_open``)."""
    ok = is_number(value) and low <= value and (value < high if high_open else value <= high)
    return [] if ok else _message(name, value, f"in [{low:g}, {high:g}{')' if high_open else ']'}", hint)


def one_of(name: str, value: object, choices: Collection[object], hint: str = "") -> list[str]:
    """The problem with a setting that must be one of ``choices`` (``[]`` or one message)."""
    return [] if value in choices else _message(name, value, f"one of {list(choices)}", hint)


def distinct_positives(name: str, values: object, example: str, meaning: str) -> list[str]:
    """The problems with a setting that must be a non-empty list of distinct positive finite numbers (a grid).

    Args:
        name: The setting.
        values: Its value; None is accepted (the caller's default applies).
        example: A valid value, for the message (``"[1, 4, 16]"``).
        meaning: What the values are, appended to the message.

    Returns:
        ``[]`` or the messages: not a list, the bad values, the repeated values.
    """
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        return [f"`{name}={values!r}` must be a non-empty list of numbers, e.g. {name}={example}."]
    problems = []
    if bad := [v for v in values if not is_positive(v)]:
        problems.append(f"`{name}` holds {bad}: every value must be a positive finite number ({meaning}).")
    if dups := sorted({v for v in values if is_positive(v) and list(values).count(v) > 1}):
        problems.append(f"`{name}` repeats {dups}: list each value once (a repeat would only rerun a trial).")
    return problems


def raise_problems(problems: list[str], what: str, error: type[Exception] = ValueError) -> None:
    """Raise one error listing every problem, or nothing when there is none.

    Args:
        problems: Messages from the helpers above (or written by hand).
        what: What was checked, e.g. ``"LoraPlusModule settings"``.
        error: The exception class.

    Raises:
        ValueError: (or ``error``) ``"Invalid <what>: <problem> <problem> ..."``.
    """
    if problems:
        raise error(f"Invalid {what}: " + " ".join(problems))
