"""The bundled base model of the shapes world (weights, config and tokenizer ship in the package)."""

from __future__ import annotations

from pathlib import Path

BUNDLED_NAME = "shapes-mdm"
BUNDLED_DIR = Path(__file__).parent / "assets" / BUNDLED_NAME


def bundled_path() -> str:
    """The bundled model's folder (registered as the model name ``"shapes-mdm"``)."""
    if not (BUNDLED_DIR / "config.json").exists():
        raise FileNotFoundError(
            f"the bundled shapes model is missing at {BUNDLED_DIR}; rebuild it with examples/pretrain_shapes.py"
        )
    return str(BUNDLED_DIR)


def load_base_model(name_or_path: str | None = None):
    """(model, tokenizer) of the bundled shapes model, or of a folder saved with save_pretrained."""
    from transformers import AutoModel, AutoTokenizer

    from ..plugins import resolve_model_name

    path = resolve_model_name(name_or_path or BUNDLED_NAME)
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
