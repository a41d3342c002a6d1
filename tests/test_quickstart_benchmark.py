"""The quickstart-under-auto benchmark (`python -m benchmarks.evidence.quickstart`): its report, its options and a
smoke run of the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.evidence.quickstart import main, report


def _record(variant: str, seed: int, search: dict | None) -> dict:
    evals = [{"step": 100, "accuracy": 0.7, "loss": 0.7}, {"step": 200, "accuracy": 0.78, "loss": 0.55}]
    return {"variant": variant, "seed": seed, "overrides": [], "evals": evals, "search": search}


def test_report_names_each_runs_choice_and_accuracies() -> None:
    """Per variant, one row a seed: a stepped-down choice names the best cell it came from, a fall-back says so,
    a run without a search is ``fixed``; accuracy at each validation, then the last loss."""
    stepped = {"chosen": {"lr": 0.00215, "ratio": 4.0}, "best_cell": {"lr": 0.00464, "ratio": 4.0},
               "stepped_down": True}  # fmt: skip
    fell = {"chosen": {"lr": 0.001, "ratio": 4.0}, "best_cell": {"lr": 0.00464, "ratio": 4.0}, "fell_back": True}
    text = report([_record("lr-auto", 1, fell), _record("lr-auto", 0, stepped), _record("defaults", 0, None)])
    assert "| 0 | η_A 0.00215, λ 4 (stepped down from η_A 0.00464, λ 4) | 0.700 | 0.780 | 0.550 |" in text
    assert "| 1 | η_A 0.001, λ 4 (fell back) |" in text
    assert text.index("| 0 | η_A 0.00215") < text.index("| 1 | η_A 0.001")  # sorted by seed
    assert "## defaults: `(the config as it is)`" in text and "| 0 | fixed |" in text
    assert "## ratio-auto" not in text  # no runs, no section


def test_an_unknown_variant_is_refused_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--variants", "lr-auto,lr-autoo"])
    assert "--variants lr-autoo: not a variant" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.subprocess
def test_smoke_run_records_the_search_and_is_not_repeated(tmp_path: Path, minilm_path: Path) -> None:
    """A 20-step `lr: auto` quickstart run writes its record (two validations, the search it made) and the report;
    a second call finds the record and trains nothing."""
    argv = ["--out", str(tmp_path), "--smoke", "--seeds", "0", "--variants", "lr-auto"]
    main(argv)
    path = tmp_path / "runs" / "lr-auto-seed0.json"
    record = json.loads(path.read_text())
    assert [e["step"] for e in record["evals"]] == [10, 20]
    assert record["search"]["requested"]["lr"] == "auto" and isinstance(record["search"]["chosen"]["lr"], float)
    assert "--model.lr=auto" in record["overrides"] and "--seed_everything=0" in record["overrides"]
    assert "## lr-auto: `--model.lr=auto`" in (tmp_path / "report.md").read_text()
    written = path.stat().st_mtime_ns
    main(argv)
    assert path.stat().st_mtime_ns == written


def test_the_ratio_guide_quotes_the_committed_quickstart_records() -> None:
    """The choosing-ratio guide's quickstart accuracies (`lr: auto` stepped down, and with `search_edge: keep`)
    are the final validation accuracies of the committed records, seeds 0-4 in order."""
    repo = Path(__file__).resolve().parents[1]
    runs = repo / "benchmarks/results/quickstart_auto/runs"
    guide = " ".join((repo / "docs/guides/choosing-ratio.md").read_text().split())
    for variant in ("lr-auto", "lr-auto-keep"):
        final = [json.loads((runs / f"{variant}-seed{s}.json").read_text())["evals"][-1]["accuracy"] for s in range(5)]
        quoted = ", ".join(f"{a:.3f}" for a in final[:-1]) + f" and {final[-1]:.3f}"
        assert quoted in guide, (variant, quoted)


def test_the_guides_ratio_auto_quickstart_numbers_are_the_records() -> None:
    """The choosing-ratio guide's ``ratio: auto`` quickstart bullet quotes the committed records: each seed's
    choice, its final accuracy against the defaults' on the same seed, and the fall-back run that equals the
    defaults' run at every validation."""
    repo = Path(__file__).resolve().parents[1]
    runs = repo / "benchmarks/results/quickstart_auto/runs"
    guide = " ".join((repo / "docs/guides/choosing-ratio.md").read_text().split())

    def record(variant: str, seed: int) -> dict:
        return json.loads((runs / f"{variant}-seed{seed}.json").read_text())

    auto, defaults = [record("ratio-auto", s) for s in range(5)], [record("defaults", s) for s in range(5)]
    assert [r["search"]["chosen"]["ratio"] for r in auto] == [16.0, 4.0, 16.0, 4.0, 16.0]
    for seed in (1, 3):
        assert auto[seed]["search"]["fell_back"] and auto[seed]["evals"] == defaults[seed]["evals"]
    final = [[r["evals"][-1]["accuracy"] for r in rs] for rs in (auto, defaults)]
    assert all(a <= d for a, d in zip(*final, strict=True))  # "as well or better on every seed"
    won, lost = (", ".join(f"{final[k][s]:.3f}" for s in (0, 2)) + f" and {final[k][4]:.3f}" for k in (0, 1))
    assert f"ended at {won}, against the defaults' (λ = 4) {lost};" in guide
    fell_back = [" / ".join(f"{e['accuracy']:.3f}" for e in auto[seed]["evals"]) for seed in (1, 3)]
    assert f"{fell_back[0]} and {fell_back[1]})" in guide
