"""Rollout throughput of our sampler against the published MMaDA and Lumina-DiMOO loops, and one HT-GRPO update.

    python benchmarks/rollout_throughput.py                         # cpu-tiny: about a minute on 2 cores
    python benchmarks/rollout_throughput.py --preset smoke          # the test's: a few seconds
    python benchmarks/rollout_throughput.py --preset gpu-8b         # one GPU: 8B-shaped random LLaDA in bf16
    python benchmarks/rollout_throughput.py --preset gpu-8b --estimate_only   # FLOPs and memory, no model built
    python benchmarks/rollout_throughput.py --set mmada.images=8 --set 'update.group_sizes=[4, 8]'

Same random model, steps and guidance on both sides of each comparison, measured in the same run, interleaved:

* ``ours``: :func:`~trl_htgrpo.diffusion.sample_images` with the family's backbone and unmasking rule
  (``sampler="mmada"`` / ``"lumina_dimoo"``): all B images in one loop, the conditional and unconditional rows in
  one forward, per-image generators, the native LLaDA asked for the image logits only (N positions x 8192 codes).
* ``published``: the restatements in :mod:`trl_htgrpo.diffusion.published` calling the model as the published code
  does, full logits over the whole sequence and vocabulary: MMaDA's ``t2i_generate`` (the B images batched, one
  forward of 2B rows, guidance on the full logits, one generator) and Lumina-DiMOO's ``generate_image`` (batch size
  1, separate conditional and unconditional forwards through its ``infer=True`` wrapper, a one-token probe of the
  vocabulary size, one image after the other).
* ``update``: one optimizer step of :class:`~trl_htgrpo.HTGRPOTrainer` on G images of one prompt (LoRA via peft
  ``target_modules="all-linear"``, which leaves the head out; gradient checkpointing; MaskGRPO's optimizer
  settings), timed on the steps after the first (the first also draws the rollout), with peak memory:
  ``torch.cuda.max_memory_allocated`` on a GPU, the process's peak RSS (``VmHWM``, reset before each step) on CPU.

Models are random LLaDAs with the real vocabulary widths (134656 MMaDA, 134548 Lumina-DiMOO) and the published
layouts; ``gpu-8b`` is LLaDA-8B's shape (d_model 4096, 32 layers, 32 heads, mlp 12288, 1024 image tokens), built on
the meta device and materialised on the GPU with random weights (nothing downloaded). Writes
``rollout_throughput.json`` (and ``.png`` with matplotlib) to ``--output_dir``, and prints the ratios ours /
published. The JSON also holds matmul FLOPs per image of each side at the run's shapes, so a CPU run predicts the
FLOP-bound ratio at any preset (``--estimate_only``).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trl_htgrpo.backbones import LuminaDiMOOBackbone, MMaDABackbone
from trl_htgrpo.backbones.lumina_dimoo import LUMINA_DIMOO_TOKENS, T2I_SYSTEM_PROMPT
from trl_htgrpo.backbones.mmada import LUMINA_DIMOO_VOCAB, MMADA_VOCAB
from trl_htgrpo.diffusion import left_pad, sample_images
from trl_htgrpo.diffusion.published import (
    lumina_generate_image,
    lumina_infer_forward,
    mmada_t2i_generate,
    native_bias_forward,
)
from trl_htgrpo.machine import describe_machine

FAMILIES = ("mmada", "lumina_dimoo")
WIDTH = {"mmada": MMADA_VOCAB, "lumina_dimoo": LUMINA_DIMOO_VOCAB}
CODEBOOK = 8192

#: model: LLaDA sizes; <family>: grid side (N = side^2), MMaDA's text block, steps, guidance, images per timing;
#: update: family, group sizes G, the rollout's steps, LoRA rank / alpha, inner iterations (timed: all but the first)
PRESETS: dict[str, dict] = {
    "smoke": dict(
        device="cpu", dtype="float32", init="direct", repeats=1,
        model=dict(d_model=32, n_layers=1, n_heads=2, mlp_hidden_size=64),
        mmada=dict(grid=4, max_text_length=16, steps=4, guidance=3.5, images=2),
        lumina_dimoo=dict(grid=4, steps=4, guidance=4.0, images=2),
        update=dict(family="mmada", group_sizes=[4, 8], steps=2, lora_r=4, lora_alpha=2, num_iterations=2),
    ),
    "cpu-tiny": dict(
        device="cpu", dtype="float32", init="direct", repeats=2,
        model=dict(d_model=64, n_layers=2, n_heads=4, mlp_hidden_size=256),
        mmada=dict(grid=8, max_text_length=32, steps=15, guidance=3.5, images=2),
        lumina_dimoo=dict(grid=8, steps=16, guidance=4.0, images=2),
        update=dict(family="mmada", group_sizes=[4, 8], steps=15, lora_r=16, lora_alpha=8, num_iterations=3),
    ),
    "gpu-8b": dict(
        device="cuda", dtype="bfloat16", init="meta", repeats=1,
        model=dict(d_model=4096, n_layers=32, n_heads=32, mlp_hidden_size=12288),
        mmada=dict(grid=32, max_text_length=512, steps=15, guidance=3.5, images=8),
        lumina_dimoo=dict(grid=32, steps=64, guidance=4.0, images=4),
        update=dict(family="mmada", group_sizes=[4, 8], steps=15, lora_r=128, lora_alpha=64, num_iterations=3),
    ),
}

PROMPTS = [
    "a photo of a red apple", "a photo of two dogs", "a photo of a cat left of a dog", "a photo of a blue car",
    "a photo of three cups", "a photo of a green bench and a yellow bird", "a photo of an orange umbrella",
    "a photo of a purple vase above a white table",
]
BOS, EOS = 126080, 126081  # LLaDA's <|startoftext|>, <|endoftext|>
LUMINA_TAGS = {"<system>": 126340, "</system>": 126341, "<user>": 126342, "</user>": 126343,
               "<uncondition>": LUMINA_DIMOO_TOKENS["uncondition"]}


# ---------------------------------------------------------------------------------------------- models and layouts
def word_tokenizer(tags: dict[str, int]):
    """A word-level tokenizer over the benchmark's prompts and Lumina-DiMOO's template, with LLaDA's <bos>/<eos>
    (and Lumina-DiMOO's tags) at their ids: prompt lengths like the real tokenizers', nothing downloaded."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for p in PROMPTS for w in p.split()} | set(re.findall(r"\w+|[^\w\s]+", T2I_SYSTEM_PROMPT)))
    vocab = {"[UNK]": 0, **{w: 1000 + i for i, w in enumerate(words)}, "<|startoftext|>": BOS, "<|endoftext|>": EOS,
             **tags}
    t = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=t, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                   unk_token="[UNK]", pad_token="<|endoftext|>", additional_special_tokens=list(tags))


