"""Reward functions in TRL's signature: GenEval's rule engine over pluggable detectors."""

from .detectors import DETECTORS, get_detector, register_detector
from .geneval import GenEvalReward
from .geneval_rules import Detection, Verdict, evaluate, relation, summarize, validate_metadata
from .registry import REWARDS, get_reward, register_reward
from .remote import RemoteReward, RemoteRewardError
from .scoring import RewardModelLoadError

__all__ = ["GenEvalReward", "Detection", "Verdict", "evaluate", "relation", "summarize", "validate_metadata",
           "DETECTORS", "get_detector", "register_detector", "REWARDS", "get_reward", "register_reward",
           "RemoteReward", "RemoteRewardError", "RewardModelLoadError"]
