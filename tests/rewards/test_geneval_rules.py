"""GenEval's rule engine: relation, evaluate (strict + partial credit), summarize, validate_metadata."""

import numpy as np
import pytest

from trl_htgrpo.rewards import GenEvalReward
from trl_htgrpo.rewards.geneval_rules import (
    GENEVAL_COLORS, PARTIAL_CREDIT, RELATIONS, TAGS, Detection, colors_needed, evaluate, geneval_order,
    keep_detections, relation, summarize, validate_metadata,
)
from trl_htgrpo.toy.shapes import CLASSES


def det(cls, x=0, y=0, score=1.0, color="red", size=12):
    return Detection(cls, (float(x), float(y), float(x + size), float(y + size)), score, color)


# ----------------------------------------------------------------------------------------------- relation
def test_relation_left_and_right():
    # centres (5, 5) and (35, 5): offset (-30, 0); revised x = -(30 - 0.1 * 20) = -28; dx = -28/30 = -0.93
    assert relation((0, 0, 10, 10), (30, 0, 40, 10)) == {"left of"}
    assert relation((30, 0, 40, 10), (0, 0, 10, 10)) == {"right of"}


def test_relation_above_and_below_image_y_grows_downwards():
    assert relation((0, 30, 10, 40), (0, 0, 10, 10)) == {"below"}
    assert relation((0, 0, 10, 10), (0, 30, 10, 40)) == {"above"}


def test_relation_same_or_overlapping_centres_is_empty():
    assert relation((0, 0, 10, 10), (0, 0, 10, 10)) == set()
    assert relation((0, 0, 10, 10), (2, 2, 8, 8)) == set()  # both centred at (5, 5)


def test_relation_diagonal_has_both():
    # offset (-30, -30) -> revised (-28, -28) / (30 * sqrt 2) = -0.66 on both axes
    assert relation((0, 0, 10, 10), (30, 30, 40, 40)) == {"left of", "above"}
    assert relation((30, 30, 40, 40), (0, 0, 10, 10)) == {"right of", "below"}
    assert relation((30, 0, 40, 10), (0, 30, 10, 40)) == {"right of", "above"}


def test_relation_revision_removes_relation():
    # offset (-3, -1): unrevised dx = -3/sqrt(10) = -0.95 would say "left of";
    # revised = (-(3 - 2), -max(1 - 2, 0)) = (-1, 0); dx = -1/sqrt(10) = -0.32 -> no relation.
    assert relation((0, 0, 10, 10), (3, 1, 13, 11)) == set()
    # offset (-2, 0) -> revised (0, 0) exactly: no relation
    assert relation((0, 0, 10, 10), (2, 0, 12, 10)) == set()
    # offset (-3, 0) -> revised (-1, 0), dx = -1/3 = -0.33: still none; offset (-5, 0): dx = -3/5 = -0.6: left of
    assert relation((0, 0, 10, 10), (3, 0, 13, 10)) == set()
    assert relation((0, 0, 10, 10), (5, 0, 15, 10)) == {"left of"}


def test_relation_revision_trims_one_axis_of_a_diagonal():
    # offset (-20, -6); revised (-18, -4); |offset| = sqrt(436) = 20.88: dx = -0.862, dy = -0.192
    assert relation((0, 0, 10, 10), (20, 6, 30, 16)) == {"left of"}
    # offset (-20, -16); revised (-18, -14) / 25.61: dx = -0.70, dy = -0.547 -> both
    assert relation((0, 0, 10, 10), (20, 16, 30, 26)) == {"left of", "above"}


# ----------------------------------------------------------------------------------------------- evaluate
TWO_OBJECT = {"tag": "two_object", "include": [{"class": "square", "count": 1}, {"class": "circle", "count": 1}]}
COUNT_TWO = {"tag": "counting", "include": [{"class": "square", "count": 2}], "exclude": [{"class": "square", "count": 3}]}
POSITION = {
    "tag": "position",
    "include": [{"class": "circle", "count": 1}, {"class": "square", "count": 1, "position": ["left of", 0]}],
}


