"""The failure table (trl_htgrpo.evaluation.failures): each image's first failing clause, per tag, worked by hand."""

from __future__ import annotations

import pytest

from trl_htgrpo.evaluation.failures import failure_table, missing_kind
from trl_htgrpo.rewards import Detection, Verdict


def test_tallies_each_images_first_failure_and_the_detections_the_detector_dropped():
    """Two counting images of "two squares" (one correct; one with a square kept and one at 0.6, which the counting
    threshold 0.9 drops: missing, malformed) and two colors images of "a red square" (a blue one: wrong colour; a
    red one: correct). Per tag half correct; correct among those with every object 1/1 and 1/2; detections 3 + 1
    per counting image, 2 of those 4 at or below 0.9 (the counting threshold: 0.9 itself is dropped, GenEval keeps
    score > threshold); the colors images' 1.0 detections are kept at 0.6."""
    box = (0.0, 0.0, 12.0, 12.0)
    d = lambda s, color="red": Detection("square", box, s, color)  # noqa: E731
    count2 = {"tag": "counting", "include": [{"class": "square", "count": 2}], "exclude": [{"class": "square", "count": 3}]}
    red = {"tag": "colors", "include": [{"class": "square", "count": 1, "color": "red"}]}
    verdicts = [Verdict(True, 1.0, ""), Verdict(False, 0.75, "expected 2 square, found 1", "missing"),
                Verdict(False, 0.0, "expected red square, found ['blue']", "color"), Verdict(True, 1.0, "")]
    dets = [[d(1.0), d(1.0), d(0.9)], [d(1.0), d(0.6)], [d(1.0, "blue")], [d(1.0)]]
    table = failure_table([count2, count2, red, red], verdicts, dets, threshold=0.6, counting_threshold=0.9)
    assert list(table) == ["counting", "colors", "all"]  # GenEval's tag order, then every image
    assert table["counting"] == pytest.approx({
        "correct": 0.5, "missing": 0.5, "color": 0.0, "position": 0.0, "extra": 0.0, "missing_absent": 0.0,
        "missing_malformed": 0.5, "missing_too_few": 0.0, "given_objects": 1.0, "detections": 2.5, "dropped": 0.4})
    # colors: both images have the square, one is the wrong colour: binding right on 1 of 2
    assert table["colors"]["color"] == 0.5 and table["colors"]["given_objects"] == 0.5
    assert table["colors"]["dropped"] == 0.0
    assert table["all"] == pytest.approx({
        "correct": 0.5, "missing": 0.25, "color": 0.25, "position": 0.0, "extra": 0.0, "missing_absent": 0.0,
        "missing_malformed": 0.25, "missing_too_few": 0.0, "given_objects": 2 / 3, "detections": 7 / 4,
        "dropped": 2 / 7})
    with pytest.raises(ValueError, match="got 1 records, 4 verdicts"):
        failure_table([count2], verdicts, dets, threshold=0.6, counting_threshold=0.9)


def test_says_what_a_missing_class_looks_like():
    """The first include clause short of kept detections decides: no detection of its class (absent), one at or
    below the threshold (malformed), or only kept ones, too few (too_few)."""
    box = (0.0, 0.0, 12.0, 12.0)
    two = {"tag": "two_object", "include": [{"class": "circle", "count": 1}, {"class": "square", "count": 1}]}
    cross, circle = Detection("cross", box, 1.0), Detection("circle", box, 1.0)
    assert missing_kind(two, [cross, Detection("square", box, 1.0)], 0.6) == "absent"  # a cross for the circle
    assert missing_kind(two, [circle, Detection("square", box, 0.5)], 0.6) == "malformed"
    three = {"tag": "counting", "include": [{"class": "circle", "count": 3}]}
    assert missing_kind(three, [circle, circle], 0.9) == "too_few"
    with pytest.raises(ValueError, match="is not 'missing'"):
        missing_kind(two, [circle, Detection("square", box, 1.0)], 0.6)
