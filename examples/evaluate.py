"""Evaluate a text-to-image model: the shapes world, GenEval or DPG-Bench, plus preference metrics.

    python examples/evaluate.py                                  # shapes world: bundled base model, held-out split
    python examples/evaluate.py --model_name_or_path outputs/htgrpo --split heldout --images_per_prompt 4

    python examples/evaluate.py --benchmark geneval --metadata geneval/prompts/evaluation_metadata.jsonl \\
        --model_name_or_path Gen-Verse/MMaDA-8B-Base --vq_model_name_or_path showlab/magvitv2 --output_dir out/geneval
    python examples/evaluate.py --benchmark dpg --prompts ELLA/dpg_bench/prompts --questions ELLA/dpg_bench/dpg_bench.csv \\
        --model_name_or_path Alpha-VLLM/Lumina-DiMOO --image_size 512 --output_dir out/dpg --metrics imagereward,hpsv2

shapes   prints the per-tag table and ``overall``; writes ``results.json`` and ``samples.png``.
geneval  writes GenEval's layout (``D/<i:05d>/metadata.jsonl``, ``D/<i:05d>/samples/<k:04d>.png``), which GenEval's
         ``evaluation/evaluate_images.py`` scores unchanged, scores it in process (the backbone's detector,
         Mask2Former + CLIP for photographs) and prints GenEval's summary; writes ``results.jsonl`` (per image, as
         evaluate_images.py), ``results.json`` and ``samples.png``.
dpg      writes DPG-Bench's layout (``D/images/<item_id>.png``, the 2x2 grid of 4 images), scores it in process with a
         BLIP VQA model (not DPG-Bench's mPLUG-large: comparable between checkpoints, not to published numbers) and
         prints its L1/L2 category scores and DPG-Bench score; writes ``dpg_answers.jsonl``, ``results.json``,
         ``samples.png``.

Sampler settings default to the backbone's published ones; a rerun resumes (prompts whose images exist are not
drawn again); a folder holding another model's images is refused unless ``--overwrite``. docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from trl_htgrpo.evaluation import (
    DEFAULT_VQA_MODEL, BlipVQA, OutputFolderError, format_dpg_summary, format_geneval_summary, image_grid,
    load_for_evaluation, parse_metrics, read_dpg, read_metadata, run_dpg, run_geneval, run_manifest, sampler_settings,
    score_metrics,
)
from trl_htgrpo.evaluation.dpg import split_grid, grid_path

BENCHMARKS = ("shapes", "geneval", "dpg")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", default="shapes", choices=BENCHMARKS)
    p.add_argument("--model_name_or_path", default=None,
                   help="checkpoint folder, hub id or registered name (shapes: default the bundled base model)")
    p.add_argument("--vq_model_name_or_path", default=None,
                   help="VQ decoder when the checkpoint holds none (MMaDA: showlab/magvitv2)")
    p.add_argument("--image_size", type=int, default=None, help="image side where the backbone lets you choose "
                   "(Lumina-DiMOO: multiple of 16, default 1024); MMaDA's is fixed by its checkpoint (512)")
    g = p.add_argument_group("inputs")
    g.add_argument("--split", default="heldout", choices=["heldout", "validation", "train"], help="shapes: the split")
    g.add_argument("--metadata", default=None, help="geneval: GenEval's prompts/evaluation_metadata.jsonl (553 prompts)")
    g.add_argument("--prompts", default=None, help="dpg: DPG-Bench's dpg_bench/prompts/ folder (<item_id>.txt)")
    g.add_argument("--questions", default=None, help="dpg: DPG-Bench's dpg_bench/dpg_bench.csv")
    g.add_argument("--max_prompts", type=int, default=None, help="only the first N prompts (smoke runs)")
    g = p.add_argument_group("sampling (None: the backbone's published settings)")
    g.add_argument("--images_per_prompt", type=int, default=4, help="GenEval's 4; DPG-Bench's grid needs 4")
    g.add_argument("--sampler", default=None, help="unmasking rule: mmada, lumina_dimoo, maskgit")
    g.add_argument("--steps", type=int, default=None, help="diffusion steps T (MMaDA 15, Lumina-DiMOO 64, shapes 12)")
    g.add_argument("--guidance_scale", type=float, default=None, help="CFG w (MMaDA 3.5, Lumina-DiMOO 4.0, shapes 2.0)")
    g.add_argument("--temperature", type=float, default=None, help="softmax temperature (1.0)")
    g.add_argument("--reveal_noise", type=float, default=None, help="Gumbel noise scale of the reveal order (1.0)")
    g.add_argument("--mask_schedule", default=None, help="mask schedule (cosine)")
    g.add_argument("--seed", type=int, default=0, help="image k of prompt i is drawn with image_seed(seed, i*G + k)")
    g.add_argument("--batch_size", type=int, default=None,
                   help="images per sampler call (does not change the images); default 64 for shapes, else 16")
    g.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    g.add_argument("--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16")
    g = p.add_argument_group("scoring")
    g.add_argument("--metrics", default=None, help="preference rewards as metrics, comma separated: imagereward,"
                   "hpsv2,pickscore,clipscore,aesthetic (trl_htgrpo.rewards.REWARDS)")
    g.add_argument("--metric_options", type=json.loads, default={},
                   help='JSON per metric, e.g. \'{"clipscore": {"model_id": "DIR"}}\'')
    g.add_argument("--detector", default=None, help="geneval: detector name (default: the backbone's; mask2former)")
    g.add_argument("--detector_options", type=json.loads, default={},
                   help='geneval: JSON for the detector, e.g. \'{"model_id": ..., "clip_model_id": ..., "dtype": "bfloat16"}\'')
    g.add_argument("--vqa_model", default=DEFAULT_VQA_MODEL, help="dpg: a BlipForQuestionAnswering checkpoint")
    g.add_argument("--vqa_options", type=json.loads, default={}, help="dpg: JSON for BlipVQA (batch_size, dtype, ...)")
    g = p.add_argument_group("output")
    g.add_argument("--output_dir", default=None, help="default outputs/evaluate (shapes), outputs/<benchmark>")
    g.add_argument("--overwrite", action="store_true", help="replace a folder holding another run's images")
    g.add_argument("--no_progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    if a.benchmark == "geneval" and not a.metadata:
        p.error("--benchmark geneval needs --metadata (GenEval's prompts/evaluation_metadata.jsonl)")
    if a.benchmark == "dpg" and not (a.prompts and a.questions):
        p.error("--benchmark dpg needs --prompts (dpg_bench/prompts/) and --questions (dpg_bench/dpg_bench.csv)")
    if a.benchmark == "dpg" and a.images_per_prompt != 4:
        p.error(f"--benchmark dpg draws 4 images per prompt (its 2x2 grid); got --images_per_prompt {a.images_per_prompt}")
    if a.benchmark != "shapes" and a.model_name_or_path is None:
        p.error(f"--benchmark {a.benchmark} needs --model_name_or_path")
    if a.batch_size is None:
        a.batch_size = 64 if a.benchmark == "shapes" else 16
    if a.output_dir is None:
        a.output_dir = "outputs/evaluate" if a.benchmark == "shapes" else f"outputs/{a.benchmark}"
    try:
        a.metrics = parse_metrics(a.metrics)
    except ValueError as e:
        p.error(str(e))
    a.error = p.error
    return a


def sampling_of(a, backbone) -> dict:
    return sampler_settings(backbone, a.sampler, a.steps, a.guidance_scale, a.temperature, a.reveal_noise,
                            a.mask_schedule)


def shapes(a) -> dict:
    """Today's shapes-world evaluation: in memory, per-tag table, results.json and samples.png."""
    from trl_htgrpo.evaluation import evaluate_model
    from trl_htgrpo.toy import load_prompts

    loaded = load_for_evaluation(a.model_name_or_path or "shapes-mdm", a.vq_model_name_or_path, a.image_size,
                                 a.device, a.dtype)
    records = list(load_prompts(a.split))[: a.max_prompts]
    settings = sampling_of(a, loaded.backbone)
    keep = len(records) * a.images_per_prompt if a.metrics else 48
    t0 = time.time()
    res = evaluate_model(loaded.model, loaded.backbone, records, a.images_per_prompt, a.batch_size, seed=a.seed,
                         keep_images=keep, desc=None if a.no_progress else "shapes", **settings)
    seconds = time.time() - t0
    print(f"{'tag':<15}{'accuracy':>9}")
    for tag, acc in res["tags"].items():
        print(f"{tag:<15}{acc:>9.3f}")
    print(f"{'overall':<15}{res['overall']:>9.3f}   ({res['num_images']} images, {seconds:.0f} s)")
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples = res.pop("samples")
    if a.metrics:
        res["metrics"], _ = score_metrics(a.metrics, [s[0] for s in samples], [s[1] for s in samples], a.metric_options,
                                          desc=None if a.no_progress else "metrics")
    image_grid(samples[:48]).save(out / "samples.png")
    meta = {"model": a.model_name_or_path or "shapes-mdm (bundled)", "split": a.split,
            "images_per_prompt": a.images_per_prompt, "seconds": seconds, "sampler": settings}
    (out / "results.json").write_text(json.dumps({**res, **meta}, indent=1))
    print(f"wrote {out / 'results.json'} and {out / 'samples.png'}")
    return {**res, **meta}


