"""The GenEval-style reward in TRL's reward-function signature."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from PIL import Image

from .detectors import DETECTORS, get_detector
from .geneval_rules import (
    MAX_OBJECTS, Detection, Verdict, check_partial_credit, colors_needed, evaluate, summarize, validate_metadata,
)

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
    passes them. Returns the partial-credit score (``strict=False``) or 1.0/0.0 strict correctness
    (``strict=True``).

    Args:
        detector: a registered detector name (:data:`~trl_htgrpo.rewards.detectors.DETECTORS`: "mask2former" for
            photographs, "shapes" for the toy world), a detector object, or None: the backbone's detector
            (``Backbone.detector``), set when :class:`HTGRPOTrainer` binds the reward to its backbone (:meth:`bind_backbone`).
        strict: reward GenEval's strict correctness instead of a partial credit.
        threshold, counting_threshold: score thresholds of kept detections (counting prompts use the second);
            None: the detector's own (``detector.threshold`` / ``detector.counting_threshold``; GenEval's 0.3 / 0.9
            for Mask2Former confidences; the shapes detector scores template IoU and keeps 0.6 / 0.9).
        partial_credit: the dense score (:data:`~trl_htgrpo.rewards.geneval_rules.PARTIAL_CREDIT`): "bounded" (ours,
            in [0, 1], 1 exactly when strictly correct), "flow_grpo" (Flow-GRPO's reward-server score: counts against
            all kept detections, negative with far too many, excludes ignored) or "contrastive" (ours: bounded plus its
            margin over the opposite relation or exchanged colours, in [-1, 2]; rewards following the word).
        detector_options: keyword arguments for a detector built by name (e.g. ``{"model_id": ..., "dtype": "bfloat16"}``).

    Detection runs batched when the detector has ``detect(images)``; colours are classified on demand, all images
    at once, when it has ``classify_colors`` (only for the detections a colour clause reads).

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
        partial_credit: str = "bounded",
        detector_options: Mapping[str, Any] | None = None,
    ):
        check_partial_credit(partial_credit)
        if detector_options and not (isinstance(detector, str) or detector is None):
            raise ValueError("detector_options apply to a detector built by name; configure a detector object yourself")
        self._detector_name = detector if isinstance(detector, str) or detector is None else None
        self._detector = None if self._detector_name is not None or detector is None else detector
        self._detector_options = dict(detector_options or {})
        self.strict, self.partial_credit = strict, partial_credit
        self._threshold, self._counting_threshold = threshold, counting_threshold
        self.__name__ = "geneval_strict" if strict else "geneval" if partial_credit == "bounded" else f"geneval_{partial_credit}"

    def bind_backbone(self, backbone) -> None:
        """Use the backbone's detector (``backbone.detector``) when none was given."""
        if self._detector is None and self._detector_name is None:
            self._detector_name = getattr(backbone, "detector", None)

    def load(self) -> "GenEvalReward":
        """Build the detector and load its models now, so that a missing one fails before training starts."""
        if callable(getattr(self.detector, "load", None)):
            self.detector.load()
        return self

    @property
    def detector(self):
        if self._detector is None:
            if self._detector_name is None:
                raise ValueError(
                    "GenEvalReward has no detector: pass detector=<name> (registered: "
                    f"{sorted(DETECTORS) or 'none yet'}) or a detector object, or train with HTGRPOTrainer, "
                    "which gives it the backbone's detector"
                )
            self._detector = get_detector(self._detector_name, **self._detector_options)
        return self._detector

    @property
    def threshold(self) -> float:
        return self._threshold if self._threshold is not None else getattr(self.detector, "threshold", 0.3)

    @property
    def counting_threshold(self) -> float:
        c = self._counting_threshold
        return c if c is not None else getattr(self.detector, "counting_threshold", 0.9)

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """Every detection of each image, kept or not (batched when the detector has ``detect(images)``)."""
        detect = getattr(self.detector, "detect", None)
        out = list(detect(list(images))) if callable(detect) else [list(self.detector(im)) for im in images]
        if len(out) != len(images):
            raise ValueError(f"the detector returned {len(out)} detection lists for {len(images)} images")
        return out

    def _colors(self, images, detections, metadata) -> list[list[str | None] | None]:
        """Per image, the colour of each detection when the detector classifies on demand (None: Detection.color)."""
        classify = getattr(self.detector, "classify_colors", None)
        if not callable(classify):
            return [None] * len(images)
        need = [colors_needed(d, m, self.threshold, self.counting_threshold, MAX_OBJECTS)
                for d, m in zip(detections, metadata)]
        got = classify(list(images), [[d[j] for j in idx] for d, idx in zip(detections, need)])
        out = []
        for dets, idx, colors in zip(detections, need, got):
            if len(colors) != len(idx):
                raise ValueError(f"classify_colors returned {len(colors)} colours for {len(idx)} detections")
            full: list[str | None] = [d.color for d in dets]
            for j, c in zip(idx, colors):
                full[j] = c
            out.append(full)
        return out

    def verdicts(self, images: Sequence[Image.Image], metadata: Sequence[dict[str, Any]],
                 detections: Sequence[Sequence[Detection]] | None = None) -> list[Verdict]:
        """GenEval's verdict of each image against its metadata record. ``detections``: the images' own
        (:meth:`detect`), when the caller already has them; None: detect here."""
        if len(images) != len(metadata):
            raise ValueError(f"got {len(images)} images for {len(metadata)} metadata records")
        classes = getattr(self.detector, "classes", None)
        colors = getattr(self.detector, "colors", None)
        for image, meta in zip(images, metadata):
            validate_metadata(meta, classes, colors)
            if not isinstance(image, Image.Image):
                raise TypeError(
                    f"GenEvalReward expects PIL images as completions, got {type(image).__name__}; "
                    "train with HTGRPOTrainer, which decodes image tokens to PIL images"
                )
        floor = getattr(self.detector, "min_score", None)
        if floor is not None and min(self.threshold, self.counting_threshold) < floor:
            raise ValueError(f"threshold {min(self.threshold, self.counting_threshold)} is below the detector's "
                             f"min_score {floor}: detections in between are already dropped; lower min_score too")
        if detections is None:
            detections = self.detect(images)
        elif len(detections) != len(images):
            raise ValueError(f"got {len(detections)} detection lists for {len(images)} images")
        colors_of = self._colors(images, detections, metadata)
        return [evaluate(d, m, self.threshold, self.counting_threshold, MAX_OBJECTS, self.partial_credit, c)
                for d, m, c in zip(detections, metadata, colors_of)]

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Image.Image], **kwargs: Any) -> list[float]:
        verdicts = self.verdicts(completions, _metadata_rows(len(completions), kwargs))
        return [float(v.correct) if self.strict else v.score for v in verdicts]

    def summary(self, images: Sequence[Image.Image], metadata: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """GenEval's summary (per-tag accuracy and ``overall``) of images against their metadata."""
        verdicts = self.verdicts(images, metadata)
        return summarize([m["tag"] for m in metadata], [v.correct for v in verdicts])
