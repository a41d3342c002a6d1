"""How the rows a search's trials see move ``lr: auto``'s choice.

The ``rows`` phase (only when named) searches again, without training, one seed's run of a searched ``auto``
variant (``--rows-variant``, by default ``auto-lr``: ``lr: auto`` at the default λ, ``search_edge: keep``; its
initialisation and data order stay the seed's) with each ``--rows-seeds`` value as its ``search_seed``, which
draws the rows the trials train on and the rows that score them. The ``auto`` phase's ``auto``, ``auto-ratio``
and ``auto-lr`` records all used ``search_seed: 0``, one draw for every seed; these searches show how far
another draw of rows alone moves the choice. A run that chose a cell trains exactly as a
run with that cell fixed, so no run is trained here.

Records: ``rows/<task>/<run id>.json`` (the spec and the search record); the phase writes ``rows/report.md``
from them and the ``auto`` phase's record of the same run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from benchmarks.evidence.budgets import stepped_cell, trained_cell
from benchmarks.evidence.common import Record, read_records
from benchmarks.evidence.runs import RunSpec
from benchmarks.evidence.search import Cell


def with_rows_seed(spec: RunSpec, rows_seed: int) -> RunSpec:
    """``spec`` (a searched ``auto`` variant) searching the rows of ``search_seed=rows_seed``, under a variant name
    that says so (``auto-lr-searchseed3``), so its record has its own id.

    Raises:
        ValueError: If ``spec`` has no ``search_seed`` setting (nothing searched), or ``rows_seed`` is negative.
    """
    settings = dict(spec.settings)
    if "search_seed" not in settings or rows_seed < 0:
        raise ValueError(f"with_rows_seed needs a searched spec and a seed >= 0, got {spec.run_id!r}, {rows_seed!r}")
    settings["search_seed"] = rows_seed
    return replace(spec, variant=f"{spec.variant}-searchseed{rows_seed}", settings=tuple(settings.items()))


def rows_seed_of(record: Record) -> int:
    """The ``search_seed`` a record's search drew its rows with."""
    return int(dict(record["spec"]["settings"])["search_seed"])


def base_variant(record: Record) -> str:
    """The ``auto`` variant a ``rows`` record searched again (``auto-lr`` for ``auto-lr-searchseed3``)."""
    return str(record["spec"]["variant"]).rsplit("-searchseed", 1)[0]


def _label(cell: Cell, with_ratio: bool) -> str:
    return f"{cell[0]:.3g}, λ {cell[1]:g}" if with_ratio else f"{cell[0]:.3g}"


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def rows_table(records: list[Record], reference: Record | None = None) -> list[str]:
    """One run seed's table: per ``search_seed``, the best trial's cell and score against the constant
    prediction's, and the cell the run trains with as searched (``keep``) and under ``step_down``, the package's
    default. Cells show η_A alone where every search kept λ fixed.

    Args:
        records: Search records of the ``rows`` phase for one run seed, any order.
        reference: The ``auto`` phase's record of the variant they search again (shown first), if there is one.
    """
    every = ([reference] if reference else []) + sorted(records, key=rows_seed_of)
    with_ratio = len({r["search"]["requested"]["ratio"] for r in every}) > 1 or any(
        r["search"]["requested"]["ratio"] == "auto" for r in every
    )
    lines = ["| search_seed | best trial (score) | constant prediction | trains (`keep`) | trains (`step_down`) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for record in every:
        search = record["search"]
        best, prior = search["best_cell"], search.get("constant_score")
        fell = " (fell back)" if search.get("fell_back") else ""
        seed = f"{rows_seed_of(record)}{' (`auto` phase)' if record is reference else ''}"
        lines.append(f"| {seed} | {_label((best['lr'], best['ratio']), with_ratio)} ({_score(best['score'])}) | "
                     f"{_score(prior)} | {_label(trained_cell(record), with_ratio)}{fell} | "
                     f"{_label(stepped_cell(record), with_ratio)} |")  # fmt: skip
    return lines


def choice_counts(records: list[Record], cell_of: Callable[[Record], Cell] = trained_cell) -> str:
    """How often each cell was trained over ``records``, most often first, with how many of those fell back:
    e.g. ``1e-3 ×6 (5 by falling back), 2.15e-3 ×2`` (η_A alone where λ is the same in all).

    Args:
        records: Search records.
        cell_of: The cell a record trains with (:func:`~benchmarks.evidence.budgets.trained_cell`, or
            :func:`~benchmarks.evidence.budgets.stepped_cell` for ``search_edge: step_down``).
    """
    cells = [cell_of(r) for r in records]
    counts = Counter(cells)
    fell = Counter(c for c, r in zip(cells, records, strict=True) if r["search"].get("fell_back"))
    with_ratio = len({c[1] for c in cells}) > 1
    order = sorted(counts, key=lambda c: (-counts[c], -c[0], -c[1]))
    return ", ".join(f"{_label(c, with_ratio)} ×{counts[c]}" + (f" ({fell[c]} by falling back)" if fell[c] else "")
                     for c in order)  # fmt: skip


def write_rows_report(out: Path, tasks: list[str]) -> Path:
    """``rows/report.md`` from the records of the ``rows`` phase and, per run seed, the ``auto`` phase's record of
    the variant they search again; a task without ``rows`` records is left out."""
    intro = ("Generated from the records by `python -m benchmarks.evidence --phases rows`. One run seed's "
             "search (`search_edge: keep`) made again with other rows for its trials and its scoring "
             "(`search_seed`), without training; each table's first row is the `auto` phase's record.")  # fmt: skip
    lines = ["# `auto` against the rows its trials see", "", intro, ""]
    for task in tasks:
        found = read_records(out / "rows" / task)
        groups: dict[tuple[str, str, int], list[Record]] = {}
        for record in found:
            groups.setdefault((record["spec"]["init"], base_variant(record), record["spec"]["seed"]), []).append(record)
        auto = read_records(out / "runs" / task / "auto") if groups else []
        for (init, variant, seed), drawn in sorted(groups.items()):
            reference = next((r for r in auto if r["spec"].get("variant") == variant and r["spec"]["seed"] == seed
                              and r["spec"]["init"] == init), None)  # fmt: skip
            lines += [f"## {task}: `{variant}`, seed {seed}, {init} init", "", *rows_table(drawn, reference), ""]
            seeds = ", ".join(str(rows_seed_of(r)) for r in sorted(drawn, key=rows_seed_of))
            counts = f"trains {choice_counts(drawn)}; under `step_down` {choice_counts(drawn, stepped_cell)}"
            lines += [f"- search_seed {seeds}: {counts}", ""]
    path = out / "rows" / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