def geneval(a) -> dict:
    try:
        records = read_metadata(a.metadata)[: a.max_prompts]
    except (OSError, ValueError) as e:
        a.error(str(e))
    loaded = load(a)
    settings = sampling_of(a, loaded.backbone)
    manifest = run_manifest("geneval", loaded, settings, a.seed, a.images_per_prompt, metadata=str(a.metadata),
                            vq_model_name_or_path=a.vq_model_name_or_path, detector=a.detector)
    from trl_htgrpo.rewards import GenEvalReward

    reward = GenEvalReward(a.detector, strict=True, detector_options=a.detector_options or None)
    t0 = time.time()
    try:
        res = run_geneval(loaded.model, loaded.backbone, records, a.output_dir, manifest=manifest,
                          images_per_prompt=a.images_per_prompt, seed=a.seed, batch_size=a.batch_size, reward=reward,
                          overwrite=a.overwrite, progress=not a.no_progress, **settings)
    except OutputFolderError as e:
        a.error(str(e))
    print(format_geneval_summary(res))
    rows, samples = res.pop("rows"), res.pop("samples")
    return finish(a, res, samples, [r["prompt"] for r in rows], [r["filename"] for r in rows], manifest, settings, t0,
                  f"official scorer: python evaluation/evaluate_images.py {a.output_dir} --outfile <RESULTS>/results.jsonl "
                  "--model-path <MASK2FORMER_FOLDER>; python evaluation/summary_scores.py <RESULTS>/results.jsonl")


