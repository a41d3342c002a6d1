"""Reading CSV / TSV / JSONL rows, with errors that name the file, the setting and the fix."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any, Literal

from lit_loraplus.core.resources import resolve_path

FileFormat = Literal["csv", "tsv", "jsonl"]
_SUFFIXES: dict[str, FileFormat] = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def require_file(path: str | Path, setting: str) -> Path:
    """``path`` as a Path, or a FileNotFoundError naming the setting and the file expected.

    Args:
        path: The file a setting points to (directly or through a folder), or a ``pkg://`` path
            (see :mod:`lit_loraplus.resources`).
        setting: The setting to name in the error, e.g. ``"train_file"`` or ``"data_dir"``.
    """
    path = Path(resolve_path(str(path)))
    if not path.is_file():
        where = "the folder does not exist" if not path.parent.is_dir() else "no such file in that folder"
        raise FileNotFoundError(f"`{setting}`: expected the file {path}, but {where}. Point `{setting}` at it.")
    return path


def infer_format(path: Path, file_format: FileFormat | None) -> FileFormat:
    """The file format: ``file_format`` if given, else from the suffix (.csv, .tsv, .jsonl/.json)."""
    if file_format is not None:
        if file_format not in ("csv", "tsv", "jsonl"):
            raise ValueError(f"`file_format={file_format!r}` is unknown: use 'csv', 'tsv' or 'jsonl'.")
        return file_format
    if path.suffix.lower() not in _SUFFIXES:
        raise ValueError(
            f"Cannot tell the format of {path} from its suffix {path.suffix!r}: "
            "set `file_format` to 'csv', 'tsv' or 'jsonl'."
        )
    return _SUFFIXES[path.suffix.lower()]


def _lines(path: Path, encoding: str, errors: str) -> list[str]:
    """The file's lines, decoded; undecodable bytes raise an error that says what to set."""
    try:
        with path.open(encoding=encoding, errors=errors, newline="") as f:
            return f.read().splitlines(keepends=True)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not valid {encoding} (byte {err.start}: {err.reason}) and `encoding_errors={errors!r}`. "
            f"Set `encoding_errors='replace'` to read undecodable bytes as U+FFFD, or set `encoding` to the "
            "file's real encoding."
        ) from err
    except LookupError as err:
        raise ValueError(
            f"`encoding={encoding!r}` / `encoding_errors={errors!r}`: {err}. Use a Python codec name "
            "(e.g. 'utf-8', 'latin-1') and an error handler such as 'strict' or 'replace'."
        ) from err


def read_table(
    path: Path,
    delimiter: str = ",",
    quoting: int = csv.QUOTE_MINIMAL,
    fieldnames: list[str] | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
) -> tuple[list[str], list[dict[str, str]]]:
    """Read a delimited file into dict rows; rows whose column count differs from the header are skipped.

    Args:
        path: The file.
        delimiter: ``","`` (CSV) or ``"\\t"`` (TSV).
        quoting: A ``csv`` quoting constant (GLUE needs ``csv.QUOTE_NONE``: its text has stray quotes).
        fieldnames: Column names of a file without a header row (None: the first row is the header).
        encoding: Text encoding; ``"utf-8-sig"`` also strips a byte-order mark.
        errors: How to handle undecodable bytes (``"strict"`` raises, ``"replace"`` substitutes).

    Returns:
        ``(columns, rows)``.

    Warns:
        UserWarning: With the count of malformed rows skipped (e.g. QQP's training file has some).
    """
    reader = csv.reader(_lines(path, encoding, errors), delimiter=delimiter, quoting=quoting)
    columns = fieldnames or next(reader, [])
    rows, malformed = [], 0
    for row in reader:
        if len(row) == len(columns):
            rows.append(dict(zip(columns, row, strict=True)))
        elif row:
            malformed += 1
    if malformed:
        warnings.warn(f"{path}: skipped {malformed} rows whose column count is not {len(columns)}.", stacklevel=2)
    return columns, rows


def read_jsonl(path: Path, encoding: str = "utf-8", errors: str = "strict") -> tuple[list[str], list[dict[str, Any]]]:
    """Read a JSON-lines file (one object a line; blank lines ignored).

    Args:
        path: The file.
        encoding: Text encoding.
        errors: How to handle undecodable bytes.

    Returns:
        ``(columns, rows)``: columns are the keys of the first object.
    """
    rows = []
    for number, line in enumerate(_lines(path, encoding, errors), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number} is not a JSON object: {err}.") from err
    return (list(rows[0]) if rows else []), rows


def read_rows(
    path: Path, file_format: FileFormat, encoding: str = "utf-8", errors: str = "strict"
) -> tuple[list[str], list[dict[str, Any]]]:
    """Read a CSV, TSV or JSONL file into ``(columns, rows)`` (see :func:`read_table`, :func:`read_jsonl`)."""
    if file_format == "jsonl":
        return read_jsonl(path, encoding, errors)
    return read_table(path, "\t" if file_format == "tsv" else ",", encoding=encoding, errors=errors)


def require_columns(path: Path, columns: list[str], rows: list[dict[str, Any]], wanted: dict[str, str]) -> None:
    """Raise one error for every wanted column the file lacks (or a JSONL row lacks), listing those present.

    Args:
        path: The file, to name in the error.
        columns: The columns the file has.
        rows: Its rows (JSONL rows may each lack a key).
        wanted: ``{setting: column}``, e.g. ``{"label_column": "sentiment"}``.
    """
    problems = [
        f"`{setting}={column!r}` is not a column" for setting, column in wanted.items() if column not in columns
    ]
    if not rows:
        problems.append("the file has no data rows")
    if not problems:
        for setting, column in wanted.items():
            missing = [i for i, row in enumerate(rows, start=1) if not str(row.get(column) or "").strip()]
            if missing:
                problems.append(
                    f"`{setting}={column!r}` is missing or empty in {len(missing)} rows (first: row {missing[0]})"
                )
    if problems:
        raise ValueError(
            f"{path}: " + "; ".join(problems) + f". Columns present: {columns}. Set the setting to one of them, "
            "or fix the rows."
        )
