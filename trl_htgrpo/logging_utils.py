"""Image logging to the trackers named in ``report_to`` (TensorBoard, trackio, wandb) and to disk."""

from __future__ import annotations

import os

import numpy as np


def log_image_grid(trainer, samples, step: int) -> None:
    """Log a labelled grid of (prompt, PIL image) rollout samples at ``step``."""
    from .evaluation import image_grid

    grid = image_grid([(p if isinstance(p, str) else str(p), im, True) for p, im in samples], columns=8)
    out = os.path.join(trainer.args.output_dir, "samples")
    os.makedirs(out, exist_ok=True)
    grid.save(os.path.join(out, f"step-{step:06d}.png"))
    report_to = trainer.args.report_to or []
    for cb in trainer.callback_handler.callbacks:
        name = type(cb).__name__
        if name == "TensorBoardCallback" and getattr(cb, "tb_writer", None) is not None:
            cb.tb_writer.add_image("samples", np.asarray(grid), step, dataformats="HWC")
            cb.tb_writer.flush()
        elif name == "WandbCallback" and getattr(cb, "_wandb", None) is not None and cb._wandb.run is not None:
            cb._wandb.log({"samples": cb._wandb.Image(grid), "train/global_step": step})
    if "trackio" in report_to:
        import trackio

        trackio.log({"samples": trackio.Image(grid)}, step=step)