def dpg(a) -> dict:
    try:
        items = read_dpg(a.prompts, a.questions)[: a.max_prompts]
    except (OSError, ValueError) as e:
        a.error(str(e))
    loaded = load(a)
    settings = sampling_of(a, loaded.backbone)
    manifest = run_manifest("dpg", loaded, settings, a.seed, 4, prompts=str(a.prompts), questions=str(a.questions),
                            vq_model_name_or_path=a.vq_model_name_or_path, vqa_model=a.vqa_model)
    vqa = BlipVQA(a.vqa_model, **a.vqa_options)
    t0 = time.time()
    try:
        res = run_dpg(loaded.model, loaded.backbone, items, a.output_dir, vqa, manifest=manifest, seed=a.seed,
                      batch_size=a.batch_size, overwrite=a.overwrite, progress=not a.no_progress, **settings)
    except OutputFolderError as e:
        a.error(str(e))
    print(format_dpg_summary(res))
    res.pop("results")
    samples = res.pop("samples")
    res["vqa_model"] = a.vqa_model
    prompts, tiles = [], []
    for item in items:
        for k in range(4):
            prompts.append(item.prompt)
            tiles.append(lambda p=grid_path(a.output_dir, item.item_id), k=k: _tile(p, k))
    return finish(a, res, samples, prompts, tiles, manifest, settings, t0,
                  f"official scorer (mPLUG-large): bash dpg_bench/dist_eval.sh {Path(a.output_dir) / 'images'} "
                  f"{res['resolution']}")


def _tile(path, k):
    from PIL import Image

    with Image.open(path) as g:
        return split_grid(g.convert("RGB"))[k]


def load(a):
    try:
        return load_for_evaluation(a.model_name_or_path, a.vq_model_name_or_path, a.image_size, a.device, a.dtype)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        if "--vq_model_name_or_path" in str(e) or "image_size" in str(e):
            a.error(str(e))
        raise


def finish(a, res, samples, prompts, images, manifest, settings, t0, official) -> dict:
    out = Path(a.output_dir)
    if a.metrics:
        res["metrics"], per_image = score_metrics(a.metrics, prompts, images, a.metric_options,
                                                  desc=None if a.no_progress else "metrics")
        with open(out / "metrics.jsonl", "w") as fh:
            for j, p in enumerate(prompts):
                fh.write(json.dumps({"prompt": p, **{m: per_image[m][j] for m in a.metrics}}) + "\n")
        for m, s in res["metrics"].items():
            print(f"{m:<12} mean {s['mean']:.4f}  std {s['std']:.4f}  (n={s['n']})")
    res.update(model=a.model_name_or_path, sampler=settings, seed=a.seed, seconds=time.time() - t0,
               identity=manifest["identity"])
    image_grid(samples, columns=8, size=192, lines=3).save(out / "samples.png")
    (out / "results.json").write_text(json.dumps(res, indent=1))
    print(f"wrote {out / 'results.json'} and {out / 'samples.png'}\n{official}")
    return res


def main(argv=None) -> dict:
    a = parse_args(argv)
    return {"shapes": shapes, "geneval": geneval, "dpg": dpg}[a.benchmark](a)


if __name__ == "__main__":
    main(sys.argv[1:])
