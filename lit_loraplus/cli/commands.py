"""The commands of ``lit-loraplus`` that are not Trainer methods: ``export`` and ``find-ratio``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lit_loraplus.cli.lightning_cli import LoraPlusCLI
from lit_loraplus.tools.export import export_checkpoint
from lit_loraplus.tools.finder import DEFAULT_RATIOS, find_ratio, validate_finder_settings


def export_main(args: list[str]) -> None:
    """``lit-loraplus export``: a LoraPlusModule checkpoint to a PEFT adapter (or a merged model).

    Args:
        args: ``--ckpt_path PATH --output_dir DIR [--merge]``.
    """
    parser = argparse.ArgumentParser(prog="lit-loraplus export", description=export_main.__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True, help="Checkpoint written while training a LoraPlusModule.")
    parser.add_argument("--output_dir", required=True, help="Folder for the PEFT adapter (created).")
    parser.add_argument("--merge", action="store_true", help="Write the merged full model instead of the adapter.")
    options = parser.parse_args(args)
    out = export_checkpoint(options.ckpt_path, options.output_dir, merge=options.merge)
    print(f"lit-loraplus: exported {'merged model' if options.merge else 'adapter'} to {out}")


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, e.g. 1,4,16") from None


def find_ratio_main(args: list[str]) -> None:
    """``lit-loraplus find-ratio``: run :func:`find_ratio` on the model and data of a ``fit`` configuration.

    Args:
        args: The finder's flags (``--ratios``, ``--lrs``, ``--steps``, ``--smoothing``,
            ``--feature_learning``, ``--out``); every other argument (``--config``, ``--model.*``,
            ``--data.*``, ``--trainer.*``) is read as by ``lit-loraplus fit``.
    """
    parser = argparse.ArgumentParser(
        prog="lit-loraplus find-ratio",
        allow_abbrev=False,
        description="Short trial runs over a grid of λ (and η_A) from the same initial state; suggests λ and η_A.",
        epilog="Other arguments (--config, --model.*, --data.*, --trainer.*) are those of `lit-loraplus fit`; "
        "from the trainer settings only accelerator, precision, accumulate_grad_batches and gradient clipping apply.",
    )
    parser.add_argument(
        "--ratios", type=_float_list, default=list(DEFAULT_RATIOS), help="λ values (default: %(default)s)"
    )
    parser.add_argument("--lrs", type=_float_list, default=None, help="η_A values (default: the config's model.lr)")
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps per trial (default: %(default)s)")
    parser.add_argument("--smoothing", type=float, default=0.9, help="β of the loss EMA (default: %(default)s)")
    parser.add_argument("--feature_learning", action="store_true", help="also report the δ²/δ¹ balance per trial")
    parser.add_argument("--out", default="runs/ratio_finder", help="output folder (default: %(default)s)")
    options, rest = parser.parse_known_args(args)

    try:
        validate_finder_settings(options.ratios, options.lrs, options.steps, options.smoothing, 4.0)
        cli = LoraPlusCLI(args=rest, run=False)
    except ValueError as err:  # includes the CLI's ConfigError
        sys.exit(f"lit-loraplus find-ratio: error: {err}")
    trainer = cli.trainer
    settings = {
        "accelerator": trainer.accelerator,
        "precision": trainer.precision,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
        "gradient_clip_val": trainer.gradient_clip_val,
        "gradient_clip_algorithm": trainer.gradient_clip_algorithm,
    }
    result = find_ratio(
        cli.model,
        cli.datamodule,
        ratios=options.ratios,
        lrs=options.lrs,
        steps=options.steps,
        smoothing=options.smoothing,
        feature_learning=options.feature_learning,
        trainer_kwargs=settings,
    )
    print(result.table())
    paths = result.save(options.out)
    try:
        result.plot(save_to=Path(options.out) / "ratio_finder.png")
        print(f"lit-loraplus find-ratio: plot in {Path(options.out) / 'ratio_finder.png'}")
    except ImportError as err:
        print(f"lit-loraplus find-ratio: no plot ({err})")
    if "yaml" not in paths:
        sys.exit(f"lit-loraplus find-ratio: every trial diverged (see {paths['json']}); try smaller λ or η_A.")
    print(
        f"lit-loraplus find-ratio: suggested λ = {result.suggested_ratio:g}, η_A = {result.suggested_lr:g}; "
        f"use them with `lit-loraplus fit --config <your config> --config {paths['yaml']}`"
    )
