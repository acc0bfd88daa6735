"""The GenEval-style reward in TRL's reward-function signature."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from PIL import Image

from .geneval_rules import Detection, evaluate, summarize, validate_metadata
from .shapes_detector import ShapesDetector

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

    ``threshold`` (0.6) and ``counting_threshold`` (0.9) apply to the detector's scores: the shapes
    detector scores template IoU, where 0.6 keeps a shape missing a tile or two and drops stray
    tiles; GenEval's own 0.3 / 0.9 are calibrated for Mask2Former confidences (use those with it).

    >>> from trl_htgrpo.toy import Scene, SceneObject, render_scene, decode_codes
    >>> img = decode_codes(render_scene(Scene([SceneObject("square", "red", 2, 2)])))
    >>> GenEvalReward()(["a photo of a red square"], [img], tag=["colors"],
    ...                 include=[[{"class": "square", "count": 1, "color": "red"}]])
    [1.0]
    """

    def __init__(
        self,
        detector: Callable[[Image.Image], Sequence[Detection]] | None = None,
        strict: bool = False,
        threshold: float = 0.6,
        counting_threshold: float = 0.9,
    ):
        self.detector = detector or ShapesDetector()
        self.strict = strict
        self.threshold = threshold
        self.counting_threshold = counting_threshold
        self.__name__ = "geneval_strict" if strict else "geneval"

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
