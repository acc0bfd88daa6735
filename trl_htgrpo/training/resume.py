"""What an exact resume needs beyond TRL's checkpoint: the buffered generation batch (TRL reuses one rollout batch for
num_iterations x steps_per_generation micro-steps, so a checkpoint can fall inside one), TRL's micro-step counter,
the sampler's rollout counters (they seed every image) and the pass counts. One file per process."""

from __future__ import annotations

import os

import torch


def state_file(folder: str, process_index: int) -> str:
    return os.path.join(folder, f"htgrpo_state_{process_index}.pt")


def save_run_state(trainer, folder: str) -> None:
    state = {"step": trainer._step, "buffered_inputs": trainer._buffered_inputs, "rollouts": dict(trainer._rollouts),
             "passes": dict(trainer.passes.__dict__)}
    torch.save(state, state_file(folder, trainer.accelerator.process_index))


def load_run_state(trainer, folder: str) -> bool:
    """Restore the state saved in ``folder``; False when the checkpoint has none (e.g. written by another trainer)."""
    path = state_file(folder, trainer.accelerator.process_index)
    if not os.path.exists(path):
        return False
    state = torch.load(path, map_location=trainer.accelerator.device, weights_only=False)
    trainer._step, trainer._buffered_inputs = state["step"], state["buffered_inputs"]
    trainer._rollouts.update(state["rollouts"])
    trainer.passes.__dict__.update(state["passes"])
    return True
