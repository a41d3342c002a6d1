"""The resumable runner: pilot, selection (successive halving with prefix resume) and seed runs of each task.

Every finished run writes its record atomically; a rerun skips it (after checking that it was made with
the same recipe), so the benchmark can span several sittings. Every decision (promotions, extensions, the
chosen cells) is replayed from the records by :func:`benchmarks.evidence.search.search_arm`.

Several processes may work on the same task and results folder at once (one per core): a process claims a
run before training it (a ``<record>.claim`` file created exclusively, holding its host and pid), the others
skip a run claimed by a live process and take the next one, and a phase waits for claimed runs it depends on.
A claim left by a process that died (same host, pid gone) is taken over.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from benchmarks.evidence.auto import VARIANTS, largest_score_change, search_differences, variant_spec
from benchmarks.evidence.budgets import outcomes, scaled_budget, stepped_cell, trained_cell
from benchmarks.evidence.common import Record, as_float, read_records
from benchmarks.evidence.rows import with_rows_seed
from benchmarks.evidence.runs import (
    SELECTION_SEED,
    Kind,
    Paths,
    RunSpec,
    prepare_inputs,
    search_only,
    train,
    untrained,
)
from benchmarks.evidence.search import ArmSearch, Cell, search_arm
from benchmarks.evidence.tasks import Protocol, Recipe
from benchmarks.harness.results import write_json_atomic


class BudgetSpent(Exception):
    """``--max-hours`` has passed: no new run starts (rerun to continue)."""


POLL_S = 30.0  # how often a phase that waits for another process's runs looks again


def _claim_path(record: Path) -> Path:
    return record.with_name(record.name + ".claim")


def claim(record: Path) -> bool:
    """Claim the run whose record is ``record`` for this process: True if it is now ours.

    False while another live process on this host (or any process on another host) holds the claim; a claim
    whose process on this host is gone is taken over.
    """
    path, mine = _claim_path(record), f"{socket.gethostname()} {os.getpid()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            with open(path, "x") as f:
                f.write(mine)
            return True
        except FileExistsError:
            host, _, pid = path.read_text().partition(" ")
            if host != socket.gethostname() or not pid.isdigit() or _alive(int(pid)):
                return False
            path.unlink(missing_ok=True)  # its process died: take it over
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release(record: Path) -> None:
    """Drop this process's claim on ``record``'s run."""
    _claim_path(record).unlink(missing_ok=True)


def _json(value: object) -> object:
    """``value`` as it reads back from a JSON file (tuples become lists)."""
    return json.loads(json.dumps(value))


def _but_seeds(protocol: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in protocol.items() if k != "seeds"}


def final_loss(record: Record) -> float:
    """The last held-out loss of a run (NaN if it diverged)."""
    return as_float(record["final"].get("loss"))


class Runner:
    """Runs the phases of the selected tasks into one results folder.

    Args:
        paths: Inputs and outputs.
        recipes: Settings per task, in priority order.
        protocol: Grid, seeds, extension cap.
        inits: LoRA initialisations to run (``standard``; ``loraplus`` is the paper's Init[2]).
        max_hours: Start no run after this many hours (None: no limit).
        variants: The ``auto`` phase's variants to run (default: all of :data:`~benchmarks.evidence.auto.VARIANTS`).
    """

    def __init__(
        self,
        paths: Paths,
        recipes: dict[str, Recipe],
        protocol: Protocol,
        inits: list[str],
        max_hours: float | None,
        variants: tuple[str, ...] = VARIANTS,
    ) -> None:
        self.paths, self.recipes, self.protocol, self.inits, self.variants = paths, recipes, protocol, inits, variants
        self.deadline = time.monotonic() + max_hours * 3600 if max_hours else math.inf

    def check_protocol(self) -> None:
        """Write ``protocol.json`` on the first run; refuse to mix results of another protocol into the folder.

        More seeds extend a protocol rather than change it (seeds are always 1..n): a command with more
        seeds than the folder's record is accepted and becomes the record; one with fewer runs on a prefix.

        Raises:
            SystemExit: If the folder holds results of a protocol that differs in anything but its seeds.
        """
        path, wanted = self.paths.out / "protocol.json", _json(asdict(self.protocol))
        stored = json.loads(path.read_text()) if path.exists() else None
        if stored is not None and _but_seeds(stored) != _but_seeds(wanted):
            raise SystemExit(
                f"{path} records another protocol ({path.read_text().strip()}) than this command's ({wanted}): "
                "use another `--out`, or the options that made it (`--seeds` may differ)."
            )
        if stored is None or len(wanted["seeds"]) > len(stored["seeds"]):
            write_json_atomic(path, wanted)

    def run(self, spec: RunSpec, prefix: Record | None = None) -> Record | None:
        """The record of ``spec``: read if it exists (same recipe only), else trained and written; None if another
        process has claimed the run (it is training it now).

        Before training, the task's inputs are made ready (:func:`~benchmarks.evidence.runs.prepare_inputs`: a
        causal task's instruction files and converted model, built once), so the first run's clock leaves them out.

        Raises:
            BudgetSpent: If the run is missing and the deadline has passed.
            SystemExit: If the existing record was made with another recipe, or (an auto variant) other settings.
        """
        path, recipe = self.paths.record(spec), self.recipes[spec.task]
        if path.exists():
            record = json.loads(path.read_text())
            if not same_recipe(record["recipe"], recipe):
                raise SystemExit(
                    f"{path} was made with another recipe ({record['recipe']}) than now ({asdict(recipe)}): "
                    "use another `--out` or restore the recipe."
                )
            if spec.kind == "auto" and record["spec"] != _json(asdict(spec)):
                # An auto variant's id does not name its settings (e.g. the package defaults it ran with).
                raise SystemExit(
                    f"{path} ran with {record['spec']}, but this variant is now {_json(asdict(spec))} (the package "
                    "defaults or the search settings changed): move the record out of `runs/` to rerun it."
                )
            return record
        if time.monotonic() > self.deadline:
            raise BudgetSpent(f"--max-hours reached before {spec.kind} {spec.run_id}: rerun to continue")
        if not claim(path):
            return None
        try:
            if path.exists():  # finished by another process since we looked
                return self.run(spec, prefix)
            prepare_inputs(recipe, self.paths)
            print(f"start {spec.kind} {spec.run_id}", flush=True)
            record = train(spec, recipe, self.paths, prefix=prefix)
            write_json_atomic(path, record)
        finally:
            release(path)
        final = {k: round(v, 4) for k, v in record["final"].items() if k != "step"}
        timing = record["timing"]
        print(f"done  {spec.kind} {spec.run_id}: step {record['final'].get('step')} {final}; "
              f"{timing['wall_s']:.0f} s, {timing['step_cpu_s'] or math.nan:.3f} CPU s/step", flush=True)  # fmt: skip
        return record

    def wait(self, spec: RunSpec, prefix: Record | None = None) -> Record:
        """The record of ``spec`` (:meth:`run`), waiting while another process trains it."""
        while (record := self.run(spec, prefix)) is None:
            time.sleep(POLL_S)
        return record

    def run_all(self, specs: list[RunSpec]) -> None:
        """Every run of ``specs``: first those no other process holds, then (waiting) the rest."""
        for spec in specs:
            self.run(spec)
        for spec in specs:
            self.wait(spec)

    def pilot_spec(self, task: str, init: str) -> RunSpec:
        """The pilot: a mid-grid LoRA+ cell, full length, seed 0, scored on the selection split."""
        lrs, recipe = sorted(self.protocol.lrs), self.recipes[task]
        lr = recipe.pilot_lr or lrs[len(lrs) // 2]
        return RunSpec(task, init, lr, recipe.pilot_ratio or self.protocol.pilot_ratio, SELECTION_SEED, "pilot")

    def pilot(self, task: str) -> None:
        """Run each init's pilot of ``task`` and say whether it learns."""
        recipe = self.recipes[task]
        for init in self.inits:
            record = self.wait(self.pilot_spec(task, init))
            value = record["final"].get(recipe.metric)
            print(f"pilot {task}/{init}: {recipe.metric} {value} (learns at >= {recipe.learn_threshold}), "
                  f"{record['timing']['step_cpu_s']} CPU s/step", flush=True)  # fmt: skip

    def learns(self, task: str, init: str) -> bool:
        """Whether the pilot of ``task`` finished and reached the recipe's learning threshold."""
        path = self.paths.record(self.pilot_spec(task, init))
        if not path.exists():
            print(f"{task}/{init}: no pilot record yet; run the pilot phase first", flush=True)
            return False
        recipe = self.recipes[task]
        value = as_float(json.loads(path.read_text())["final"].get(recipe.metric))
        if not value >= recipe.learn_threshold:
            print(f"{task}/{init}: the pilot did not learn ({recipe.metric} {value} < {recipe.learn_threshold}): "
                  "change the recipe (N, learning rates) before its grid", flush=True)  # fmt: skip
        return value >= recipe.learn_threshold

    def losses(self, task: str, init: str, kind: Kind) -> dict[Cell, float]:
        """Final selection loss per cell of the ``kind`` records (``rung`` or ``full``) of one task and init."""
        records = read_records(self.paths.out / "runs" / task / kind)
        return {(r["spec"]["lr"], r["spec"]["ratio"]): final_loss(r) for r in records if r["spec"]["init"] == init}

    def search(self, task: str, init: str, arm: str) -> ArmSearch:
        """The state of one arm's search, replayed from the records."""
        recipe, protocol = self.recipes[task], self.protocol
        return search_arm(
            arm, protocol.arms()[arm], protocol.lrs, self.losses(task, init, "rung"), self.losses(task, init, "full"),
            recipe.promote_fraction, recipe.min_promoted, protocol.max_extensions,
        )  # fmt: skip

    def select(self, task: str) -> None:
        """Successive halving for each arm of ``task`` until each has its choice (or nothing is left to run)."""
        for init in self.inits:
            if not self.learns(task, init):
                continue
            for arm in self.protocol.arms():
                while not (state := self.search(task, init, arm)).complete:
                    if not (state.todo_rung or state.todo_full):
                        print(f"{task}/{init}/{arm}: every promoted cell diverged; no choice", flush=True)
                        break
                    done = [self.run(RunSpec(task, init, lr, ratio, SELECTION_SEED, "rung"))
                            for lr, ratio in state.todo_rung]  # fmt: skip
                    for lr, ratio in state.todo_full:
                        rung = self.wait(RunSpec(task, init, lr, ratio, SELECTION_SEED, "rung"))
                        done.append(self.run(RunSpec(task, init, lr, ratio, SELECTION_SEED, "full"), prefix=rung))
                    if not any(done):  # every pending run is another process's: wait for one to finish
                        time.sleep(POLL_S)
                print(f"{task}/{init}/{arm}: choice {state.choice} from {len(state.rung_loss)} cells "
                      f"({len(state.full_loss)} run to N; η_A grid {state.lrs}{', capped' if state.capped else ''})",
                      flush=True)  # fmt: skip

    def seeds(self, task: str) -> None:
        """The chosen cell of each arm on every fresh seed, LoRA and LoRA+ alternating seed by seed."""
        for init in self.inits:
            states = {arm: self.search(task, init, arm) for arm in self.protocol.arms()}
            if not all(s.complete for s in states.values()):
                print(f"{task}/{init}: selection incomplete, no seed runs yet", flush=True)
                continue
            self.run_all([RunSpec(task, init, *s.choice, seed, "seed") for seed in self.protocol.seeds
                          for s in states.values()])  # fmt: skip

    def auto(self, task: str) -> None:
        """The zero-tuning comparison's variants (:mod:`benchmarks.evidence.auto`) on every fresh seed, seed by seed."""
        for init in self.inits:
            self.run_all([variant_spec(variant, task, init, seed, self.protocol, self.recipes[task])
                          for seed in self.protocol.seeds for variant in self.variants])  # fmt: skip

    def replay(self, task: str, rtol: float = 0.0) -> list[str]:
        """Replay the search of every searched ``auto`` record of ``task`` with the current code, without training
        (:func:`~benchmarks.evidence.runs.search_only`), and print one line per record.

        Args:
            task: The task whose records are replayed.
            rtol: The relative tolerance on each trial score (:func:`~benchmarks.evidence.auto.search_differences`).

        Returns:
            Each difference, prefixed with its run id: a record made with other settings or another recipe than
            its variant's now, or a search whose plan, trials or choice the current code no longer makes.
        """
        found = []
        for init in self.inits:
            for seed in self.protocol.seeds:
                for variant in self.variants:
                    spec = variant_spec(variant, task, init, seed, self.protocol, self.recipes[task])
                    found += [f"{spec.run_id}: {d}" for d in self._replay(spec, rtol)]
        return found

    def budgets(self, task: str, factors: list[float]) -> None:
        """Search each seed of ``auto-lr-rows`` that has a record again with its budget scaled by each factor,
        without training (:mod:`benchmarks.evidence.budgets`); records under ``budgets/<task>/``, resumable like
        the runs."""
        for init in self.inits:
            for seed in self.protocol.seeds:
                base = variant_spec("auto-lr-rows", task, init, seed, self.protocol, self.recipes[task])
                if not self.paths.record(base).exists():
                    continue  # nothing to compare with: run the auto phase's auto-lr-rows first
                for factor in factors:
                    self._search_again(scaled_budget(base, factor), "budgets", "budget search")

    def rows(self, task: str, variant: str, seed: int, rows_seeds: list[int]) -> None:
        """Search ``seed``'s run of the searched ``variant`` again with each of ``rows_seeds`` as its
        ``search_seed``, without training (:mod:`benchmarks.evidence.rows`); records under ``rows/<task>/``,
        resumable like the runs."""
        for init in self.inits:
            base = variant_spec(variant, task, init, seed, self.protocol, self.recipes[task])
            for rows_seed in rows_seeds:
                self._search_again(with_rows_seed(base, rows_seed), "rows", "rows search")

    def untrained(self, task: str) -> None:
        """Score ``task``'s model before its first step (:func:`~benchmarks.evidence.runs.untrained`), once per init:
        ``untrained/<task>-<init>.json``, skipped where it exists."""
        for init in self.inits:
            path = self.paths.out / "untrained" / f"{task}-{init}.json"
            if path.exists() or not claim(path):
                continue
            try:
                record = untrained(task, init, self.recipes[task], self.paths)
                write_json_atomic(path, record)
                print(f"untrained {task}-{init}: {record['scores']}", flush=True)
            finally:
                release(path)

    def _search_again(self, spec: RunSpec, folder: str, label: str) -> None:
        """Make ``spec``'s search record, without training, under ``<folder>/<task>/`` unless it exists or another
        process holds its claim."""
        path = self.paths.out / folder / spec.task / f"{spec.run_id}.json"
        if path.exists() or not claim(path):
            return
        try:
            print(f"start {label} {spec.run_id}", flush=True)
            search = search_only(spec, self.recipes[spec.task], self.paths)
            write_json_atomic(path, {"spec": _json(asdict(spec)), "search": search})
            print(f"done  {label} {spec.run_id}: chose {(search or {}).get('chosen')}", flush=True)
        finally:
            release(path)

    def budget_outcomes(self, task: str) -> None:
        """Train, as an ``outcome`` run (a seed run kept apart from the grid's: scored on dev, the recipe's full
        length, under ``runs/<task>/outcome/``), each cell that no dev-scored run of its seed has trained among:
        the cells the ``budgets`` searches chose, and the cells ``search_edge: step_down`` (the package's default)
        would train instead of the best cell of an ``auto-lr-rows`` or ``budgets`` search made with ``keep``
        (:func:`~benchmarks.evidence.budgets.stepped_cell`). The budget report then gives every choice, kept or
        stepped down, its outcome. A run that chose a cell trains exactly as a run with that cell fixed, so the
        outcome run is the choice's run. The stepped cells of the ``auto-lr-rows`` runs go first."""
        runs = read_records(self.paths.out / "runs" / task)
        done = outcomes(runs)
        base = [r for r in runs if r["spec"].get("variant") == "auto-lr-rows"]
        wanted = [(r["spec"], stepped_cell(r)) for r in base]
        for record in read_records(self.paths.out / "budgets" / task):
            wanted += [(record["spec"], trained_cell(record)), (record["spec"], stepped_cell(record))]
        for spec, cell in wanted:
            if spec["init"] in self.inits and (spec["seed"], *cell) not in done:
                self.run(RunSpec(task, spec["init"], *cell, spec["seed"], "outcome"))
                done[(spec["seed"], *cell)] = math.nan  # claimed or trained: not again for another record

    def _replay(self, spec: RunSpec, rtol: float) -> list[str]:
        """The differences between ``spec``'s record (if it has a search) and its replay; prints the outcome."""
        path, recipe = self.paths.record(spec), self.recipes[spec.task]
        record = json.loads(path.read_text()) if path.exists() else None
        if record is None or not (record.get("search") or {}).get("rungs"):
            return []  # not run yet, or nothing searched (a fixed variant, or one cell)
        if not same_recipe(record["recipe"], recipe) or record["spec"] != _json(asdict(spec)):
            found = [f"made with {record['spec']} under recipe {record['recipe']}, which this variant no longer is"]
            said = "; ".join(found)
        else:
            replayed = search_only(spec, recipe, self.paths)
            found = search_differences(record["search"], replayed, rtol)
            change = 0.0 if found or replayed is None else largest_score_change(record["search"], replayed)
            said = "; ".join(found) or "the same trials, scores and choice" + (
                f" (scores within a relative {change:.1e} of the record's)" if change else ""
            )
        print(f"replay {spec.run_id}: {said}", flush=True)
        return found


def same_recipe(stored: dict[str, Any], recipe: Recipe) -> bool:
    """Whether a record was made with ``recipe``: every field it stored is equal, and every field added to
    ``Recipe`` since then still has its default (so adding a setting does not orphan older records)."""
    current = _json(asdict(recipe))
    defaults = {f.name: f.default for f in fields(Recipe)}
    return all(stored[k] == v if k in stored else v == _json(defaults[k]) for k, v in current.items())
