"""HTGRPOConfig: defaults, validation messages, CLI flags."""

import pytest
from trl import TrlParser

from trl_htgrpo import HTGRPOConfig
from trl_htgrpo.hierarchy import default_stage_iterations


def test_defaults_differ_from_grpo_where_documented(tmp_path):
    c = HTGRPOConfig(output_dir=str(tmp_path), report_to="none")
    assert (c.num_iterations, c.stage_iterations, c.disable_dropout) == (3, [1, 1, 1], True)
    assert c.bf16 is False  # no CUDA here: TRL's default True would fail on CPU
    assert c.mask_truncated_completions is False


@pytest.mark.parametrize("k,expected", [(1, [1, 0, 0]), (2, [1, 1, 0]), (3, [1, 1, 1]), (4, [2, 1, 1]), (6, [2, 2, 2])])
def test_default_stage_split(k, expected):
    assert default_stage_iterations(k) == expected


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(num_iterations=4, stage_iterations=[1, 1, 1]), r"sums to 3 but num_iterations=4.*\[2, 1, 1\]"),
        (dict(token_sample_ratio=0.0), r"token_sample_ratio=0.0 must lie in \(0, 1\]"),
        (dict(token_sample_ratio=1.5), r"token_sample_ratio=1.5"),
        (dict(partition="step", structure_fraction=1.0), r"structure_fraction=1.0 must lie in \(0, 1\)"),
        (dict(entropy_threshold=0.0), r"entropy_threshold=0.0"),
        (dict(estimator="magic"), r"estimator='magic' is unknown; choose one of \['d1', 'ht', 'maskgrpo', 'trace', 'unigrpo'\]"),
        (dict(partition="layout"), r"partition='layout' is unknown; choose one of \['decision', 'entropy', 'step'\]"),
        (dict(credit="layered"), r"credit='layered' is unknown"),
        (dict(refine_context="blank"), r"refine_context='blank' is unknown"),
        (dict(mask_truncated_completions=True), r"mask_truncated_completions=True would mask every image"),
        (dict(stage_iterations=[3, -1, 1]), r"must be 3 non-negative ints \(iterations of the stages \['global', 'structure', 'refine'\]\)"),
        (dict(guidance_scale=float("nan")), r"guidance_scale=nan must be a finite number >= 0"),
        (dict(temperature=0.0), r"temperature=0.0 must be a finite number > 0"),
        (dict(diffusion_steps=0), r"diffusion_steps=0 must be >= 1"),
        (dict(sampler="ddpm"), r"sampler='ddpm' is unknown; choose one of \['lumina_dimoo', 'maskgit', 'mmada'\]"),
        (dict(pad_to_multiple_of=64), r"pad_to_multiple_of=64 would pad images"),
    ],
)
def test_bad_combinations_name_the_field_and_the_fix(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        HTGRPOConfig(output_dir=str(tmp_path), report_to="none", **kw)


def test_every_field_is_a_cli_flag(tmp_path):
    (c,) = TrlParser((HTGRPOConfig,)).parse_args_and_config(
        ["--output_dir", str(tmp_path), "--num_iterations", "4", "--stage_iterations", "2", "1", "1",
         "--partition", "step", "--credit", "continuous", "--credit_signal", "entropy", "--token_sample_ratio", "0.25",
         "--refine_context", "masked", "--diffusion_steps", "8", "--guidance_scale", "2.0", "--report_to", "none"]
    )
    assert (c.stage_iterations, c.partition, c.credit, c.credit_signal) == ([2, 1, 1], "step", "continuous", "entropy")
    assert (c.token_sample_ratio, c.refine_context, c.diffusion_steps, c.guidance_scale) == (0.25, "masked", 8, 2.0)


def test_a_knob_two_partitions_share_is_taken_by_either(tmp_path):
    for partition in ("step", "decision"):
        c = HTGRPOConfig(output_dir=str(tmp_path), report_to="none", partition=partition, structure_fraction=0.1)
        assert (c.partition, c.structure_fraction) == (partition, 0.1)


def test_baselines_default_to_uniform_credit_and_reject_foreign_knobs(tmp_path):
    c = HTGRPOConfig(output_dir=str(tmp_path), report_to="none", estimator="maskgrpo")
    assert c.credit == "uniform"
    assert HTGRPOConfig(output_dir=str(tmp_path), report_to="none").credit == "two_level"
    with pytest.raises(ValueError, match=r"trace_block_size=4 only acts with estimator='trace' but estimator='maskgrpo'"):
        HTGRPOConfig(output_dir=str(tmp_path), report_to="none", estimator="maskgrpo", trace_block_size=4)
    with pytest.raises(ValueError, match=r"refine_context='sketch' only acts with estimator='ht'"):
        HTGRPOConfig(output_dir=str(tmp_path), report_to="none", estimator="d1", refine_context="sketch")


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(estimator="maskgrpo", structure_weight=4.0), r"structure_weight=4.0 only acts with credit='two_level'"),
        (dict(credit="uniform", structure_weight=4.0), r"structure_weight=4.0 only acts with credit='two_level'"),
        (dict(credit_strength=2.0), r"credit_strength=2.0 only acts with credit='continuous'"),
        (dict(credit_signal="entropy"), r"credit_signal='entropy' only acts with credit='continuous'"),
        (dict(structure_fraction=0.2), r"structure_fraction=0.2 only acts with partition='step' or partition='decision'"),
        (dict(partition="step", entropy_threshold=0.3), r"entropy_threshold=0.3 only acts with partition='entropy'"),
        (dict(estimator="d1", partition="step"), r"partition='step' has no effect with credit='uniform'"),
        (dict(estimator="unigrpo", entropy_threshold=0.4), r"entropy_threshold=0.4 has no effect with credit='uniform'"),
        (dict(credit="continuous", stage_iterations=[3, 0, 0], partition="step"),
         r"partition='step' has no effect with credit='continuous'"),
        (dict(stage_iterations=[3, 0, 0], refine_context="sketch"), r"refine_context='sketch' has no effect without a refinement stage"),
        (dict(estimator="unigrpo", unigrpo_num_copies=0), r"unigrpo_num_copies=0 must be >= 1"),
        (dict(estimator="d1", unigrpo_num_copies=2), r"unigrpo_num_copies=2 only acts with estimator='unigrpo'"),
    ],
)
def test_knobs_that_would_be_ignored_are_errors(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        HTGRPOConfig(output_dir=str(tmp_path), report_to="none", **kw)


def test_baselines_have_no_stages_unless_asked_and_resolved_fields_round_trip(tmp_path):
    c = HTGRPOConfig(output_dir=str(tmp_path), report_to="none", estimator="unigrpo", unigrpo_mask_range=(0.1, 0.9))
    assert c.stage_iterations == [3, 0, 0] and c.credit == "uniform" and c.unigrpo_mask_range == [0.1, 0.9]
    fields = ("estimator", "stage_iterations", "credit", "unigrpo_mask_range", "partition", "structure_weight")
    again = HTGRPOConfig(output_dir=str(tmp_path), report_to="none", **{f: getattr(c, f) for f in fields})  # e.g. a sweep
    assert all(getattr(again, f) == getattr(c, f) for f in fields)
    staged = HTGRPOConfig(output_dir=str(tmp_path), report_to="none", estimator="maskgrpo", stage_iterations=[1, 1, 1],
                          partition="step", structure_fraction=0.2)
    assert (staged.stage_iterations, staged.credit) == ([1, 1, 1], "uniform")  # stages asked for: accepted


def test_docs_api_is_generated_from_the_code():
    """docs/api.md lists every added field with its default and help text, and the registries with their knobs:
    regenerate it with `python docs/generate_api.py` when this fails."""
    import importlib.util
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    spec = importlib.util.spec_from_file_location("generate_api", docs / "generate_api.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (docs / "api.md").read_text() == gen.render(), "docs/api.md is stale: run python docs/generate_api.py"
    assert "| `sampler` | `None` |" in gen.render() and "| `ESTIMATORS` | `estimator` | `ht` |" in gen.render()
