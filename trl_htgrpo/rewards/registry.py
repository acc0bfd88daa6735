"""The reward registry: short names for the reward functions users of the field train on.

``get_reward("hpsv2")`` builds a reward function; ``--reward_funcs geneval clipscore hpsv2`` on the command line
names them. Scorers load their weights on first call, so building one is free. Plug-ins add theirs with
:func:`register_reward` (unknown names load the plug-ins first, as the other registries do).

=======================  ===================================================================================
name                     reward
=======================  ===================================================================================
geneval, geneval_strict  :class:`~.geneval.GenEvalReward` (partial credit / strict GenEval correctness)
compressibility          :class:`~.compressibility.JPEGCompressibility` (DDPO's; ``incompressibility``: negated)
clipscore                :class:`~.clip_rewards.CLIPScoreReward` (100 max(cos, 0), CLIP ViT-L/14)
pickscore                :class:`~.clip_rewards.PickScoreReward`
hpsv2                    :class:`~.clip_rewards.HPSv2Reward` (HPS v2.1)
aesthetic                :class:`~.clip_rewards.AestheticReward` (LAION aesthetic predictor)
imagereward              :class:`~.image_reward.ImageReward`
vlm_judge                :class:`~.vlm_judge.VLMJudgeReward` (UnifiedReward-style score / 5)
remote                   :class:`~.remote.RemoteReward` on ``url=...`` (any Flow-GRPO-style server)
geneval_remote           GenEval server on 127.0.0.1:18085 (Flow-GRPO, MaskGRPO)
hpsv3_remote             HPSv3 server on 127.0.0.1:18087, score / 5 (MaskGRPO)
unifiedreward_remote     UnifiedReward server on 127.0.0.1:18088, score / 5 (MaskGRPO)
=======================  ===================================================================================
"""

from __future__ import annotations

from typing import Any, Callable

from ..plugins import load_plugins

#: name -> factory(**options) returning a reward function
REWARDS: dict[str, Callable[..., Any]] = {}


def register_reward(name: str, factory: Callable[..., Any]) -> None:
    """Make ``get_reward(name, **options)`` return ``factory(**options)``."""
    REWARDS[name] = factory


def get_reward(name: str, **options: Any):
    """A new reward function registered as ``name``, built with ``options``."""
    if name not in REWARDS:
        load_plugins()
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; registered rewards: {sorted(REWARDS)} "
                         "(register one with trl_htgrpo.rewards.register_reward)")
    return REWARDS[name](**options)


def _lazy(module: str, attr: str, **defaults: Any) -> Callable[..., Any]:
    """A factory importing ``module.attr`` on use (scorer modules pull in transformers model classes)."""

    def factory(**options: Any):
        import importlib

        cls = getattr(importlib.import_module(module, __package__), attr)
        return cls(**{**defaults, **options})

    factory.__qualname__ = f"{attr}({', '.join(f'{k}={v!r}' for k, v in defaults.items())})"
    return factory


def _remote(url: str, **defaults: Any) -> Callable[..., Any]:
    def factory(**options: Any):
        from .remote import RemoteReward

        options = {**defaults, **options}
        return RemoteReward(options.pop("url", url), **options)

    return factory


def _geneval_remote(**options: Any):
    from .remote import RemoteReward

    return RemoteReward.geneval(**options)


register_reward("geneval", _lazy(".geneval", "GenEvalReward"))
register_reward("compressibility", _lazy(".compressibility", "JPEGCompressibility"))
register_reward("incompressibility", _lazy(".compressibility", "JPEGCompressibility", sign=-1.0))
register_reward("geneval_strict", _lazy(".geneval", "GenEvalReward", strict=True))
register_reward("clipscore", _lazy(".clip_rewards", "CLIPScoreReward"))
register_reward("pickscore", _lazy(".clip_rewards", "PickScoreReward"))
register_reward("hpsv2", _lazy(".clip_rewards", "HPSv2Reward"))
register_reward("aesthetic", _lazy(".clip_rewards", "AestheticReward"))
register_reward("imagereward", _lazy(".image_reward", "ImageReward"))
register_reward("vlm_judge", _lazy(".vlm_judge", "VLMJudgeReward"))
register_reward("remote", _lazy(".remote", "RemoteReward"))
register_reward("geneval_remote", _geneval_remote)
register_reward("hpsv3_remote", _remote("http://127.0.0.1:18087", scale=0.2, name="hpsv3_remote"))
register_reward("unifiedreward_remote", _remote("http://127.0.0.1:18088", scale=0.2, name="unifiedreward_remote"))
