"""Pretrain the shapes world's base model with the masked-diffusion objective.

    python examples/pretrain_shapes.py                      # rebuilds the bundled weights (~25 min, 2 cores)
    python examples/pretrain_shapes.py --steps 20 --output_dir /tmp/shapes-smoke

Writes model (safetensors), config, tokenizer and ``pretrain_log.json`` to ``--output_dir``
(default: the package's bundled folder).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import torch

from trl_htgrpo.backbones import backbone_for
from trl_htgrpo.toy import ShapesDiffusionConfig, ShapesDiffusionModel
from trl_htgrpo.toy.pretrain import PretrainArgs, pretrain
from trl_htgrpo.toy.bundled import BUNDLED_DIR
from trl_htgrpo.toy.tokenizer import build_tokenizer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(PretrainArgs):
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    parser.add_argument("--output_dir", default=str(BUNDLED_DIR))
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--num_hidden_layers", type=int, default=4)
    parser.add_argument("--num_attention_heads", type=int, default=4)
    ns = parser.parse_args(argv)
    args = PretrainArgs(**{f.name: getattr(ns, f.name) for f in fields(PretrainArgs)})

    torch.manual_seed(args.seed)
    tokenizer = build_tokenizer()
    config = ShapesDiffusionConfig(
        vocab_size=len(tokenizer), hidden_size=ns.hidden_size, num_hidden_layers=ns.num_hidden_layers,
        num_attention_heads=ns.num_attention_heads, intermediate_size=4 * ns.hidden_size,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, mask_token_id=tokenizer.mask_token_id,
    )
    model = ShapesDiffusionModel(config)
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")
    history = pretrain(model, backbone_for(model, tokenizer), args)
    out = Path(ns.output_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "pretrain_log.json").write_text(json.dumps({"args": vars(ns), "history": history}, indent=1))
    print(f"saved to {out}")


if __name__ == "__main__":
    main()