def test_evaluate_correct_two_object():
    v = evaluate([det("square"), det("circle", x=24)], TWO_OBJECT)
    assert (v.correct, v.score, v.reason) == (True, 1.0, "")


def test_include_fails_with_fewer_detections_and_partial_credit():
    v = evaluate([det("square")], TWO_OBJECT)
    # credits: square 1/1, circle 0/1 -> mean 0.5
    assert (v.correct, v.score) == (False, 0.5)
    assert v.reason == "expected 1 circle, found 0"
    # counting "two squares" with one square: include 1/2 = 0.5, exclude (fewer than 3) 1 -> mean 0.75
    v = evaluate([det("square")], COUNT_TWO)
    assert (v.correct, v.score) == (False, 0.75)
    assert v.reason == "expected 2 square, found 1"
    assert evaluate([], COUNT_TWO).score == 0.5  # 0/2 and 1 -> 0.5


def test_other_classes_do_not_count():
    v = evaluate([det("triangle"), det("cross", x=24), det("square", x=48)], TWO_OBJECT)
    assert (v.correct, v.score) == (False, 0.5)


def test_color_clause_needs_count_detections_of_that_color():
    meta = {"tag": "colors", "include": [{"class": "square", "count": 2, "color": "red"}]}
    assert evaluate([det("square", color="red"), det("square", x=24, color="red")], meta).correct
    v = evaluate([det("square", color="red"), det("square", x=24, color="blue")], meta)
    # found 2/2, right colour 1/2 -> credit 1 * 0.5
    assert (v.correct, v.score) == (False, 0.5)
    assert "expected red square" in v.reason and "'blue'" in v.reason
    v = evaluate([det("square", color="red")], meta)  # 1/2 found, all of them red: 0.5 * 1/1
    assert (v.correct, v.score) == (False, 0.5)
    v = evaluate([det("square", color="blue")], meta)  # 1/2 found, none red: 0.5 * 0
    assert (v.correct, v.score) == (False, 0.0)


def test_color_is_checked_on_the_most_confident_detections_only():
    meta = {"tag": "colors", "include": [{"class": "square", "count": 1, "color": "red"}]}
    dets = [det("square", color="red", score=0.5), det("square", x=24, color="blue", score=0.95)]
    v = evaluate(dets, meta)  # the blue square is more confident, so it is the one checked
    assert (v.correct, v.score) == (False, 0.0)
    dets = [det("square", color="red", score=0.95), det("square", x=24, color="blue", score=0.5)]
    assert evaluate(dets, meta).correct


def test_position_correct_and_wrong_relation():
    good = [det("circle", x=24), det("square", x=0)]  # square left of circle
    assert evaluate(good, POSITION).correct
    bad = [det("circle", x=0), det("square", x=24)]  # square right of circle
    v = evaluate(bad, POSITION)
    assert (v.correct, v.score) == (False, 0.5)  # circle 1, square's position 0
    assert v.reason == "expected square left of target"


def test_position_fails_when_the_referenced_clause_failed():
    v = evaluate([det("square")], POSITION)  # no circle: clause 0 fails, clause 1 has no target
    assert (v.correct, v.score) == (False, 0.0)
    assert v.reason == "expected 1 circle, found 0"
    # a failed *colour* also fails the referenced clause
    meta = {"tag": "position", "include": [{"class": "circle", "count": 1, "color": "blue"},
                                           {"class": "square", "count": 1, "position": ["left of", 0]}]}
    v = evaluate([det("circle", x=24, color="red"), det("square", x=0)], meta)
    assert (v.correct, v.score) == (False, 0.0)


def test_position_checks_every_pair():
    meta = {"tag": "position", "include": [{"class": "circle", "count": 1},
                                           {"class": "square", "count": 2, "position": ["left of", 0]}]}
    assert evaluate([det("circle", x=36), det("square", x=0), det("square", x=12, y=24)], meta).correct
    # second square right of the circle: one failing pair fails the clause
    v = evaluate([det("circle", x=24), det("square", x=0), det("square", x=36, y=24)], meta)
    assert (v.correct, v.score) == (False, 0.5)


