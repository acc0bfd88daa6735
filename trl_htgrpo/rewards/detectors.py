"""The detector registry of the GenEval rule engine.

A detector is a callable ``image (PIL) -> list[Detection]`` (see :mod:`.geneval_rules`), optionally with
``classes`` and ``colors`` attributes (the metadata it can check) and a batched ``detect(images)``. Each
backbone names the detector for its images (``Backbone.detector``); plug-ins register theirs with
:func:`register_detector` (the shapes world registers ``"shapes"``).
"""

from __future__ import annotations

from typing import Any, Callable

from ..plugins import load_plugins

#: name -> factory(**options) returning a detector
DETECTORS: dict[str, Callable[..., Any]] = {}


def register_detector(name: str, factory: Callable[..., Any]) -> None:
    """Make ``GenEvalReward(detector=name)`` build its detector with ``factory(**options)``."""
    DETECTORS[name] = factory


def get_detector(name: str, **options: Any):
    """A new detector registered as ``name`` (plug-ins are loaded if the name is unknown)."""
    if name not in DETECTORS:
        load_plugins()
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; registered detectors: {sorted(DETECTORS)} "
                         "(register one with trl_htgrpo.rewards.register_detector)")
    return DETECTORS[name](**options)
