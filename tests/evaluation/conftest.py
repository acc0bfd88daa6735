"""Tiny random models for the benchmark tests, saved once per session (nothing is downloaded): MMaDA and
Lumina-DiMOO checkpoints in their published layouts (tests/real_layouts.py), GenEval's photograph detector
(Mask2Former + CLIP, CLIP also as the clipscore / pickscore metric), and a BLIP VQA model; the inputs (a 3-prompt
GenEval metadata file, a 2-prompt DPG-Bench prompts folder and question file) written here."""

from __future__ import annotations

import json

import pytest

from evaluation_helpers import CSV_HEADER, DPG_PROMPTS, DPG_ROWS, METADATA, save_tiny_blip


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="session")
def real_models(tmp_path_factory):
    """{"mmada": checkpoint, "magvit": its separate decoder, "lumina": checkpoint with vqvae/}: tiny, random, 32 px."""
    from real_layouts import save_tiny_lumina, save_tiny_magvitv2, save_tiny_mmada

    root = tmp_path_factory.mktemp("real-layouts")
    return {"mmada": str(save_tiny_mmada(root / "mmada")), "magvit": str(save_tiny_magvitv2(root / "magvit")),
            "lumina": str(save_tiny_lumina(root / "lumina"))}


@pytest.fixture(scope="session")
def photo_models(tmp_path_factory):
    """(mask2former folder, clip folder): every Mask2Former query is a person; the CLIP folder serves GenEval's
    colours and the CLIP-based metrics."""
    from tiny_photo import save_tiny_photo_models

    return save_tiny_photo_models(tmp_path_factory.mktemp("tiny-photo"))


@pytest.fixture(scope="session")
def blip_dirs(tmp_path_factory):
    """{"random": a tiny BLIP VQA, "yes": the same with "yes" always first}."""
    root = tmp_path_factory.mktemp("tiny-blip")
    return {"random": save_tiny_blip(root / "random"), "yes": save_tiny_blip(root / "yes", yes_bias=50.0)}


@pytest.fixture
def metadata_file(tmp_path):
    path = tmp_path / "evaluation_metadata.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in METADATA))
    return path


@pytest.fixture
def dpg_inputs(tmp_path):
    """(prompts folder, questions csv) of the two DPG items."""
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for item, text in DPG_PROMPTS.items():
        (prompts / f"{item}.txt").write_text(text)  # no trailing newline, as DPG-Bench's files
    lines = [CSV_HEADER]
    for item, qid, dep, tup, question in DPG_ROWS:
        broad, detailed = (s.strip() for s in tup.split("(")[0].split("-", 1))
        lines.append(f'{item},"{DPG_PROMPTS[item]}",,{qid},"{dep}",{broad},{detailed},"{tup}","{question}"')
    csv = tmp_path / "dpg_bench.csv"
    csv.write_text("\n".join(lines) + "\n")
    return prompts, csv