def test_exclude_makes_counts_exact():
    two = [det("square"), det("square", x=24)]
    assert evaluate(two, COUNT_TWO).correct
    v = evaluate(two + [det("square", x=48)], COUNT_TWO)
    # include 2/2 = 1, exclude failed = 0 -> 0.5
    assert (v.correct, v.score) == (False, 0.5)
    assert v.reason == "expected fewer than 3 square"


def test_failure_names_the_kind_of_the_first_failing_clause():
    """missing / color / position / extra, tested in the rules' order; "" when correct."""
    assert evaluate([det("square"), det("circle", x=24)], TWO_OBJECT).failure == ""
    assert evaluate([det("square")], TWO_OBJECT).failure == "missing"
    meta = {"tag": "colors", "include": [{"class": "square", "count": 1, "color": "red"}]}
    assert evaluate([det("square", color="blue")], meta).failure == "color"
    assert evaluate([det("circle", x=0), det("square", x=24)], POSITION).failure == "position"
    three = [det("square"), det("square", x=24), det("square", x=48)]
    assert evaluate(three, COUNT_TWO).failure == "extra"
    # a missing circle fails first, so the position clause that refers to it is not what is reported
    assert evaluate([det("square")], POSITION).failure == "missing"


def test_counting_threshold_vs_default_threshold():
    meta = {"tag": "counting", "include": [{"class": "square", "count": 1}], "exclude": [{"class": "square", "count": 2}]}
    weak = det("square", score=0.85)
    # counting: 0.85 < 0.9 is ignored -> include 0/1 = 0, exclude 1 -> 0.5
    assert evaluate([weak], meta) == evaluate([], meta)
    assert (evaluate([weak], meta).correct, evaluate([weak], meta).score) == (False, 0.5)
    # the same detection counts for any other tag (threshold 0.3)
    other = {"tag": "single_object", "include": [{"class": "square", "count": 1}]}
    assert evaluate([weak], other).correct
    assert not evaluate([det("square", score=0.2)], other).correct
    # a weak extra detection does not break a counting prompt
    assert evaluate([det("square", score=0.95), det("square", x=24, score=0.85)], meta).correct
    # thresholds are parameters
    assert not evaluate([weak], other, threshold=0.9).correct
    assert evaluate([weak], meta, counting_threshold=0.8).correct


def test_at_most_max_objects_per_class():
    dets = [det("square", x=i, score=1.0 - i / 1000) for i in range(17)]  # all >= 0.9
    meta = {"tag": "counting", "include": [{"class": "square", "count": 16}], "exclude": [{"class": "square", "count": 17}]}
    assert evaluate(dets, meta).correct  # the 17th detection is dropped before the exclude check
    assert not evaluate(dets, meta, max_objects=17).correct


def test_score_one_iff_correct_on_random_detections():
    rng = np.random.default_rng(0)
    metas = [TWO_OBJECT, COUNT_TWO, POSITION,
             {"tag": "color_attr", "include": [{"class": "square", "count": 1, "color": "red"},
                                               {"class": "circle", "count": 1, "color": "blue"}]}]
    n_correct = 0
    for _ in range(400):
        dets = [det(CLASSES[rng.integers(2)], x=rng.integers(0, 40), y=rng.integers(0, 40),
                    score=float(rng.uniform(0.5, 1.0)), color=("red", "blue")[rng.integers(2)])
                for _ in range(rng.integers(0, 4))]
        for meta in metas:
            v = evaluate(dets, meta)
            assert 0.0 <= v.score <= 1.0
            assert (v.score == 1.0) == v.correct
            assert (v.reason == "") == v.correct
            n_correct += v.correct
    assert n_correct > 50  # the property was exercised on both sides


