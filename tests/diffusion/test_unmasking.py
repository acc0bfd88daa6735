"""The published unmasking loops, replayed: our sampler with ``sampler="mmada"`` / ``"lumina_dimoo"`` must draw
exactly what MMaDA's ``t2i_generate`` and Lumina-DiMOO's ``generate_image`` draw with the same generator.

The two loops are restated, model calls included, in :mod:`trl_htgrpo.diffusion.published` (our words, from
``Gen-Verse/MMaDA@3cdb870: models/modeling_mmada.py L118-211, models/sampling.py`` and
``Alpha-VLLM/Lumina-DiMOO@81344e6: generators/image_generation_generator.py L15-151, utils/generation_utils.py``;
the throughput benchmark runs the same restatements): MMaDA draws every position with ``torch.multinomial`` on the
untempered softmax of guided full logits, then uniform noise for its compounding Gumbel confidence; Lumina-DiMOO
calls the model once per branch, draws only the masked positions by Gumbel-max, then uniform noise of constant
scale. Here they call the very toy model the sampler calls, one image at a time.
"""

import pytest
import torch

from trl_htgrpo.diffusion.published import lumina_generate_image, mmada_t2i_generate
from trl_htgrpo.diffusion.sampler import left_pad, sample_images
from trl_htgrpo.diffusion.unmasking import SAMPLERS, LuminaDiMOORule, MMaDARule
from trl_htgrpo.toy import ShapesBackbone, ShapesDiffusionConfig, ShapesDiffusionModel

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = ["a photo of a red square", "a photo of two crosses", "a photo of a circle above a triangle"]


@pytest.fixture(scope="module")
def setup(tok):
    torch.manual_seed(0)
    cfg = ShapesDiffusionConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64)
    model = ShapesDiffusionModel(cfg).eval()
    with torch.no_grad():  # sharp, state-dependent logits, so that draws and reveal orders matter
        model.lm_head.weight.normal_(std=1.0)
    return model, ShapesBackbone(tok)


def published_mmada(model, bb, prompt, N, T, g, w):
    """MMaDA's t2i_generate on one prompt of the toy's MMaDA layout: the conditional and unconditional rows padded to
    one text block, the toy's (B, L) padding mask read off the published (B, 1, L, L) bias."""
    ids, mask = left_pad([prompt, bb.unconditional_prompt()], bb.pad_token_id)  # (2, P)
    image = torch.full((1, N), bb.mask_token_id)
    (cond, cond_mask), (uncond, uncond_mask) = (bb.build_inputs(ids[i : i + 1], mask[i : i + 1], image) for i in (0, 1))

    def forward(input_ids, attention_bias):
        return model(input_ids=input_ids, attention_mask=attention_bias[:, 0].diagonal(dim1=-2, dim2=-1).long()).logits

    return mmada_t2i_generate(forward, cond, uncond, cond_mask, uncond_mask, timesteps=T, guidance_scale=w, generator=g,
                              seq_len=N, mask_token_id=bb.mask_token_id, text_block=ids.shape[1] - 1,
                              image_offset=bb.image_offset, codebook_size=bb.codebook_size)


def published_lumina(model, bb, prompt, N, T, g, w):
    """Lumina-DiMOO's generate_image on one prompt of the toy's layout: unpadded rows, one forward per branch; the
    branches share ``<|soi|>`` (``image_head=1``) as Lumina-DiMOO's share ``<answer-start> <boi>``."""
    image = torch.full((1, N), bb.mask_token_id)
    x, _ = bb.build_inputs(torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long), image)
    uncon = torch.tensor([bb.unconditional_prompt()[:-1]])
    return lumina_generate_image(lambda ids: model(input_ids=ids).logits, x, timesteps=T, cfg_scale=w, uncon_ids=uncon,
                                 code_start=len(prompt), codebook_size=bb.codebook_size, generator=g,
                                 mask_token_id=bb.mask_token_id, image_head=1,
                                 text_vocab_size=bb.image_offset)  # the toy cannot run the one-token probe


