"""One rollout batch as HT-GRPO sees it, from the sampler's trajectory to the inputs of TRL's loss.

The path of a rollout batch (B local images, C contexts, K inner iterations, N image tokens)::

    trajectory = sample_images(...)                      # what was drawn, when, how confidently
    structure  = partition(trajectory)                   # (B, N) structure / refinement tokens
    weights    = credit(trajectory, structure)           # (B, N) w_{g,i}, mean 1 per image
    candidates = stage_candidates(stages, structure)     # (B, K, N) tokens iteration k may train
    plan       = estimator.plan(...)                     # contexts (B, C, N), loss_mask (B, K, C, N)

:func:`build_rollout` runs it and returns a :class:`RolloutBatch`. Its completion, as TRL sees it, is the image
scored in each of the C contexts: ``C * N`` tokens, context-major (``completion_ids`` (B, C * N)), so TRL's old
and reference log-probs come back as (B, C * N) and iteration k's loss is TRL's loss on those (context, token)
pairs that ``plan.loss_mask[:, k]`` selects, with per-token advantages ``A_g * w_{g,i}``
(:func:`loss_inputs`). The batch travels through TRL's buffer as batch-first tensors under the ``ht_`` keys
(:meth:`RolloutBatch.to_inputs` / :meth:`RolloutBatch.from_inputs`), so TRL's shuffling and splitting keep
every row's plan with its row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Sequence

import torch

from .diffusion.estimators import Estimator, EstimatorPlan, image_seeds
from .diffusion.sampler import Trajectory
from .hierarchy import Credit, Partition, stage_candidates


@dataclass
class RolloutBatch:
    """Everything HT-GRPO knows about one rollout batch, batch-first."""

    trajectory: Trajectory  # codes, reveal steps, confidences and entropies of the B images
    structure: torch.Tensor  # (B, N) bool: structure tokens
    weights: torch.Tensor  # (B, N) float: credit weights, mean 1 per image
    plan: EstimatorPlan  # contexts (B, C, N), loss_mask (B, K, C, N)
    seeds: torch.Tensor  # (B,) long: per-image seeds of the plan's and the scoring's random draws
    loss_tokens: torch.Tensor  # (B, K) float: loss tokens of iteration k in the whole global batch (same in every row)

    _PREFIX = "ht_"

    @property
    def num_contexts(self) -> int:
        return self.plan.num_contexts

    def to_inputs(self) -> dict[str, torch.Tensor]:
        """The batch as batch-first tensors for TRL's generation batch (keys ``ht_*``)."""
        out = {f"{self._PREFIX}traj_{f.name}": getattr(self.trajectory, f.name) for f in fields(Trajectory)}
        out.update({f"{self._PREFIX}structure": self.structure, f"{self._PREFIX}weights": self.weights,
                    f"{self._PREFIX}contexts": self.plan.contexts, f"{self._PREFIX}loss_mask": self.plan.loss_mask,
                    f"{self._PREFIX}seeds": self.seeds, f"{self._PREFIX}loss_tokens": self.loss_tokens})
        return out

    @classmethod
    def from_inputs(cls, inputs: dict[str, Any]) -> "RolloutBatch":
        """The rows of a (shuffled, split) TRL batch, back as a :class:`RolloutBatch`."""
        p = cls._PREFIX
        traj = Trajectory(**{f.name: inputs[f"{p}traj_{f.name}"] for f in fields(Trajectory)})
        return cls(traj, inputs[f"{p}structure"], inputs[f"{p}weights"],
                   EstimatorPlan(inputs[f"{p}contexts"], inputs[f"{p}loss_mask"]), inputs[f"{p}seeds"],
                   inputs[f"{p}loss_tokens"])

    def completion_ids(self, backbone) -> torch.Tensor:
        """(B, C * N) vocabulary ids: the image once per context, context-major."""
        return backbone.codes_to_ids(self.trajectory.codes).repeat(1, self.num_contexts)


def build_rollout(
    traj: Trajectory,
    partition: Partition,
    credit: Credit,
    estimator: Estimator,
    stages: Sequence[str],
    run_seed: int,
    gather=None,
) -> RolloutBatch:
    """The rollout's partition, credit weights and plan (see the module docstring). ``gather`` sums the loss-token
    counts over processes (``accelerator.gather``); None on one process."""
    structure = partition(traj)  # (B, N)
    weights = credit(traj, structure)  # (B, N)
    candidates = stage_candidates(stages, structure)  # (B, K, N)
    seeds = image_seeds(traj.codes, run_seed)
    plan = estimator.plan(traj, structure, candidates, stages, seeds)
    local = plan.loss_mask.flatten(2).sum(-1).sum(0).float()  # (K,) loss tokens of this process
    total = gather(local[None]).sum(0) if gather is not None else local  # (K,) all processes
    B = structure.shape[0]
    seeds_t = torch.tensor(seeds, dtype=torch.long, device=structure.device)
    return RolloutBatch(traj, structure, weights, plan, seeds_t, total[None].expand(B, -1).contiguous())


def loss_inputs(inputs: dict[str, Any], rollout: RolloutBatch, k: int) -> dict[str, Any]:
    """TRL's loss inputs for inner iteration k: the loss on the (context, token) pairs of ``plan.loss_mask[:, k]``
    (B, C * N), per-token advantages ``A_g * w_{g,i}`` repeated over contexts (B, C * N), and the count of loss
    tokens of iteration k in the global batch (TRL's ``num_items_in_batch``, read by ``loss_type="dapo"``)."""
    C = rollout.num_contexts
    out = dict(inputs)
    out["completion_mask"] = rollout.plan.loss_mask[:, k].flatten(1).long()  # (B, C * N)
    out["advantages"] = inputs["advantages"][:, None] * rollout.weights.repeat(1, C)  # (B, C * N)
    out["num_items_in_batch"] = rollout.loss_tokens[0, k]
    return out