# ----------------------------------------------------------------------------------------------- summarize
def test_summarize_overall_is_unweighted_mean_of_tags():
    tags = ["counting"] * 4 + ["colors"]
    s = summarize(tags, [True, False, False, False, True])
    # counting 1/4, colors 1/1 -> overall (0.25 + 1) / 2 = 0.625 (the pooled mean would be 2/5 = 0.4)
    assert s == {"overall": 0.625, "tags": {"colors": 1.0, "counting": 0.25}}
    assert list(s["tags"]) == ["colors", "counting"]  # sorted


def test_summarize_edge_cases():
    assert summarize([], []) == {"overall": 0.0, "tags": {}}
    with pytest.raises(ValueError, match=r"tags \(2\) and correct \(1\)"):
        summarize(["colors", "colors"], [True])


# ----------------------------------------------------------------------------------------------- validate
def with_include(*clauses, **extra):
    return {"tag": "position", "include": list(clauses), **extra}


def test_valid_metadata_passes():
    validate_metadata(POSITION, CLASSES, None)
    validate_metadata(COUNT_TWO, CLASSES)
    validate_metadata({"include": [{"class": "zebra", "count": 1, "color": "pink"}]})  # any class, GenEval colours


@pytest.mark.parametrize("meta", [{"tag": "colors"}, {"tag": "colors", "include": []}, {"include": None}])
def test_missing_include(meta):
    with pytest.raises(ValueError, match="metadata field 'include' is missing or empty"):
        validate_metadata(meta)


def test_unknown_tag():
    with pytest.raises(ValueError, match=r"'tag' is 'shapes'; allowed values: \['single_object', 'two_object'"):
        validate_metadata({"tag": "shapes", "include": [{"class": "square", "count": 1}]})


def test_unknown_class_lists_allowed_classes():
    meta = with_include({"class": "square", "count": 1}, {"class": "dog", "count": 1})
    with pytest.raises(ValueError, match=r"'include\[1\]\.class' is 'dog'; allowed values: \['square', 'circle', 'triangle', 'cross'\]"):
        validate_metadata(meta, CLASSES)
    validate_metadata(meta)  # no class vocabulary given: anything goes
    with pytest.raises(ValueError, match=r"'exclude\[0\]\.class' is 'dog'"):
        validate_metadata({"include": [{"class": "square", "count": 1}], "exclude": [{"class": "dog", "count": 2}]}, CLASSES)
    with pytest.raises(ValueError, match=r"'include\[0\]\.class' is missing"):
        validate_metadata({"include": [{"count": 1}]}, CLASSES)


def test_unknown_color_lists_allowed_colors():
    meta = {"include": [{"class": "square", "count": 1, "color": "pink"}]}
    validate_metadata(meta)  # pink is one of GenEval's ten colours
    with pytest.raises(ValueError, match=r"'include\[0\]\.color' is 'pink'; allowed values: \['red', 'orange', 'yellow', 'green', 'blue', 'purple'\]"):
        validate_metadata(meta, CLASSES, ("red", "orange", "yellow", "green", "blue", "purple"))
    with pytest.raises(ValueError, match=r"'include\[0\]\.color' is 'teal'; allowed values: \['red'.*'white'\]"):
        validate_metadata({"include": [{"class": "square", "count": 1, "color": "teal"}]})
    assert len(GENEVAL_COLORS) == 10


@pytest.mark.parametrize("count", [0, -1, True, "2", 1.0, None])
def test_bad_count(count):
    with pytest.raises(ValueError, match=r"'include\[0\]\.count' must be an integer >= 1, got " + repr(count).replace("(", r"\(")):
        validate_metadata({"include": [{"class": "square", "count": count}]})


@pytest.mark.parametrize("position", [["next to", 0], ["left of"], ["left of", 0, 1], ["LEFT OF", 0]])
def test_bad_relation_lists_relations(position):
    meta = with_include({"class": "circle", "count": 1}, {"class": "square", "count": 1, "position": position})
    with pytest.raises(ValueError, match=r"'include\[1\]\.position' must be \[relation, index\] with relation in "
                                         r"\['left of', 'right of', 'above', 'below'\]"):
        validate_metadata(meta)


