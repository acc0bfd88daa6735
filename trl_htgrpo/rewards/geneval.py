"""The GenEval-style reward in TRL's reward-function signature."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from PIL import Image

from .detectors import DETECTORS, get_detector
from .geneval_rules import Detection, evaluate, summarize, validate_metadata

_META_KEYS = ("tag", "include", "exclude")


def _metadata_rows(n: int, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    if "include" not in kwargs:
        raise ValueError(
            "the GenEval reward needs the dataset column 'include' (GenEval metadata: tag, include, exclude); "
            "use a dataset in GenEval's metadata format, e.g. trl_htgrpo.toy.load_prompts('train')"
        )
    rows = []
    for i in range(n):
        rows.append({k: kwargs[k][i] for k in _META_KEYS if k in kwargs and kwargs[k] is not None})
    return rows


class GenEvalReward:
    """GenEval's rules over a detector, as a TRL reward function.

    ``reward(prompts, completions, **columns) -> list[float]``: ``completions`` are PIL images and
    ``columns`` carry the dataset's metadata columns (``tag``, ``include``, ``exclude``), as TRL
    passes them. Returns the partial-credit score in [0, 1] (``strict=False``) or 1.0/0.0 strict
    correctness (``strict=True``).

    Args:
        detector: a registered detector name (:data:`~trl_htgrpo.rewards.detectors.DETECTORS`), a detector
            object, or None: the backbone's detector (``Backbone.detector``), set when :class:`HTGRPOTrainer`
            binds the reward to its backbone (:meth:`bind_backbone`).
        threshold, counting_threshold: score thresholds of kept detections (counting prompts use the second);
            None: the detector's own (``detector.threshold`` / ``detector.counting_threshold``; GenEval's 0.3 / 0.9
            for Mask2Former confidences; the shapes detector scores template IoU and keeps 0.6 / 0.9).

    >>> from trl_htgrpo.toy import Scene, SceneObject, render_scene, decode_codes
    >>> img = decode_codes(render_scene(Scene([SceneObject("square", "red", 2, 2)])))
    >>> GenEvalReward("shapes")(["a photo of a red square"], [img], tag=["colors"],
    ...                         include=[[{"class": "square", "count": 1, "color": "red"}]])
    [1.0]
    """

    def __init__(
        self,
        detector: str | Callable[[Image.Image], Sequence[Detection]] | None = None,
        strict: bool = False,
        threshold: float | None = None,
        counting_threshold: float | None = None,
    ):
        self._detector_name = detector if isinstance(detector, str) or detector is None else None
        self._detector = None if self._detector_name is not None or detector is None else detector
        self.strict = strict
        self._threshold, self._counting_threshold = threshold, counting_threshold
        self.__name__ = "geneval_strict" if strict else "geneval"

    def bind_backbone(self, backbone) -> None:
        """Use the backbone's detector (``backbone.detector``) when none was given."""
        if self._detector is None and self._detector_name is None:
            self._detector_name = getattr(backbone, "detector", None)

    @property
    def detector(self):
        if self._detector is None:
            if self._detector_name is None:
                raise ValueError(
                    "GenEvalReward has no detector: pass detector=<name> (registered: "
                    f"{sorted(DETECTORS) or 'none yet'}) or a detector object, or train with HTGRPOTrainer, "
                    "which gives it the backbone's detector"
                )
            self._detector = get_detector(self._detector_name)
        return self._detector

    @property
    def threshold(self) -> float:
        return self._threshold if self._threshold is not None else getattr(self.detector, "threshold", 0.3)

    @property
    def counting_threshold(self) -> float:
        c = self._counting_threshold
        return c if c is not None else getattr(self.detector, "counting_threshold", 0.9)

    def verdicts(self, images: Sequence[Image.Image], metadata: Sequence[dict[str, Any]]):
        if len(images) != len(metadata):
            raise ValueError(f"got {len(images)} images for {len(metadata)} metadata records")
        classes = getattr(self.detector, "classes", None)
        colors = getattr(self.detector, "colors", None)
        out = []
        for image, meta in zip(images, metadata):
            validate_metadata(meta, classes, colors)
            if not isinstance(image, Image.Image):
                raise TypeError(
                    f"GenEvalReward expects PIL images as completions, got {type(image).__name__}; "
                    "train with HTGRPOTrainer, which decodes image tokens to PIL images"
                )
            out.append(evaluate(self.detector(image), meta, self.threshold, self.counting_threshold))
        return out

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Image.Image], **kwargs: Any) -> list[float]:
        verdicts = self.verdicts(completions, _metadata_rows(len(completions), kwargs))
        return [float(v.correct) if self.strict else v.score for v in verdicts]

    def summary(self, images: Sequence[Image.Image], metadata: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """GenEval's summary (per-tag accuracy and ``overall``) of images against their metadata."""
        verdicts = self.verdicts(images, metadata)
        return summarize([m["tag"] for m in metadata], [v.correct for v in verdicts])
