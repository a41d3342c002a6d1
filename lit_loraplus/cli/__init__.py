"""``lit-loraplus``: LightningCLI for LoraPlusModule, plus ``export`` and ``find-ratio``.

lit-loraplus fit --config configs/trainer.yaml --config configs/quickstart.yaml
lit-loraplus validate --config ... --ckpt_path last
lit-loraplus export --ckpt_path runs/x/checkpoints/last.ckpt --output_dir adapter/ [--merge]
lit-loraplus find-ratio --config configs/quickstart.yaml --ratios 1,4,16 --steps 50
"""

from __future__ import annotations

import sys

from lit_loraplus.cli.commands import export_main, find_ratio_main
from lit_loraplus.cli.console import quiet_known_warnings
from lit_loraplus.cli.lightning_cli import ConfigError, LoggerSaveConfigCallback, LoraPlusCLI

COMMANDS = {"export": export_main, "find-ratio": find_ratio_main}
CONFIG_ERROR_EXIT_CODE = 2  # as argparse for a bad command line: the configuration was refused, nothing ran


def main(args: list[str] | None = None) -> None:
    """Entry point of ``lit-loraplus``: ``export`` and ``find-ratio`` are ours, every other subcommand LightningCLI's.

    Args:
        args: Command-line arguments; None reads ``sys.argv`` (LightningCLI is then given no ``args``, as
            Lightning expects of a command-line run).
    """
    argv = sys.argv[1:] if args is None else args
    with quiet_known_warnings():
        if argv and argv[0] in COMMANDS:
            COMMANDS[argv[0]](argv[1:])
            return
        try:
            LoraPlusCLI() if args is None else LoraPlusCLI(args=args)
        except ConfigError as err:
            print(f"lit-loraplus: error: {err}", file=sys.stderr)
            sys.exit(CONFIG_ERROR_EXIT_CODE)


__all__ = [
    "COMMANDS",
    "ConfigError",
    "LoggerSaveConfigCallback",
    "LoraPlusCLI",
    "export_main",
    "find_ratio_main",
    "main",
]