@pytest.mark.parametrize("j", [1, 2, -1])
def test_position_index_must_name_another_clause(j):
    meta = with_include({"class": "circle", "count": 1}, {"class": "square", "count": 1, "position": ["above", j]})
    with pytest.raises(ValueError, match=rf"'include\[1\]\.position' index {j} must be an integer naming an earlier include clause \(0\.\.0\)"):
        validate_metadata(meta)


def test_position_not_allowed_in_exclude():
    meta = {"include": [{"class": "circle", "count": 1}], "exclude": [{"class": "square", "count": 1, "position": ["above", 0]}]}
    with pytest.raises(ValueError, match=r"'exclude\[0\]\.position' is not allowed"):
        validate_metadata(meta)


def test_clause_must_be_a_dict():
    with pytest.raises(ValueError, match=r"'include\[0\]' must be a dict"):
        validate_metadata({"include": ["square"]})


def test_forward_position_reference_is_rejected():
    meta = with_include({"class": "square", "count": 1, "position": ["left of", 1]}, {"class": "circle", "count": 1})
    # evaluate treats the target as failed even though the image is right: square left of circle
    assert not evaluate([det("square", x=0), det("circle", x=24)], meta).correct
    with pytest.raises(ValueError, match=r"include\[0\]\.position"):
        validate_metadata(meta)


def test_constants():
    assert TAGS == ("single_object", "two_object", "counting", "colors", "position", "color_attr")
    assert RELATIONS == ("left of", "right of", "above", "below")


# ----------------------------------------------------------------------------------------------- GenEval's order
def test_equal_scores_last_first_as_genevals_argsort():
    # np.argsort([.5, .9, .5, .7, .5])[::-1] with a stable argsort (GenEval's numpy 1.23 for <= 16 elements)
    assert geneval_order([0.5, 0.9, 0.5, 0.7, 0.5]) == [1, 3, 4, 2, 0]
    assert geneval_order([1.0] * 4) == [3, 2, 1, 0]
    assert geneval_order([]) == []
    dets = [det("square", x=0, score=0.8), det("circle"), det("square", x=24, score=0.8), det("square", x=48, score=0.2)]
    assert keep_detections(dets, 0.3) == {"square": [2, 0], "circle": [1]}  # the 0.2 square is below 0.3


def test_tie_decides_which_object_is_checked_for_colour_and_position():
    meta = {"tag": "colors", "include": [{"class": "square", "count": 1, "color": "red"}]}
    # equal scores: the LAST square is the most confident one in GenEval's order
    assert evaluate([det("square", color="blue", score=0.7), det("square", x=24, color="red", score=0.7)], meta).correct
    assert not evaluate([det("square", color="red", score=0.7), det("square", x=24, color="blue", score=0.7)], meta).correct
    # position: the circle checked is the last of two equal ones; the square is left of it only
    meta = {"tag": "position", "include": [{"class": "circle", "count": 1},
                                           {"class": "square", "count": 1, "position": ["left of", 0]}]}
    circles = [det("circle", x=0, y=24, score=0.5), det("circle", x=36, score=0.5)]
    assert evaluate(circles + [det("square", x=0, y=0)], meta).correct  # (6, 6) vs (42, 6): left of
    assert not evaluate(circles[::-1] + [det("square", x=0, y=0)], meta).correct  # vs (6, 30): above only


def test_tie_at_the_max_objects_cap():
    # 17 squares above 0.9: 15 distinct scores, then two tied at 0.91; the cap keeps 16: the later tied one
    dets = [det("square", x=i, score=0.99 - i / 1000) for i in range(15)]
    dets += [det("square", x=100, score=0.91, color="red"), det("square", x=200, score=0.91, color="blue")]
    assert keep_detections(dets, 0.9)["square"] == list(range(15)) + [16]


