"""GenEval of a model on a prompt split without writing files: the shapes benchmark and the training job's
evaluation before and after training (:func:`evaluate_trainer`, every process its shard)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from PIL import Image

from ..rewards import GenEvalReward
from ..rewards.geneval_rules import summarize
from .failures import failure_table, swapped_verdicts
from .sampling import draw_images, image_seed


def sample_images(model, backbone, prompts, batch_size, seeds, desc=None, **sampler_kwargs) -> list[Image.Image]:
    """One image per prompt, image i drawn with ``seeds[i]``; a progress bar over the images (with the time left)
    when ``desc`` is given."""
    from tqdm.auto import tqdm

    images: list[Image.Image] = []
    bar = tqdm(total=len(prompts), desc=desc, unit="image", disable=desc is None, leave=False)
    for _, batch in draw_images(model, backbone, list(prompts), seeds, batch_size, **sampler_kwargs):
        images += batch
        bar.update(len(batch))
    bar.close()
    return images


def sample_verdicts(model, backbone, metas, batch_size, seeds, reward, desc=None, **sampler_kwargs):
    """Images (:func:`sample_images`, one per metadata record) and their GenEval verdicts."""
    images = sample_images(model, backbone, [m["prompt"] for m in metas], batch_size, seeds, desc, **sampler_kwargs)
    return images, reward.verdicts(images, metas)


@torch.no_grad()
def evaluate_model(
    model,
    backbone,
    records: Sequence[dict[str, Any]],
    images_per_prompt: int = 4,
    batch_size: int = 64,
    seed: int = 0,
    reward: GenEvalReward | None = None,
    keep_images: int = 0,
    desc: str | None = None,
    **sampler_kwargs,
) -> dict[str, Any]:
    """Sample ``images_per_prompt`` images per metadata record and score them with GenEval's rules.

    Returns ``{"overall", "tags", "num_images"}`` and, when ``keep_images > 0``, ``"samples"``: the
    first ``keep_images`` (prompt, PIL image, correct) triples. Image ``k`` of record ``i`` is drawn with
    ``image_seed(seed, i * images_per_prompt + k)``, as :func:`~trl_htgrpo.evaluation.run_geneval` draws it.
    """
    reward = reward or GenEvalReward(strict=True)
    reward.bind_backbone(backbone)
    was_training = model.training
    model.eval()
    metas = [r for r in records for _ in range(images_per_prompt)]
    seeds = [image_seed(seed, i) for i in range(len(metas))]
    images, verdicts = sample_verdicts(model, backbone, metas, batch_size, seeds, reward, desc=desc, **sampler_kwargs)
    model.train(was_training)
    out = summarize([m["tag"] for m in metas], [v.correct for v in verdicts])
    out["num_images"] = len(images)
    if keep_images:
        out["samples"] = [(m["prompt"], im, v.correct) for m, im, v in list(zip(metas, images, verdicts))[:keep_images]]
    return out


@torch.no_grad()
def evaluate_trainer(trainer, records: Sequence[dict[str, Any]], images_per_prompt: int = 2, seed: int = 0,
                     batch_size: int = 64, desc: str | None = None, failures: bool = False) -> dict[str, Any]:
    """:func:`evaluate_model` for the model inside a running trainer: every process samples its shard
    of the records (inside TRL's ``unwrap_model_for_generation``, so ZeRO-3 weights are gathered),
    and the verdicts are gathered, so all processes return the same summary. ``desc``: a progress bar with the
    time left on the main process. ``failures``: also ``"failures"``, the
    :func:`~trl_htgrpo.evaluation.failures.failure_table` of the same images (each image detected once, its
    detections gathered with its verdict), with each image's verdict against its swapped record.

    Every process makes the same sampler calls: shards are padded to equal length (the padding is
    sampled and dropped). Under ZeRO-3 each forward is a collective (parameter fetches, and DeepSpeed's
    start-of-forward trace check, which ``unwrap_model_for_generation`` leaves installed), so a process
    with fewer batches, or an empty shard, would hang the others. Before ``train()`` there is no
    DeepSpeed engine to fetch ZeRO-3 parameters layer by layer, so they are always gathered then."""
    from accelerate.utils import gather_object
    from trl.models import unwrap_model_for_generation

    acc, args = trainer.accelerator, trainer.args
    metas = [r for r in records for _ in range(images_per_prompt)]
    index = list(range(len(metas)))[acc.process_index :: acc.num_processes]
    shard = [metas[i] for i in index]
    extra = -(-len(metas) // acc.num_processes) - len(shard)
    padded, seeds = shard + metas[:1] * extra, [image_seed(seed, i) for i in index] + [0] * extra
    reward = GenEvalReward(strict=True)
    reward.bind_backbone(trainer.backbone)
    gather = args.ds3_gather_for_generation or trainer.model_wrapped is trainer.model  # no engine yet
    with unwrap_model_for_generation(trainer.model_wrapped, acc, gather_deepspeed3_params=gather) as model:
        images = sample_images(model, trainer.backbone, [m["prompt"] for m in padded], batch_size, seeds,
                               desc=desc if acc.is_main_process else None, **trainer.sampling)
    images = images[: len(shard)]
    detections = reward.detect(images) if failures else None  # detected once: the verdicts and the table read them
    verdicts = reward.verdicts(images, shard, detections)
    every_meta, every_verdict = gather_object(shard), gather_object(verdicts)  # all processes', in process order
    out = summarize([m["tag"] for m in every_meta], [v.correct for v in every_verdict])
    out["num_images"] = len(every_verdict)
    if failures:
        swapped = gather_object(swapped_verdicts(reward, images, shard, detections))
        out["failures"] = failure_table(every_meta, every_verdict, gather_object(detections), reward.threshold,
                                        reward.counting_threshold, swapped)
    return out
