"""Small compatibility pieces shared by the package's PreTrainedModels."""

from __future__ import annotations


class CheckpointingName:
    """Mixin: transformers 5's ``is_activation_checkpointing`` under its deprecated name ``is_gradient_checkpointing``,
    without the FutureWarning: TRL 1.16 reads that name at every rollout (``unwrap_model_for_generation``)."""

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.is_activation_checkpointing