# ----------------------------------------------------------------------------------------------- colours on demand
def test_colors_needed_are_the_top_count_of_each_colour_clause():
    dets = [det("square", score=0.5), det("square", x=24, score=0.95), det("circle", x=48), det("square", x=60, score=0.2)]
    meta = {"tag": "color_attr", "include": [{"class": "square", "count": 1, "color": "red"},
                                              {"class": "circle", "count": 1}]}
    assert colors_needed(dets, meta) == [1]  # only the most confident square; the circle's clause has no colour
    meta = {"tag": "colors", "include": [{"class": "square", "count": 3, "color": "red"}]}
    assert colors_needed(dets, meta) == [0, 1]  # fewer kept than count: all kept (the 0.2 one is not)
    assert colors_needed(dets, {"tag": "counting", "include": [{"class": "square", "count": 2, "color": "red"}]}) == [1]


def test_colors_argument_overrides_detection_colors():
    meta = {"tag": "colors", "include": [{"class": "square", "count": 1, "color": "red"}]}
    dets = [Detection("square", (0, 0, 12, 12), 0.9)]  # colour unknown (a photo detector's detection)
    assert not evaluate(dets, meta).correct
    assert evaluate(dets, meta, colors=["red"]).correct
    with pytest.raises(ValueError, match="got 2 colours for 1 detections"):
        evaluate(dets, meta, colors=["red", "red"])


# ----------------------------------------------------------------------------------------------- flow_grpo
def flow(dets, meta):
    return evaluate(dets, meta, partial_credit="flow_grpo").score


def bounded(dets, meta):
    return evaluate(dets, meta).score


def test_flow_grpo_counts_all_kept_detections_and_goes_negative():
    # counting "two squares" (exclude 3): terms 1 - |2 - n| / 2 only; the exclude is ignored
    two = [det("square", x=0), det("square", x=24)]
    assert flow(two, COUNT_TWO) == 1.0
    assert flow(two[:1], COUNT_TWO) == 0.5  # 1 - 1/2; bounded: (1/2 + 1) / 2 = 0.75
    assert bounded(two[:1], COUNT_TWO) == 0.75
    assert flow([], COUNT_TWO) == 0.0  # 1 - 2/2
    three = two + [det("square", x=48)]
    assert flow(three, COUNT_TWO) == 0.5  # 1 - 1/2 (not because of the exclude); bounded (1 + 0) / 2 = 0.5
    six = [det("square", x=8 * i) for i in range(6)]
    assert flow(six, COUNT_TWO) == -1.0  # 1 - 4/2
    one = {"tag": "single_object", "include": [{"class": "square", "count": 1}]}
    assert flow(six, one) == -4.0  # 1 - 5/1; bounded 1.0 (the include takes the best one; no exclude)
    assert bounded(six, one) == 1.0
    twenty = [det("square", x=i, score=0.95) for i in range(20)]
    assert flow(twenty, one) == -14.0  # at most 16 kept: 1 - 15/1


def test_flow_grpo_uses_the_counting_threshold():
    # counting: the 0.85 square is below 0.9, so n = 2 -> 1.0; with any other tag (0.3) n = 3 -> 1 - 1/2
    dets = [det("square", x=0, score=0.95), det("square", x=24, score=0.95), det("square", x=48, score=0.85)]
    assert flow(dets, COUNT_TWO) == 1.0
    assert flow(dets, dict(COUNT_TWO, tag="two_object")) == 0.5


def test_flow_grpo_ignores_excludes():
    meta = {"tag": "single_object", "include": [{"class": "square", "count": 1}], "exclude": [{"class": "circle", "count": 1}]}
    dets = [det("square"), det("circle", x=24)]
    v = evaluate(dets, meta, partial_credit="flow_grpo")
    assert (v.correct, v.score) == (False, 1.0)  # strict fails on the exclude; flow_grpo's only term is 1
    assert bounded(dets, meta) == 0.5  # include 1, exclude 0