def model_config(family: str, spec: dict, grid: int):
    from trl_htgrpo.models import LLaDAConfig, MMaDAConfig

    W = WIDTH[family]
    fields = dict(spec, n_kv_heads=spec["n_heads"], vocab_size=W, embedding_size=W, max_sequence_length=8192)
    if family == "mmada":
        return MMaDAConfig(**fields, llm_vocab_size=126464, codebook_size=CODEBOOK, num_vq_tokens=grid * grid,
                           num_new_special_tokens=0, new_vocab_size=W)
    return LLaDAConfig(**fields)


def build_model(family: str, preset: dict, seed: int = 0):
    """A random LLaDA of the family's vocabulary width: built directly, or on the meta device and materialised on the
    target device (``init="meta"``: an 8B model never exists in fp32 or on the CPU)."""
    from trl_htgrpo.models import LLaDAModelLM, MMaDAModelLM

    cls = MMaDAModelLM if family == "mmada" else LLaDAModelLM
    config = model_config(family, preset["model"], preset[family]["grid"])
    device, dtype = torch.device(preset["device"]), getattr(torch, preset["dtype"])
    if preset["init"] == "meta":
        with torch.device("meta"):
            model = cls(config)
        model = model.to(dtype=dtype).to_empty(device=device)
        g = torch.Generator(device=device).manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():  # normal(0, init_std) as LLaDAPreTrainedModel._init_weights; norms at 1
                p.normal_(0.0, config.init_std, generator=g) if p.dim() > 1 else p.fill_(1.0)
    else:
        torch.manual_seed(seed)
        model = cls(config).to(device=device, dtype=dtype)
    return model.eval()


def make_backbone(family: str, preset: dict, tokenizer, vq_decoder=None):
    g = preset[family]["grid"]
    if family == "mmada":
        return MMaDABackbone(tokenizer, vq_decoder=vq_decoder, num_image_tokens=g * g,
                             max_text_length=preset["mmada"]["max_text_length"])
    return LuminaDiMOOBackbone(tokenizer, vq_decoder=vq_decoder, grid=(g, g))


