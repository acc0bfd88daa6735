"""Mask schedules: gamma(r) and the per-step counts of still-masked tokens."""

import math

import pytest
import torch

from trl_htgrpo.diffusion.schedules import mask_ratio, masked_counts


def test_mask_ratio_values():
    # cosine: cos(pi r / 2); linear: 1 - r
    assert mask_ratio(0.0).item() == 1.0
    assert mask_ratio(1.0).item() == pytest.approx(0.0, abs=1e-15)
    assert mask_ratio(0.5).item() == pytest.approx(math.sqrt(0.5), abs=1e-12)
    assert mask_ratio(0.25, "linear").item() == 0.75
    r = torch.tensor([0.0, 0.5, 1.0])
    assert mask_ratio(r, "linear").tolist() == [1.0, 0.5, 0.0]
    assert mask_ratio(r).dtype == torch.float64


def test_mask_ratio_unknown_schedule():
    with pytest.raises(ValueError, match=r"unknown mask schedule 'arccos'; choose one of \['cosine', 'linear'\]"):
        mask_ratio(0.5, "arccos")
    with pytest.raises(ValueError, match="unknown mask schedule"):
        masked_counts(8, 4, "arccos")


def test_masked_counts_by_hand():
    # linear, 8 tokens, 4 steps: floor(8 * (1 - t/4)) for t = 1..4
    assert masked_counts(8, 4, "linear") == [6, 4, 2, 0]
    # cosine, 144 tokens, 12 steps: floor(144 cos(pi t / 24)); the first is floor(144 * 0.99144) = floor(142.77)
    counts = masked_counts(144, 12, "cosine")
    assert counts[0] == 142 == math.floor(144 * math.cos(math.pi / 24))
    assert counts == [142, 139, 133, 124, 114, 101, 87, 72, 55, 37, 18, 0]
    assert counts == [math.floor(144 * math.cos(math.pi * t / 24)) for t in range(1, 13)]
    # cosine, 144 tokens, 4 steps: 144 cos(pi/8) = 133.04, 144 cos(pi/4) = 101.82, 144 cos(3 pi/8) = 55.11
    assert masked_counts(144, 4) == [133, 101, 55, 0]


def test_masked_counts_reveals_at_least_one_token_per_step():
    # cosine, 100 steps over 144 tokens: step 2 would keep floor(144 cos(0.01 pi)) = floor(143.93) = 143
    # masked, as step 1 did; it is forced down to 142.
    counts = masked_counts(144, 100)
    assert counts[:3] == [143, 142, 141]
    assert masked_counts(144, 144) == list(range(143, -1, -1))  # one token per step
    assert masked_counts(5, 5, "linear") == [4, 3, 2, 1, 0]
    assert masked_counts(1, 1) == [0]
    assert masked_counts(144, 1) == [0]  # everything at once


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("num_tokens", [1, 2, 3, 7, 16, 144])
def test_masked_counts_invariants(schedule, num_tokens):
    steps_list = range(1, num_tokens + 1) if num_tokens <= 16 else (1, 2, 3, 12, 16, 50, 99, 143, 144)
    for steps in steps_list:
        counts = masked_counts(num_tokens, steps, schedule)
        assert len(counts) == steps
        assert all(isinstance(c, int) for c in counts)
        assert counts[-1] == 0
        prev = [num_tokens] + counts[:-1]
        assert all(p - c >= 1 for p, c in zip(prev, counts)), (steps, counts)  # strictly decreasing from N
        assert sum(p - c for p, c in zip(prev, counts)) == num_tokens  # every token revealed once


@pytest.mark.parametrize("steps", [0, -1, 9, 100])
def test_invalid_steps_raise(steps):
    with pytest.raises(ValueError, match=r"steps must lie in \[1, 8\] \(the number of image tokens\), got %d" % steps):
        masked_counts(8, steps)