def test_flow_grpo_colour_term():
    meta = {"tag": "colors", "include": [{"class": "square", "count": 2, "color": "red"}]}
    red, blue = det("square", x=0, color="red"), det("square", x=24, color="blue")
    assert flow([red, det("square", x=24, color="red")], meta) == 1.0  # terms [1, 1]
    assert flow([red, blue], meta) == 0.75  # count right: [1, 1 - |2 - 1| / 2] = [1, 0.5]; bounded 1 * 1/2
    assert bounded([red, blue], meta) == 0.5
    assert flow([blue, det("square", x=48, color="blue")], meta) == 0.5  # [1, 1 - 2/2]
    # count wrong: the colour term is 0 whatever the colours: 3 red squares -> [1 - 1/2, 0]
    assert flow([red, det("square", x=24, color="red"), det("square", x=48, color="red")], meta) == 0.25
    assert flow([red], meta) == 0.25  # [1 - 1/2, 0]; bounded 1/2 * 1/1 = 0.5
    assert bounded([red], meta) == 0.5
    # color_attr, first clause's square is blue: [1, 0] + [1, 1] -> 0.75; bounded (0 + 1) / 2
    meta = {"tag": "color_attr", "include": [{"class": "square", "count": 1, "color": "red"},
                                              {"class": "circle", "count": 1, "color": "blue"}]}
    dets = [det("square", color="blue"), det("circle", x=24, color="blue")]
    assert (flow(dets, meta), bounded(dets, meta)) == (0.75, 0.5)


def test_flow_grpo_position_terms():
    # POSITION: circle (clause 0), square left of it (clause 1)
    good = [det("circle", x=24), det("square", x=0)]
    assert flow(good, POSITION) == 1.0  # [1] + [1, 1]
    bad = [det("circle", x=0), det("square", x=24)]
    # wrong relation: [1] + [1, 0, 1]: the server appends 1.0 after its pair loop even when a pair failed
    assert flow(bad, POSITION) == 0.75
    assert bounded(bad, POSITION) == 0.5
    # no circle: clause 0 [1 - 1/1 = 0]; clause 1 count right, target failed: [1, 0] -> 1/3
    assert flow([det("square")], POSITION) == pytest.approx(1 / 3)
    # two squares for one: clause 1 [1 - 1/1 = 0, 0] (one 0 for the position) -> (1 + 0 + 0) / 3
    assert flow([det("circle", x=36), det("square", x=0), det("square", x=12, y=24)], POSITION) == pytest.approx(1 / 3)
    # two circles for one: GenEval takes the better circle and is correct; flow_grpo's clause 0 fails (n != 1),
    # so clause 1 has no target: [0] + [1, 0] -> 1/3
    dets = [det("circle", x=36, score=0.9), det("circle", x=48, y=36, score=0.8), det("square", x=0)]
    v = evaluate(dets, POSITION, partial_credit="flow_grpo")
    assert v.correct and v.score == pytest.approx(1 / 3)
    assert bounded(dets, POSITION) == 1.0
    # colour and position in one clause, two squares for one: a single 0 term for both -> [1] + [1 - 1/1, 0]
    meta = {"tag": "position", "include": [{"class": "circle", "count": 1},
                                           {"class": "square", "count": 1, "color": "red", "position": ["left of", 0]}]}
    assert flow([det("circle", x=36), det("square", x=0), det("square", x=12, y=24)], meta) == pytest.approx(1 / 3)
    # count right, colour wrong: colour term 0 and no position term -> [1] + [1, 0]
    assert flow([det("circle", x=36), det("square", x=0, color="blue")], meta) == pytest.approx(2 / 3)


def test_flow_grpo_bounds_on_random_detections():
    rng = np.random.default_rng(1)
    metas = [TWO_OBJECT, COUNT_TWO, POSITION,
             {"tag": "color_attr", "include": [{"class": "square", "count": 1, "color": "red"},
                                               {"class": "circle", "count": 1, "color": "blue"}]}]
    seen_negative = False
    for _ in range(300):
        dets = [det(CLASSES[rng.integers(2)], x=rng.integers(0, 40), y=rng.integers(0, 40),
                    score=float(rng.uniform(0.5, 1.0)), color=("red", "blue")[rng.integers(2)])
                for _ in range(rng.integers(0, 6))]
        for meta in metas:
            b, f = evaluate(dets, meta), evaluate(dets, meta, partial_credit="flow_grpo")
            assert b.correct == f.correct and b.reason == f.reason  # strict correctness does not depend on the mode
            assert -15.0 <= f.score <= 1.0
            seen_negative |= f.score < 0
    assert seen_negative


