"""The bundled base model of the shapes world (weights, config and tokenizer ship in the package)."""

from __future__ import annotations

from pathlib import Path

BUNDLED_NAME = "shapes-mdm"
BUNDLED_DIR = Path(__file__).parent / "assets" / BUNDLED_NAME


def resolve_model_path(name_or_path: str | None) -> str:
    """``None`` or ``"shapes-mdm"`` -> the bundled model's folder; anything else is returned as is."""
    if name_or_path in (None, BUNDLED_NAME):
        if not (BUNDLED_DIR / "config.json").exists():
            raise FileNotFoundError(
                f"the bundled shapes model is missing at {BUNDLED_DIR}; rebuild it with examples/pretrain_shapes.py"
            )
        return str(BUNDLED_DIR)
    return name_or_path


def load_base_model(name_or_path: str | None = None):
    """(model, tokenizer) of the bundled shapes model, or of a folder saved with save_pretrained."""
    from transformers import AutoModel, AutoTokenizer

    from .. import models  # noqa: F401  (registers the Auto classes)

    path = resolve_model_path(name_or_path)
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
