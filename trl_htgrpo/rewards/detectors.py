"""The detector registry of the GenEval rule engine.

A detector is a callable ``image (PIL) -> list[Detection]`` (see :mod:`.geneval_rules`), optionally with

* ``classes`` and ``colors``: the metadata it can check;
* ``threshold`` / ``counting_threshold``: its score thresholds (GenEval's 0.3 / 0.9 for Mask2Former);
* ``detect(images) -> list[list[Detection]]``: batched detection;
* ``classify_colors(images, detections) -> list[list[str]]``: colours on demand, for detectors whose
  detections come with ``color=None`` (the rule engine asks only for those :func:`colors_needed` names).

Each backbone names the detector for its images (``Backbone.detector``). Built in: ``"mask2former"``
(photographs: :class:`~.photo_detector.Mask2FormerDetector`, imported on first use). Plug-ins register
theirs with :func:`register_detector` (the shapes world registers ``"shapes"``).
"""

from __future__ import annotations

from typing import Any, Callable

from ..plugins import load_plugins

#: name -> factory(**options) returning a detector
DETECTORS: dict[str, Callable[..., Any]] = {}


def register_detector(name: str, factory: Callable[..., Any]) -> None:
    """Make ``GenEvalReward(detector=name)`` build its detector with ``factory(**options)``."""
    DETECTORS[name] = factory


def _mask2former(**options: Any):
    from .photo_detector import Mask2FormerDetector  # transformers' Mask2Former is imported only when used

    return Mask2FormerDetector(**options)


register_detector("mask2former", _mask2former)


def get_detector(name: str, **options: Any):
    """A new detector registered as ``name`` (plug-ins are loaded if the name is unknown); ``options`` go to its factory."""
    if name not in DETECTORS:
        load_plugins()
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; registered detectors: {sorted(DETECTORS)} "
                         "(register one with trl_htgrpo.rewards.register_detector)")
    return DETECTORS[name](**options)