def test_contrastive_credit_pays_for_the_relation_word_not_for_a_layout():
    """"a square left of a circle": bounded credits 1 (square left), 0.5 (right, or one above the other), 0.5 (only
    the circle); against the swapped record ("right of") 0.5, 1, 0.5, 0.5. Contrastive = 2 b(asked) - b(swapped)."""
    def score(dets):
        return evaluate(dets, POSITION, partial_credit="contrastive").score

    assert score([det("square", x=0), det("circle", x=36)]) == pytest.approx(1.5)  # 1 + (1 - 0.5)
    assert score([det("square", x=36), det("circle", x=0)]) == pytest.approx(0.0)  # 0.5 + (0.5 - 1)
    assert score([det("square", y=0), det("circle", y=36)]) == pytest.approx(0.5)  # neither relation
    assert score([det("circle", x=36)]) == pytest.approx(0.5)  # the square missing: no relation either way
    assert score([]) == 0.0
    # strict correctness does not depend on the mode
    assert evaluate([det("square", x=36), det("circle", x=0)], POSITION, partial_credit="contrastive").correct is False


def test_contrastive_credit_pays_for_the_binding_and_leaves_other_tags_bounded():
    """"a red square and a blue circle": exchanged colours earn 0 asked and 1 swapped; one colour for both 0.5 and
    0.5; the record's own colours 1 and 0. A record without a relation or two colours scores its bounded credit."""
    attr = {"tag": "color_attr", "include": [{"class": "square", "count": 1, "color": "red"},
                                            {"class": "circle", "count": 1, "color": "blue"}]}

    def score(sq, ci, meta=attr):
        return evaluate([det("square", color=sq), det("circle", x=36, color=ci)], meta,
                        partial_credit="contrastive").score

    assert score("red", "blue") == pytest.approx(2.0)
    assert score("blue", "red") == pytest.approx(-1.0)
    assert score("red", "red") == pytest.approx(0.5)  # 0.5 + (0.5 - 0.5)
    for meta in (TWO_OBJECT, {"tag": "colors", "include": [{"class": "square", "count": 1, "color": "blue"}]}):
        assert score("red", "blue", meta) == evaluate([det("square", color="red"), det("circle", x=36, color="blue")],
                                                      meta).score


def test_unknown_partial_credit_lists_the_rules():
    assert sorted(PARTIAL_CREDIT) == ["bounded", "contrastive", "flow_grpo"]
    with pytest.raises(ValueError, match=r"partial_credit='flow' is not a known rule; choose one of \['bounded', 'contrastive', 'flow_grpo'\]"):
        evaluate([], TWO_OBJECT, partial_credit="flow")
    with pytest.raises(ValueError, match=r"partial_credit='strict' is not a known rule"):
        GenEvalReward("shapes", partial_credit="strict")
    assert GenEvalReward("shapes", partial_credit="flow_grpo").__name__ == "geneval_flow_grpo"


def test_verdicts_use_the_callers_detections_without_detecting_again():
    """A detector that sees nothing: detected here, "a red square" is missing; given one kept red square it is
    correct, and the detector is never called. A detection list per image is required."""
    from PIL import Image

    calls = []
    reward = GenEvalReward(lambda im: calls.append(im) or [], strict=True, threshold=0.6, counting_threshold=0.9)
    red = {"tag": "single_object", "prompt": "a photo of a red square",
           "include": [{"class": "square", "count": 1, "color": "red"}]}
    image = Image.new("RGB", (8, 8))
    assert reward.verdicts([image], [red])[0].failure == "missing" and len(calls) == 1
    assert reward.verdicts([image], [red], [[det("square", score=0.7)]])[0].correct and len(calls) == 1
    with pytest.raises(ValueError, match="got 0 detection lists for 1 images"):
        reward.verdicts([image], [red], [])