@pytest.mark.parametrize("family, steps", [("mmada", 12), ("mmada", 15), ("lumina_dimoo", 12), ("lumina_dimoo", 64)])
def test_our_sampler_replays_the_published_loop(setup, family, steps):
    model, bb = setup
    prompts = bb.encode_prompts(PROMPTS)
    N, w, seeds = bb.num_image_tokens, 3.5, [11, 12, 13]
    ours = sample_images(model, bb, prompts, steps=steps, guidance_scale=w, seeds=seeds, sampler=family)
    loop = published_mmada if family == "mmada" else published_lumina
    for b, prompt in enumerate(prompts):  # row b of our batch == the published loop run on prompt b alone
        codes, states = loop(model, bb, prompt, N, steps, torch.Generator().manual_seed(seeds[b]), w)
        assert len(states) == steps
        assert torch.equal(ours.codes[b], codes[0])
        for t, masked in enumerate(states):  # the same tokens masked before every step: identical trajectories
            assert torch.equal(ours.reveal_step[b] >= t, masked[0]), (family, b, t)


def test_a_row_does_not_depend_on_its_batch(setup):
    model, bb = setup
    prompts = bb.encode_prompts(PROMPTS)
    for family in SAMPLERS:
        together = sample_images(model, bb, prompts, steps=6, seeds=[5, 6, 7], sampler=family)
        for b in range(3):
            alone = sample_images(model, bb, prompts[b : b + 1], steps=6, seeds=[5 + b], sampler=family)
            assert torch.equal(together.codes[b], alone.codes[0]) and torch.equal(together.reveal_step[b], alone.reveal_step[0])


def _masked_after_each_step(rule_cls, N, T):
    from types import SimpleNamespace

    rule = rule_cls(SimpleNamespace(temperature=1.0, reveal_noise=1.0, mask_schedule="cosine"))
    rule.start(1, N, T)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, N, 16, generator=g)  # distinct confidences: no ties at the cut-off
    codes, masked, counts = torch.zeros(1, N, dtype=torch.long), torch.ones(1, N, dtype=torch.bool), []
    for t in range(T):
        codes, masked = rule.step(logits, masked, codes, t, T, [g])
        counts.append(int(masked.sum()))
    return counts


def test_masked_counts_in_float32_as_published():
    # MMaDA: floor(1024 cos(pi r / 2)) in float32, at least one token left until the last step, where it takes its
    # draw; at r = 2/3 float32's cos is 0.49999997, so 511 (float64 would keep 512)
    assert _masked_after_each_step(MMaDARule, 1024, 12) == [1015, 989, 946, 886, 812, 724, 623, 511, 391, 265, 133, 0]
    # Lumina-DiMOO: the same counts, the last step reveals everything
    assert _masked_after_each_step(LuminaDiMOORule, 1024, 15) == [
        1018, 1001, 973, 935, 886, 828, 760, 685, 601, 511, 416, 316, 212, 107, 0]
    assert _masked_after_each_step(LuminaDiMOORule, 16, 4) == [14, 11, 6, 0]


def test_mmada_noise_scale_compounds_and_lumina_stays_constant():
    from types import SimpleNamespace

    rule = MMaDARule(SimpleNamespace(temperature=1.0, reveal_noise=1.0, mask_schedule="cosine"))
    rule.start(1, 16, 4)
    logits, masked, codes = torch.zeros(1, 16, 4), torch.ones(1, 16, dtype=torch.bool), torch.zeros(1, 16, dtype=torch.long)
    scales = []
    for t in range(4):
        codes, masked = rule.step(logits, masked, codes, t, 4, [torch.Generator().manual_seed(t)])
        scales.append(rule.noise)
    # s_t = prod_{u <= t} (1 - (u + 1) / T): 3/4, 3/4 * 1/2, 3/4 * 1/2 * 1/4, 0
    assert scales == pytest.approx([0.75, 0.375, 0.09375, 0.0])
