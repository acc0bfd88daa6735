"""Reward functions in TRL's signature: GenEval's rule engine over pluggable detectors.

The photograph detector (``"mask2former"``, :mod:`.photo_detector`) is imported when first built.
"""

from .detectors import DETECTORS, get_detector, register_detector
from .geneval import GenEvalReward
from .geneval_rules import (
    GENEVAL_CLASSES, GENEVAL_COLORS, PARTIAL_CREDIT, Detection, Verdict, colors_needed, evaluate, geneval_order,
    relation, summarize, validate_metadata,
)

__all__ = ["GenEvalReward", "Detection", "Verdict", "evaluate", "relation", "summarize", "validate_metadata",
           "colors_needed", "geneval_order", "PARTIAL_CREDIT", "GENEVAL_CLASSES", "GENEVAL_COLORS",
           "DETECTORS", "get_detector", "register_detector"]
