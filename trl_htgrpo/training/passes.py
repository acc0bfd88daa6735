"""Counting model passes (rows and tokens) by phase: rollout, old, reference and policy log-probs."""

from __future__ import annotations

from collections import Counter


class PassCounter:
    """Cumulative training model passes of this process, in sequences (rows) and tokens, by phase.

    ``rollout`` counts the sampler's forwards (T per image, twice with guidance), ``old`` / ``ref`` / ``policy``
    the log-prob forwards (``policy`` also its backwards). Per rollout batch and per optimizer update they are
    logged as ``passes/<phase>_<forwards|backwards|tokens>_per_rollout|_per_update``.
    """

    def __init__(self):
        self.counts: Counter = Counter()
        self.rollouts = 0  # training rollout batches counted
        self.first_update: int | None = None  # global step when counting began (a resumed run starts above 0)

    def count(self, phase: str, rows: int, tokens: int, backward: bool = False) -> None:
        self.counts[f"{phase}_forwards"] += rows
        self.counts[f"{phase}_tokens"] += tokens
        if backward:
            self.counts[f"{phase}_backwards"] += rows

    def start_rollout(self, global_step: int) -> None:
        if self.first_update is None:
            self.first_update = global_step
        self.rollouts += 1

    def logs(self, global_step: int) -> dict[str, float]:
        if not self.rollouts:
            return {}
        out = {}
        updates = global_step - (self.first_update or 0)
        for key, value in sorted(self.counts.items()):
            out[f"passes/{key}_per_rollout"] = value / self.rollouts
            if updates:
                out[f"passes/{key}_per_update"] = value / updates
        return out
