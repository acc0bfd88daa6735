"""GenEval-style evaluation of a text-to-image masked-diffusion model on a prompt split."""

from __future__ import annotations

import math
import zlib
from typing import Any, Sequence

import torch
from PIL import Image, ImageDraw

from .diffusion.sampler import sample_images
from .rewards import GenEvalReward
from .rewards.geneval_rules import summarize


def image_seed(seed: int, index: int) -> int:
    """The sampler seed of evaluation image ``index`` (its position in the list of images of a run)."""
    return zlib.crc32(f"eval-{seed}-{index}".encode())


def read_metadata(path: str) -> list[dict[str, Any]]:
    """GenEval metadata (one JSON object per line: tag, include, exclude?, prompt) -> records; a malformed line
    raises ``ValueError`` naming the file, the line number and the field."""
    import json

    from .rewards.geneval_rules import validate_metadata

    records = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON object, got {type(record).__name__}")
                for key in ("tag", "prompt", "include"):
                    if key not in record:
                        raise ValueError(f"field {key!r} is missing")
                validate_metadata(record)
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}, line {n}: {e}") from e
            records.append(record)
    return records


def sample_verdicts(model, backbone, metas, batch_size, seeds, reward, desc=None, **sampler_kwargs):
    """Images and GenEval verdicts of one image per metadata record, image i drawn with ``seeds[i]``; a progress
    bar over the images when ``desc`` is given."""
    from tqdm.auto import tqdm

    images: list[Image.Image] = []
    bar = tqdm(total=len(metas), desc=desc, unit="image", disable=desc is None, leave=False)
    for i in range(0, len(metas), batch_size):
        chunk = metas[i : i + batch_size]
        traj = sample_images(model, backbone, backbone.encode_prompts([m["prompt"] for m in chunk]),
                             seeds=seeds[i : i + batch_size], **sampler_kwargs)
        images += backbone.decode_images(traj.codes)
        bar.update(len(chunk))
    bar.close()
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
    **sampler_kwargs,
) -> dict[str, Any]:
    """Sample ``images_per_prompt`` images per metadata record and score them with GenEval's rules.

    Returns ``{"overall", "tags", "num_images"}`` and, when ``keep_images > 0``, ``"samples"``: the
    first ``keep_images`` (prompt, PIL image, correct) triples.
    """
    reward = reward or GenEvalReward(strict=True)
    reward.bind_backbone(backbone)
    was_training = model.training
    model.eval()
    metas = [r for r in records for _ in range(images_per_prompt)]
    seeds = [image_seed(seed, i) for i in range(len(metas))]
    images, verdicts = sample_verdicts(model, backbone, metas, batch_size, seeds, reward, **sampler_kwargs)
    model.train(was_training)
    out = summarize([m["tag"] for m in metas], [v.correct for v in verdicts])
    out["num_images"] = len(images)
    if keep_images:
        out["samples"] = [(m["prompt"], im, v.correct) for m, im, v in list(zip(metas, images, verdicts))[:keep_images]]
    return out


def image_grid(samples: Sequence[tuple[str, Image.Image, bool]], columns: int = 8, scale: int = 3) -> Image.Image:
    """A labelled grid of (prompt, image, correct) samples; a green or red frame marks correctness."""
    w, h = samples[0][1].size
    cw, ch = w * scale + 8, h * scale + 40
    rows = math.ceil(len(samples) / columns)
    grid = Image.new("RGB", (columns * cw, rows * ch), "white")
    draw = ImageDraw.Draw(grid)
    for k, (prompt, img, ok) in enumerate(samples):
        x, y = (k % columns) * cw, (k // columns) * ch
        draw.rectangle([x + 1, y + 1, x + cw - 2, y + h * scale + 6], outline="green" if ok else "red", width=3)
        grid.paste(img.resize((w * scale, h * scale), Image.NEAREST), (x + 4, y + 4))
        text = prompt.removeprefix("a photo of ")
        draw.text((x + 4, y + h * scale + 8), text[:24], fill="black")
        draw.text((x + 4, y + h * scale + 20), text[24:48], fill="black")
    return grid


@torch.no_grad()
def evaluate_trainer(trainer, records: Sequence[dict[str, Any]], images_per_prompt: int = 2, seed: int = 0,
                     batch_size: int = 64, desc: str | None = None) -> dict[str, Any]:
    """:func:`evaluate_model` for the model inside a running trainer: every process samples its shard
    of the records (inside TRL's ``unwrap_model_for_generation``, so ZeRO-3 weights are gathered),
    and the verdicts are gathered, so all processes return the same summary.

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
        _, verdicts = sample_verdicts(model, trainer.backbone, padded, batch_size, seeds, reward,
                                      desc=desc if acc.is_main_process else None, **trainer.sampling)
    verdicts = verdicts[: len(shard)]
    rows = gather_object([(m["tag"], v.correct) for m, v in zip(shard, verdicts)])
    out = summarize([t for t, _ in rows], [c for _, c in rows])
    out["num_images"] = len(rows)
    return out