def tiny_vq_decoder(family: str):
    """A VQ decoder with the family's structure and tiny channels (the update's rewards need pixels, not good ones)."""
    if family == "mmada":
        from trl_htgrpo.models import MAGVITv2

        return MAGVITv2(ch=8, encoder_ch_mult=[1] * 5, encoder_num_res_blocks=[1] * 5, decoder_ch_mult=[1] * 5,
                        decoder_num_res_blocks=[1] * 5, norm_groups=4)
    from diffusers import VQModel

    return VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 5,
                   up_block_types=("UpDecoderBlock2D",) * 5, block_out_channels=(8,) * 5, layers_per_block=1,
                   latent_channels=4, norm_num_groups=4, num_vq_embeddings=CODEBOOK, vq_embed_dim=4,
                   lookup_from_codebook=True, force_upcast=False)


# ---------------------------------------------------------------------------------------------- measuring
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


class Meter:
    """Wall seconds and peak memory of a block: ``torch.cuda.max_memory_allocated`` on CUDA, else the process's peak
    RSS (``VmHWM``, reset through ``/proc/self/clear_refs``; None where Linux does not offer it)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.kind = "cuda_max_memory_allocated" if self.cuda else "peak_rss"

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def start(self):
        self._sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current RSS
                self.before = _status_kb("VmRSS") * 1024
            except OSError:
                self.before = None
        self.t0 = time.perf_counter()

    def stop(self) -> dict:
        self._sync()
        seconds = time.perf_counter() - self.t0
        if self.cuda:
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _status_kb("VmHWM") * 1024 if self.before is not None else None
        return {"seconds": seconds, "peak_memory_bytes": peak, "memory_before_bytes": self.before}


# ---------------------------------------------------------------------------------------------- the rollouts
def ours(model, bb, prompts, steps, w, family):
    traj = sample_images(model, bb, prompts, steps=steps, guidance_scale=w, seeds=list(range(len(prompts))),
                         sampler=family)
    return traj.codes


def published_mmada(model, bb: MMaDABackbone, prompts, steps, w):
    """MMaDA's inference_t2i.py: the batch's prompts and their empty-text twins, each in the fixed text block
    (``max_text_length + 1`` tokens, 513 published) and ``<|soi|>``, then ``t2i_generate``."""
    B, N = len(prompts), bb.num_image_tokens
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts + [bb.unconditional_prompt()] * B, bb.pad_token_id, device)
    image = torch.full((2 * B, N), bb.mask_token_id, device=device)
    x, m = bb.build_inputs(ids, mask, image)  # (2B, 514 + N + 1) with fixed padding
    g = torch.Generator(device=device).manual_seed(0)
    codes, _ = mmada_t2i_generate(native_bias_forward(model), x[:B], x[B:], m[:B], m[B:], timesteps=steps,
                                  guidance_scale=w, generator=g, seq_len=N, mask_token_id=bb.mask_token_id,
                                  text_block=bb.max_text_length + 1, image_offset=bb.image_offset,
                                  codebook_size=bb.codebook_size)
    return codes


def published_lumina(model, bb: LuminaDiMOOBackbone, prompts, steps, w):
    """Lumina-DiMOO's inference_t2i.py, one prompt after the other: the template, <answer-start> <boi>, rows of
    [MASK] and newlines, <eoi> <answer-end>; ``generate_image`` with the unconditional template."""
    device = next(model.parameters()).device
    N = bb.num_image_tokens
    uncon = torch.tensor([bb.unconditional_prompt()[:-2]], device=device)  # without <answer-start> <boi>
    g = torch.Generator(device=device).manual_seed(0)
    out = []
    for p in prompts:
        prompt = torch.tensor([p], device=device)
        x, _ = bb.build_inputs(prompt, torch.ones_like(prompt), torch.full((1, N), bb.mask_token_id, device=device))
        codes, _ = lumina_generate_image(lumina_infer_forward(model), x, timesteps=steps, cfg_scale=w, uncon_ids=uncon,
                                         code_start=len(p), codebook_size=bb.codebook_size, generator=g,
                                         mask_token_id=bb.mask_token_id)
        out.append(codes)
    return torch.cat(out)


def rollout_benchmark(family: str, preset: dict, tokenizer, meter: Meter) -> dict:
    spec = preset[family]
    model = build_model(family, preset)
    bb = make_backbone(family, preset, tokenizer)
    prompts = bb.encode_prompts([PROMPTS[i % len(PROMPTS)] for i in range(spec["images"])])
    published = published_mmada if family == "mmada" else published_lumina
    runners = {"ours": lambda T: ours(model, bb, prompts, T, spec["guidance"], family),
               "published": lambda T: published(model, bb, prompts, T, spec["guidance"])}
    logits_shapes = {}
    for name, run in runners.items():  # warm-up (allocator, kernels, thread pools), recording what the model returns
        shapes = []
        hook = model.register_forward_hook(lambda m, i, o: shapes.append(list(o.logits.shape)))
        run(min(2, spec["steps"]))
        hook.remove()
        logits_shapes[name] = max(shapes, key=lambda s: s[1] * s[2])  # the largest call (not Lumina-DiMOO's probe)
    timings = {name: [] for name in runners}
    for _ in range(preset["repeats"]):  # interleaved, so that a change of machine load hits both sides
        for name, run in runners.items():
            meter.start()
            codes = run(spec["steps"])
            timings[name].append(meter.stop())
            assert codes.shape == (spec["images"], bb.num_image_tokens)
    out = dict(images=spec["images"], steps=spec["steps"], guidance_scale=spec["guidance"],
               image_tokens=bb.num_image_tokens, sequence_length=sequence_lengths(bb, prompts))
    for name, ts in timings.items():
        seconds = [t["seconds"] for t in ts]
        med = statistics.median(seconds)
        out[name] = {"seconds": seconds, "seconds_median": med, "images_per_second": spec["images"] / med,
                     "logits_shape": logits_shapes[name], **_memory(ts, meter)}
    out["ratio_images_per_second"] = out["ours"]["images_per_second"] / out["published"]["images_per_second"]
    out["flops_per_image"] = flops_per_image(family, model.config, bb, prompts, spec["steps"])
    del model
    _free(preset)
    return out


def _memory(timings: list[dict], meter: Meter) -> dict:
    """Peak memory over the timed runs, what was held when they started, and the difference (what the runs added)."""
    peaks = [t["peak_memory_bytes"] for t in timings if t["peak_memory_bytes"] is not None]
    before = [t["memory_before_bytes"] for t in timings if t["memory_before_bytes"] is not None]
    peak = max(peaks) if peaks else None
    return {"peak_memory_bytes": peak, "memory_before_bytes": min(before) if before else None,
            "peak_memory_added_bytes": max(p - b for p, b in zip(peaks, before)) if peaks and before else None,
            "memory_kind": meter.kind}


def row_length(bb, prompt: list[int]) -> int:
    """Tokens of the model input of one unpadded prompt (the layout adds the image and its special tokens; MMaDA's
    pads the text block to its fixed length)."""
    image = torch.zeros(1, bb.num_image_tokens, dtype=torch.long)
    return bb.build_inputs(torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long), image)[0].shape[1]


def sequence_lengths(bb, prompts) -> dict:
    """Model input lengths: the conditional rows and the unconditional one (MMaDA's are fixed)."""
    lens = [row_length(bb, p) for p in prompts]
    return {"cond_max": max(lens), "cond_min": min(lens), "uncond": row_length(bb, bb.unconditional_prompt())}


def flops_per_image(family: str, config, bb, prompts, steps: int) -> dict:
    """Matmul FLOPs per image of a whole rollout (no elementwise work): body ``2 L (params of a block) + 4 L^2 D`` per
    layer and row, head ``2 K D V_h`` for K positions and V_h vocabulary rows. Ours: 2B rows padded to the batch's
    longest, head N x 8192. Published: the full head L x W at every position; MMaDA's rows as ours (fixed length),
    Lumina-DiMOO's one unpadded row per branch plus its one-token probe of the vocabulary per image."""
    D, F, layers = config.d_model, config.intermediate_size, config.n_layers
    kv = config.num_key_value_heads * config.head_dim
    block = 2 * D * D + 2 * D * kv + 3 * D * F  # q, attn_out; k, v; ff_proj, up_proj, ff_out
    W, N, B = config.logits_size, bb.num_image_tokens, len(prompts)

    def body(L):
        return layers * (2 * L * block + 4 * L * L * D)

    def head(K, Vh):
        return 2 * K * D * Vh

    lens = [row_length(bb, p) for p in prompts]
    Lu = row_length(bb, bb.unconditional_prompt())
    L = max(lens + [Lu])
    ours_head = steps * 2 * B * head(N, CODEBOOK) / B
    ours_ = steps * 2 * B * body(L) / B + ours_head
    if family == "mmada":
        pub_head = steps * 2 * B * head(L, W) / B
        pub = steps * 2 * B * body(L) / B + pub_head
    else:
        pub_head = sum(steps * (head(Lc, W) + head(Lu, W)) + head(1, W) for Lc in lens) / B
        pub = sum(steps * (body(Lc) + body(Lu)) + body(1) for Lc in lens) / B + pub_head
    return {"ours": ours_, "published": pub, "published_over_ours": pub / ours_,
            "head_share": {"ours": ours_head / ours_, "published": pub_head / pub}}


# ---------------------------------------------------------------------------------------------- the update
def brightness(completions, **kwargs) -> list[float]:
    """A weights-free reward with spread within a group: mean pixel value in [0, 1]."""
    import numpy as np

    return [float(np.asarray(im, dtype=np.float32).mean() / 255.0) for im in completions]


def update_benchmark(preset: dict, tokenizer, meter: Meter, out_dir: Path) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PrinterCallback, TrainerCallback

    from trl_htgrpo import HTGRPOConfig, HTGRPOTrainer

    spec = preset["update"]
    family = spec["family"]
    K = spec["num_iterations"]

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.steps = []

        def on_step_begin(self, args, state, control, **kw):
            meter.start()

        def on_step_end(self, args, state, control, **kw):
            self.steps.append(meter.stop())

    groups, lora = [], None
    for G in spec["group_sizes"]:
        model = build_model(family, preset)
        bb = make_backbone(family, preset, tokenizer, vq_decoder=tiny_vq_decoder(family))
        cuda = preset["device"] == "cuda"
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            args = HTGRPOConfig(
                output_dir=tmp, max_steps=K, num_iterations=K, per_device_train_batch_size=G, num_generations=G,
                gradient_accumulation_steps=1, diffusion_steps=spec["steps"], guidance_scale=preset[family]["guidance"],
                # MaskGRPO's optimizer (configs/rl.yaml): lr 3e-6, epsilon 0.2, beta 0.01, clip 0.2, wd 0.1, Adam betas
                learning_rate=3e-6, epsilon=0.2, beta=0.01, max_grad_norm=0.2, weight_decay=0.1, adam_beta1=0.9,
                adam_beta2=0.99, gradient_checkpointing=True, bf16=cuda, use_cpu=not cuda, save_strategy="no",
                report_to="none", logging_steps=K + 1, log_images_steps=0, seed=0, dataloader_num_workers=0,
                disable_tqdm=True,
            )
            peft_config = LoraConfig(r=spec["lora_r"], lora_alpha=spec["lora_alpha"], lora_dropout=0.05,
                                     target_modules="all-linear", bias="none")
            timer = StepTimer()
            trainer = HTGRPOTrainer(model, reward_funcs=[brightness], args=args, processing_class=tokenizer,
                                    train_dataset=Dataset.from_dict({"prompt": PROMPTS}), peft_config=peft_config,
                                    backbone=bb, callbacks=[timer])
            trainer.remove_callback(PrinterCallback)  # the per-step log dicts
            if lora is None:
                lora = lora_summary(trainer.model, spec)
            trainer.train()
        later = timer.steps[1:]  # the first step also draws and scores the rollout
        groups.append({
            "group_size": G,
            "update_seconds": statistics.median(t["seconds"] for t in later),
            "update_seconds_all": [t["seconds"] for t in later],
            "first_step_seconds": timer.steps[0]["seconds"],
            **_memory(later, meter),
            "first_step_peak_memory_bytes": timer.steps[0]["peak_memory_bytes"],
        })
        del trainer, model, bb
        _free(preset)
    return {"family": family, "num_iterations": K, "timed_steps": K - 1, "diffusion_steps": spec["steps"],
            "gradient_checkpointing": True, "lora": lora, "groups": groups,
            "optimizer": {"learning_rate": 3e-6, "epsilon": 0.2, "beta": 0.01, "max_grad_norm": 0.2,
                          "weight_decay": 0.1, "adam_betas": [0.9, 0.99]}}


def lora_summary(peft_model, spec) -> dict:
    names = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")]
    suffixes = sorted({n.rsplit(".", 1)[-1] for n in names})
    return {"r": spec["lora_r"], "alpha": spec["lora_alpha"], "target_modules": "all-linear", "modules": len(names),
            "projections": suffixes, "head_adapted": any(n.endswith("transformer.ff_out") for n in names),
            "trainable_parameters": sum(p.numel() for p in peft_model.parameters() if p.requires_grad)}


def _free(preset):
    gc.collect()
    if preset["device"] == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------- estimates
def estimates(preset: dict, tokenizers: dict) -> dict:
    """Parameter counts (from meta-device models) and FLOPs per image at the preset's shapes, without weights."""
    from trl_htgrpo.models import LLaDAModelLM

    out = {}
    for family in FAMILIES:
        config = model_config(family, preset["model"], preset[family]["grid"])
        with torch.device("meta"):
            m = LLaDAModelLM(config)
        total = sum(p.numel() for p in m.parameters())
        head = m.model.transformer.ff_out.weight.numel()
        emb = m.model.transformer.wte.weight.numel()
        bb = make_backbone(family, preset, tokenizers[family])
        prompts = bb.encode_prompts([PROMPTS[i % len(PROMPTS)] for i in range(preset[family]["images"])])
        r = preset["update"]["lora_r"]
        D, F, kv = config.d_model, config.intermediate_size, config.num_key_value_heads * config.head_dim
        lora = config.n_layers * r * ((D + D) * 2 + (D + kv) * 2 + (D + F) * 2 + (F + D))
        out[family] = {"parameters": total, "head_parameters": head, "embedding_parameters": emb,
                       "blocks_parameters": total - head - emb - 2 * D, "lora_parameters_r": lora,
                       "sequence_length": sequence_lengths(bb, prompts),
                       "flops_per_image": flops_per_image(family, config, bb, prompts, preset[family]["steps"])}
    return out


# ---------------------------------------------------------------------------------------------- output
def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = [f for f in FAMILIES if f in results["rollout"]]
    upd = results.get("update")
    fig, axes = plt.subplots(1, 2 if upd else 1, figsize=(11 if upd else 6, 4), squeeze=False)
    ax = axes[0, 0]
    xs = range(len(fams))
    for k, (side, color) in enumerate((("ours", "tab:blue"), ("published", "tab:gray"))):
        ys = [results["rollout"][f][side]["images_per_second"] for f in fams]
        ax.bar([x + 0.38 * k for x in xs], ys, width=0.36, color=color, label=side)
    for x, f in zip(xs, fams):
        r = results["rollout"][f]
        ax.text(x + 0.19, max(r["ours"]["images_per_second"], r["published"]["images_per_second"]) * 1.02,
                f"x{r['ratio_images_per_second']:.2f}", ha="center")
    ax.set_xticks([x + 0.19 for x in xs], [f"{f}\nT={results['rollout'][f]['steps']}" for f in fams])
    ax.set_ylabel("images / s")
    ax.set_title(f"rollouts ({results['preset']}, {results['environment']['device']})")
    ax.legend()
    if upd:
        ax = axes[0, 1]
        gs = [g["group_size"] for g in upd["groups"]]
        ax.bar([str(g) for g in gs], [g["update_seconds"] for g in upd["groups"]], color="tab:green")
        for i, g in enumerate(upd["groups"]):
            if g["peak_memory_bytes"]:
                ax.text(i, g["update_seconds"] * 1.02, f"{g['peak_memory_bytes'] / 2**30:.2f} GiB", ha="center")
        ax.set_xlabel("group size G")
        ax.set_ylabel("seconds per update")
        ax.set_title(f"one HT-GRPO update (LoRA r={upd['lora']['r']}, checkpointing)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def resolve_preset(name: str, overrides: list[str]) -> dict:
    preset = copy.deepcopy(PRESETS[name])
    for item in overrides:
        key, _, raw = item.partition("=")
        if not _:
            raise SystemExit(f"--set takes key=value (e.g. mmada.images=8), got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node, *path = key.split(".")
        target = preset
        for part in [node, *path][:-1]:
            if part not in target:
                raise SystemExit(f"--set {key}: unknown key {part!r}; keys: {sorted(target)}")
            target = target[part]
        if [node, *path][-1] not in target:
            raise SystemExit(f"--set {key}: unknown key {[node, *path][-1]!r}; keys: {sorted(target)}")
        target[[node, *path][-1]] = value
    return preset


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu-tiny", choices=sorted(PRESETS))
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="override a preset field, e.g. --set mmada.images=8 --set 'update.group_sizes=[4, 8]' "
                        "--set device=cpu (repeatable; values are JSON, else strings)")
    p.add_argument("--families", default=",".join(FAMILIES), help="rollout comparisons to run (comma-separated)")
    p.add_argument("--skip_update", action="store_true", help="no HT-GRPO update measurement")
    p.add_argument("--estimate_only", action="store_true", help="parameter counts and FLOPs per image; builds no model")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads on CPU. 1 (default): on a shared 2-core machine every op of a second "
                        "thread waits for a time slice (small ops 10-30x slower), which hides the work each side does")
    p.add_argument("--output_dir", default="outputs/rollout_throughput")
    a = p.parse_args(argv)
    preset = resolve_preset(a.preset, a.overrides)
    families = [f for f in a.families.split(",") if f]
    if set(families) - set(FAMILIES):
        raise SystemExit(f"--families: choose among {FAMILIES}, got {families}")
    torch.set_num_threads(a.threads)
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = {"mmada": word_tokenizer({}), "lumina_dimoo": word_tokenizer(LUMINA_TAGS)}
    results = {"preset": a.preset, "config": preset, "estimates": estimates(preset, tokenizer)}
    if a.estimate_only:
        (out / "rollout_throughput.json").write_text(json.dumps(results, indent=1))
        for f, e in results["estimates"].items():
            print(f"{f}: {e['parameters'] / 1e9:.2f}B parameters (head {e['head_parameters'] / 1e9:.2f}B), L = "
                  f"{e['sequence_length']['cond_max']}; matmul FLOPs per image published / ours = "
                  f"{e['flops_per_image']['published_over_ours']:.2f}")
        return results
    device = torch.device(preset["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--preset {a.preset} needs a CUDA device; --set device=cpu --set dtype=float32 and smaller "
                         "model sizes run the same path on the CPU")
    meter = Meter(device)
    # the run's own device and load; the CPU, its instruction set, threads and versions are describe_machine()'s
    results["environment"] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": preset["dtype"], "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    results["machine"] = describe_machine()
    t_all = time.time()
    results["rollout"] = {}
    for family in families:
        results["rollout"][family] = rollout_benchmark(family, preset, tokenizer[family], meter)
        r = results["rollout"][family]
        print(f"{family}: ours {r['ours']['images_per_second']:.3f} img/s, published "
              f"{r['published']['images_per_second']:.3f} img/s, ours / published = {r['ratio_images_per_second']:.2f} "
              f"(T={r['steps']}, {r['images']} images, N={r['image_tokens']}; FLOP ratio "
              f"{r['flops_per_image']['published_over_ours']:.2f})", flush=True)
    if not a.skip_update:
        fam = preset["update"]["family"]
        results["update"] = update_benchmark(preset, tokenizer[fam], meter, out)
        for g in results["update"]["groups"]:
            mem = (f"{g['peak_memory_bytes'] / 2**20:.0f} MiB (+{g['peak_memory_added_bytes'] / 2**20:.0f} MiB over the "
                   "step's start)" if g["peak_memory_bytes"] else "n/a")
            print(f"update G={g['group_size']}: {g['update_seconds']:.2f} s, peak {mem} ({g['memory_kind']}); "
                  f"first step (with the rollout) {g['first_step_seconds']:.2f} s", flush=True)
    results["ratios"] = {f: r["ratio_images_per_second"] for f, r in results["rollout"].items()}
    results["targets"] = {}
    if "lumina_dimoo" in results["ratios"]:
        results["targets"]["lumina_dimoo_at_least_2x"] = results["ratios"]["lumina_dimoo"] >= 2.0
    if "mmada" in results["ratios"]:
        results["targets"]["mmada_at_least_1x"] = results["ratios"]["mmada"] >= 1.0
    results["seconds"] = time.time() - t_all
    (out / "rollout_throughput.json").write_text(json.dumps(results, indent=1))
    try:
        plot(results, out / "rollout_throughput.png")
    except ImportError:
        print("matplotlib not installed: no plot")
    print("ratios ours / published (images per second): "
          + ", ".join(f"{f} {r:.2f}" for f, r in results["ratios"].items()))
    print(f"wrote {out / 'rollout_throughput.json'} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
