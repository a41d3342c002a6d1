"""The ratio finder: short trial runs over (λ, η_A) from one restored state (see :func:`find_ratio`)."""

from lit_loraplus.tools.finder.result import RatioFinderResult, RatioTrial
from lit_loraplus.tools.finder.scoring import DEFAULT_RATIOS, smooth_losses, trial_score, validate_finder_settings
from lit_loraplus.tools.finder.search import find_ratio

__all__ = [
    "DEFAULT_RATIOS",
    "RatioFinderResult",
    "RatioTrial",
    "find_ratio",
    "smooth_losses",
    "trial_score",
    "validate_finder_settings",
]
