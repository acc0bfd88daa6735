"""The failure table (trl_htgrpo.evaluation.failures): each image's first failing clause, per tag, worked by hand."""

from __future__ import annotations

import pytest
from PIL import Image

from trl_htgrpo.evaluation.failures import failure_table, missing_kind, swapped_record, swapped_verdicts
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


def test_swapped_record_asks_the_opposite_relation_or_the_exchanged_colours():
    """position: "left of" becomes "right of" (and above <-> below); color_attr: the two colours change clauses;
    a record with neither (a single colour, or all one colour) has no swapped record. Classes and counts stay."""
    pos = {"tag": "position", "prompt": "a square left of a circle", "include": [
        {"class": "circle", "count": 1}, {"class": "square", "count": 1, "position": ["left of", 0]}]}
    got = swapped_record(pos)
    assert got["include"] == [{"class": "circle", "count": 1}, {"class": "square", "count": 1, "position": ["right of", 0]}]
    assert pos["include"][1]["position"] == ["left of", 0]  # the record itself is untouched
    above = {**pos, "include": [pos["include"][0], {"class": "square", "count": 1, "position": ["above", 0]}]}
    assert swapped_record(above)["include"][1]["position"] == ["below", 0]
    attr = {"tag": "color_attr", "include": [{"class": "square", "count": 1, "color": "red"},
                                             {"class": "circle", "count": 1, "color": "blue"}]}
    assert [c["color"] for c in swapped_record(attr)["include"]] == ["blue", "red"]
    same = {"tag": "color_attr", "include": [{"class": "square", "count": 1, "color": "red"},
                                             {"class": "circle", "count": 1, "color": "red"}]}
    assert swapped_record(same) is None
    assert swapped_record({"tag": "colors", "include": [{"class": "square", "count": 1, "color": "red"}]}) is None


def test_swapped_verdicts_show_whether_the_images_follow_the_relation():
    """Four position images of "a square left of a circle", each with both objects: the square left of the circle
    (correct; wrong under "right of"), twice right of it (wrong; correct swapped) and on top of it (wrong both
    ways). given_objects 1/4 against given_objects_swapped 2/4: these images follow the opposite word more often
    than the word. A fifth image with no square is missing: counted in neither. The swapped verdicts come from the
    rules on the same detections (a GenEvalReward with a detector that is never called)."""
    from trl_htgrpo.rewards import GenEvalReward

    class NoDetector:  # the detections are given; detecting again would be a bug
        threshold, counting_threshold = 0.6, 0.9

        def __call__(self, image):
            raise AssertionError("swapped_verdicts detected again")

    pos = {"tag": "position", "prompt": "a square left of a circle", "include": [
        {"class": "circle", "count": 1}, {"class": "square", "count": 1, "position": ["left of", 0]}]}
    circle = Detection("circle", (24.0, 0.0, 36.0, 12.0), 1.0, "red")
    sq = lambda x: Detection("square", (x, 0.0, x + 12.0, 12.0), 1.0, "red")  # noqa: E731
    dets = [[circle, sq(0.0)], [circle, sq(48.0)], [circle, sq(48.0)], [circle, sq(24.0)], [circle]]
    reward = GenEvalReward(strict=True, detector=NoDetector())
    images, metas = [Image.new("RGB", (48, 48))] * 5, [pos] * 5
    verdicts = reward.verdicts(images, metas, dets)
    assert [v.correct for v in verdicts] == [True, False, False, False, False]
    swapped = swapped_verdicts(reward, images, metas, dets)
    assert [v.correct for v in swapped] == [False, True, True, False, False]
    row = failure_table(metas, verdicts, dets, 0.6, 0.9, swapped)["position"]
    assert row["given_objects"] == row["given_objects_asked"] == 0.25
    assert row["given_objects_swapped"] == 0.5 and row["drawn_swappable"] == 4
    # without the swapped verdicts the table has no such columns; a list of the wrong length is refused
    assert "given_objects_swapped" not in failure_table(metas, verdicts, dets, 0.6, 0.9)["position"]
    with pytest.raises(ValueError, match="got 1 swapped verdicts for 5 records"):
        failure_table(metas, verdicts, dets, 0.6, 0.9, swapped[:1])
