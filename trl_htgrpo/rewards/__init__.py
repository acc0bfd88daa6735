"""Reward functions in TRL's signature: GenEval's rule engine over pluggable detectors, preference scorers, the
reward-server protocol (client and server), and a registry of rewards by name.

The photograph detector (``"mask2former"``, :mod:`.photo_detector`) and the scorers' models load on first use.
"""

from .detectors import DETECTORS, get_detector, register_detector
from .geneval import GenEvalReward
from .geneval_rules import (
    FAILURES, GENEVAL_CLASSES, GENEVAL_COLORS, PARTIAL_CREDIT, Detection, Verdict, colors_needed, evaluate, geneval_order,
    relation, summarize, validate_metadata,
)
from .registry import REWARDS, get_reward, register_reward
from .remote import RemoteReward, RemoteRewardError
from .scoring import RewardModelLoadError

__all__ = ["GenEvalReward", "Detection", "Verdict", "evaluate", "relation", "summarize", "validate_metadata",
           "colors_needed", "geneval_order", "PARTIAL_CREDIT", "FAILURES", "GENEVAL_CLASSES", "GENEVAL_COLORS",
           "DETECTORS", "get_detector", "register_detector", "REWARDS", "get_reward", "register_reward",
           "RemoteReward", "RemoteRewardError", "RewardModelLoadError"]
