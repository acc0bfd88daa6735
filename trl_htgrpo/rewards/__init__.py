"""Reward functions in TRL's signature: GenEval's rule engine over pluggable detectors."""

from .geneval import GenEvalReward
from .geneval_rules import Detection, Verdict, evaluate, relation, summarize, validate_metadata
from .shapes_detector import ShapesDetector

__all__ = ["GenEvalReward", "Detection", "Verdict", "evaluate", "relation", "summarize", "validate_metadata", "ShapesDetector"]
