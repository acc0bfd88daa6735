"""The TRL methods HTGRPOTrainer overrides keep the signatures they were written for (TRL is pinned to 1.16.x;
this fails loudly when a TRL release changes one), and __init__ takes GRPOTrainer's arguments in its order."""

import inspect

import trl
from trl import GRPOTrainer

from trl_htgrpo import HTGRPOTrainer

#: the private GRPOTrainer / Trainer methods HTGRPOTrainer overrides, with the parameters of TRL 1.16
OVERRIDDEN = {
    "_tokenize_prompts": ["self", "prompts"],
    "_generate_single_turn": ["self", "prompt_ids", "images", "multimodal_fields", "num_generations", "has_tool_images"],
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_generate_and_score_completions": ["self", "inputs"],
    "_get_per_token_logps_and_entropies": ["self", "model", "input_ids", "attention_mask", "logits_to_keep",
                                           "batch_size", "compute_entropy", "compute_aux_loss"],
    "_compute_loss": ["self", "model", "inputs"],
    "_save_checkpoint": ["self", "model", "trial"],
    "_load_from_checkpoint": ["self", "resume_from_checkpoint", "model"],
}


def test_trl_is_the_pinned_minor_version():
    assert trl.__version__.startswith("1.16."), trl.__version__


def test_overridden_private_methods_match_the_installed_trl():
    ours = {name for name, v in vars(HTGRPOTrainer).items() if callable(v) and name.startswith("_") and not name.startswith("__")}
    theirs = {name for name in ours if hasattr(GRPOTrainer, name)}
    assert theirs == set(OVERRIDDEN), f"overrides changed: {sorted(theirs ^ set(OVERRIDDEN))}"
    for name, params in OVERRIDDEN.items():
        installed = [p for p in inspect.signature(getattr(GRPOTrainer, name)).parameters if p not in ("kwargs", "args")]
        assert installed[: len(params)] == params, f"GRPOTrainer.{name} is now {installed}"
        mine = list(inspect.signature(getattr(HTGRPOTrainer, name)).parameters)
        assert mine[: len(params)] == params, f"HTGRPOTrainer.{name} is {mine}"


def test_init_takes_every_grpo_argument_in_grpo_order():
    grpo = list(inspect.signature(GRPOTrainer.__init__).parameters)
    ours = list(inspect.signature(HTGRPOTrainer.__init__).parameters)
    assert ours[: len(grpo)] == grpo and ours[len(grpo):] == ["backbone"]
