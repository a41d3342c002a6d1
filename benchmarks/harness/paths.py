"""Where the benchmarks read and write: the repository, the offline data, the committed results."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The offline GLUE/MMLU files (never copied into the repository); the tests read the same setting.
DATA = Path(os.environ.get("LIT_LORAPLUS_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"
