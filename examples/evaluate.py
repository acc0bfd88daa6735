"""GenEval-style evaluation of a shapes-world model.

    python examples/evaluate.py                                  # bundled base model, held-out split
    python examples/evaluate.py --model_name_or_path outputs/htgrpo --split heldout --images_per_prompt 4

Prints the per-tag table and ``overall``; writes ``results.json`` (``overall``, ``tags``) and
``samples.png`` (a grid of samples with their prompts, framed green when correct) to ``--output_dir``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from trl_htgrpo.backbones import backbone_for
from trl_htgrpo.evaluation import evaluate_model, image_grid
from trl_htgrpo.toy import load_prompts
from trl_htgrpo.toy.bundled import load_base_model
from trl_htgrpo.toy.recipes import SHAPES_RL


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name_or_path", default=None, help="folder of a saved model (default: the bundled base model)")
    p.add_argument("--split", default="heldout", choices=["heldout", "validation", "train"])
    p.add_argument("--images_per_prompt", type=int, default=4)
    p.add_argument("--output_dir", default="outputs/evaluate")
    p.add_argument("--steps", type=int, default=SHAPES_RL["diffusion_steps"], help="diffusion steps T")
    p.add_argument("--guidance_scale", type=float, default=SHAPES_RL["guidance_scale"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_prompts", type=int, default=None, help="evaluate only the first N prompts (smoke runs)")
    a = p.parse_args(argv)

    model, tokenizer = load_base_model(a.model_name_or_path)
    records = list(load_prompts(a.split))[: a.max_prompts]
    t0 = time.time()
    res = evaluate_model(model, backbone_for(model, tokenizer), records, a.images_per_prompt, seed=a.seed,
                         keep_images=48, steps=a.steps, guidance_scale=a.guidance_scale)
    seconds = time.time() - t0
    print(f"{'tag':<15}{'accuracy':>9}")
    for tag, acc in res["tags"].items():
        print(f"{tag:<15}{acc:>9.3f}")
    print(f"{'overall':<15}{res['overall']:>9.3f}   ({res['num_images']} images, {seconds:.0f} s)")
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    image_grid(res.pop("samples")).save(out / "samples.png")
    meta = {"model": a.model_name_or_path or "shapes-mdm (bundled)", "split": a.split,
            "images_per_prompt": a.images_per_prompt, "seconds": seconds}
    (out / "results.json").write_text(json.dumps({**res, **meta}, indent=1))
    print(f"wrote {out / 'results.json'} and {out / 'samples.png'}")


if __name__ == "__main__":
    main()
