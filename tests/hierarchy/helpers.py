"""A hand-made Trajectory for the hierarchy rules."""

from types import SimpleNamespace

import torch

from trl_htgrpo.diffusion.sampler import Trajectory


def traj(reveal, confidence=None, masked_entropy=None, entropy=None):
    reveal = torch.as_tensor(reveal)
    B, N = reveal.shape
    T = int(reveal.max()) + 1
    return Trajectory(
        codes=torch.zeros(B, N, dtype=torch.long), reveal_step=reveal,
        confidence=torch.full((B, N), 0.5) if confidence is None else torch.as_tensor(confidence),
        entropy=torch.zeros(B, N) if entropy is None else torch.as_tensor(entropy),
        masked_entropy=torch.ones(B, T) if masked_entropy is None else torch.as_tensor(masked_entropy),
    )


def args(**kw):
    base = dict(entropy_threshold=0.5, structure_fraction=0.3, structure_weight=2.0, credit_strength=1.0,
                credit_signal="earliness")
    base.update(kw)
    return SimpleNamespace(**base)
