"""Stop a run on a scheduler's signal at an optimizer-step boundary, with its state saved: preemption.

:class:`~lit_loraplus.callbacks.AdapterCheckpoint` uses :class:`PreemptionSignals` to catch
``SIGTERM`` (what Kubernetes, SLURM and cloud spot instances send before killing a job),
``SIGUSR1`` (SLURM's ``--signal`` warning) and ``SIGINT`` (Ctrl-C). A signal only raises a flag;
the run stops at the next optimizer-step boundary (after gradient accumulation completes), on
every DDP rank at the same step, writes ``last.ckpt`` and exits with :data:`PREEMPTED_EXIT_CODE`.
A second Ctrl-C aborts at once, without saving, as Lightning does.

Exit codes of ``lit-loraplus fit``: 0 finished; :data:`PREEMPTED_EXIT_CODE` (75, ``EX_TEMPFAIL``:
"try again") stopped by a signal with ``last.ckpt`` at the step it stopped — relaunch the same
command with ``--ckpt_path auto`` or ``last`` to continue; 2 the configuration was refused before
anything ran; 1 any other failure.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

PREEMPTED_EXIT_CODE = 75  # sysexits.h EX_TEMPFAIL: a temporary failure, the caller is invited to retry
DEFAULT_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")


class Preempted(SystemExit):
    """Raised on every rank once the state is saved: the run stops with exit code :data:`PREEMPTED_EXIT_CODE`."""

    def __init__(self, signal_name: str, step: int) -> None:
        super().__init__(PREEMPTED_EXIT_CODE)
        self.signal_name, self.step = signal_name, step

    def __str__(self) -> str:
        return f"stopped by {self.signal_name} at step {self.step}; last.ckpt holds that step"


def signal_problems(names: Sequence[str]) -> list[str]:
    """What is wrong with a list of signal names (empty if nothing), for a settings error."""
    known = {"SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGHUP"}
    if bad := [n for n in names if n not in known or not hasattr(signal, n)]:
        return [f"`preempt_signals` holds {bad}: use names from {sorted(known)} (an empty list turns preemption off)."]
    return []


class PreemptionSignals:
    """Catch stop signals during training and remember the first one (a flag only; nothing is raised from it).

    Args:
        names: Signal names to catch, e.g. ``("SIGTERM", "SIGUSR1", "SIGINT")``.
    """

    def __init__(self, names: Sequence[str] = DEFAULT_SIGNALS) -> None:
        self.names = tuple(names)
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Replace the handlers of the signals (Lightning's SIGTERM handler included) until :meth:`uninstall`.

        Signal handlers can only be set from the main thread; elsewhere nothing is installed.
        """
        self.received = None
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.names:
            number = getattr(signal, name)
            self._previous.setdefault(number, signal.getsignal(number))
            signal.signal(number, self._handle)

    def uninstall(self) -> None:
        """Put back the previous handlers where ours is still installed (Lightning restores its own at teardown)."""
        for number, handler in self._previous.items():
            if signal.getsignal(number) == self._handle:
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if name == "SIGINT" and self.received == "SIGINT":  # a second Ctrl-C: abort now, as without us
            signal.signal(number, signal.default_int_handler)
            raise KeyboardInterrupt
        if self.received is None:
            self.received = name
            hint = " (Ctrl-C again to abort without saving)" if name == "SIGINT" else ""
            print(f"lit-loraplus: {name} received: stopping at the end of this optimizer step{hint}", file=sys.stderr)
