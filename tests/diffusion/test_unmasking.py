"""The published unmasking loops, replayed: our sampler with ``sampler="mmada"`` / ``"lumina_dimoo"`` must draw
exactly what MMaDA's ``t2i_generate`` and Lumina-DiMOO's ``generate_image`` draw with the same generator.

``published_mmada`` and ``published_lumina`` restate the two loops' arithmetic line by line (our words, from
``Gen-Verse/MMaDA@3cdb870: models/modeling_mmada.py L118-211, models/sampling.py`` and
``Alpha-VLLM/Lumina-DiMOO@81344e6: generators/image_generation_generator.py L87-151, utils/generation_utils.py``):
MMaDA draws every position with ``torch.multinomial`` on the untempered softmax, then uniform noise for its
compounding Gumbel confidence; Lumina-DiMOO draws only the masked positions by Gumbel-max, then uniform noise of
constant scale. Both take ``f(codes) -> guided codebook logits``, here the very model the sampler calls.
"""

import math

import pytest
import torch

from trl_htgrpo.diffusion.sampler import sample_images
from trl_htgrpo.diffusion.unmasking import SAMPLERS, LuminaDiMOORule, MMaDARule
from trl_htgrpo.toy import ShapesBackbone, ShapesDiffusionConfig, ShapesDiffusionModel

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = ["a photo of a red square", "a photo of two crosses", "a photo of a circle above a triangle"]


def published_mmada(f, N, T, g, temperature=1.0):
    """MMaDA's t2i_generate for one image (B = 1). Returns the final codes and the masked map before each step."""
    codes = torch.full((1, N), -1)
    states = []
    sampled = None
    for step in range(T):
        states.append(codes == -1)
        logits = f(codes)  # (1, N, V)
        probs = logits.softmax(dim=-1)
        sampled = torch.multinomial(probs.reshape(-1, logits.size(-1)), 1, generator=g)[:, 0].view(*logits.shape[:-1])
        unknown = codes == -1
        sampled = torch.where(unknown, sampled, codes)
        ratio = 1.0 * (step + 1) / T
        mask_ratio = torch.cos(torch.tensor(ratio) * math.pi * 0.5)
        selected = torch.gather(probs, -1, sampled.long()[..., None]).squeeze(-1)
        selected = torch.where(unknown, selected, torch.finfo(selected.dtype).max)
        mask_len = (N * mask_ratio).floor().unsqueeze(0)
        mask_len = torch.max(torch.tensor([1]), torch.min(unknown.sum(dim=-1, keepdim=True) - 1, mask_len))
        temperature = temperature * (1.0 - ratio)
        noise = torch.zeros_like(selected).uniform_(0, 1, generator=g)
        confidence = torch.log(selected.clamp(min=1e-20)) + temperature * -torch.log((-torch.log(noise.clamp(min=1e-20))).clamp(min=1e-20))
        cut_off = torch.gather(torch.sort(confidence, dim=-1).values, 1, mask_len.long())
        masking = confidence < cut_off
        codes = torch.where(masking, -1, sampled)
    return sampled, states


def published_lumina(f, N, T, g, temperature=1.0):
    """Lumina-DiMOO's generate_image for one image. Returns the final codes and the masked map before each step."""
    codes = torch.full((1, N), -1)
    states = []
    gumbel = lambda u: -torch.log(-torch.log(u + 1e-20) + 1e-20)  # noqa: E731
    for step in range(T):
        m = codes == -1
        states.append(m.clone())
        L = int(m.sum())
        if L == 0:
            break
        if step < T - 1:
            keep = (torch.tensor([[N]]).float() * torch.cos(0.5 * math.pi * torch.tensor([(step + 1) / T]))).floor()
            keep = keep.clamp_min(1).long()
        else:
            keep = torch.zeros(1, 1, dtype=torch.long)
        lg = f(codes)[m].view(1, L, -1)
        sampled = (lg / temperature + gumbel(torch.rand(lg.shape, dtype=lg.dtype, generator=g))).argmax(-1)
        conf = lg.softmax(-1).gather(-1, sampled[..., None]).squeeze(-1)
        c = torch.log(conf.clamp_min(1e-20)) + temperature * gumbel(torch.rand(conf.shape, dtype=conf.dtype, generator=g))
        stay = c < c.sort(-1).values.gather(1, keep.clamp(0, L - 1))
        codes[m] = torch.where(stay, -1, sampled).view(-1)
    return codes, states


@pytest.fixture(scope="module")
def setup(tok):
    torch.manual_seed(0)
    cfg = ShapesDiffusionConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64)
    model = ShapesDiffusionModel(cfg).eval()
    with torch.no_grad():  # sharp, state-dependent logits, so that draws and reveal orders matter
        model.lm_head.weight.normal_(std=1.0)
    return model, ShapesBackbone(tok)


def guided(model, bb, prompt, w):
    """f(codes) of the published loops: the guided codebook logits of one image, as our sampler forms them."""
    from trl_htgrpo.diffusion.sampler import left_pad

    ids, mask = left_pad([prompt, bb.unconditional_prompt()], bb.pad_token_id)

    @torch.no_grad()
    def f(codes):
        image = torch.where(codes == -1, bb.mask_token_id, bb.codes_to_ids(codes.clamp(min=0))).repeat(2, 1)
        x, attn = bb.build_inputs(ids, mask, image)
        logits = bb.image_logits(model, x, attn)
        cond, uncond = logits.chunk(2)
        return (1 + w) * cond - w * uncond

    return f


@pytest.mark.parametrize("family, steps", [("mmada", 12), ("mmada", 15), ("lumina_dimoo", 12), ("lumina_dimoo", 64)])
def test_our_sampler_replays_the_published_loop(setup, family, steps):
    model, bb = setup
    prompts = bb.encode_prompts(PROMPTS)
    N, w, seeds = bb.num_image_tokens, 3.5, [11, 12, 13]
    ours = sample_images(model, bb, prompts, steps=steps, guidance_scale=w, seeds=seeds, sampler=family)
    loop = published_mmada if family == "mmada" else published_lumina
    for b, prompt in enumerate(prompts):  # row b of our batch == the published loop run on prompt b alone
        codes, states = loop(guided(model, bb, prompt, w), N, steps, torch.Generator().manual_seed(seeds[b]))
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
