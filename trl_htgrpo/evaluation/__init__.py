"""Benchmarks of text-to-image models: GenEval and DPG-Bench in their official output layouts, scored in process,
the preference rewards as metrics, and the in-memory GenEval of the training job (docs/evaluation.md).

=================  =================================================================================
module             what
=================  =================================================================================
``sampling``       per-image seeds (:func:`image_seed`), the backbone's sampler settings, batched drawing
``in_memory``      :func:`evaluate_model`, :func:`evaluate_trainer`: GenEval's rules without files;
                   :func:`sample_images`, :func:`sample_verdicts`: one image per prompt, with verdicts
``failures``       :func:`failure_table`: each image's first failing clause per tag, what the detector saw
``geneval``        :func:`run_geneval`: GenEval's folder layout, in-process scoring, its summary
``dpg``            :func:`run_dpg`: DPG-Bench's 2x2 grids, question dependencies, its scores
``vqa``            :class:`BlipVQA`: the VQA model of the in-process DPG-Bench score
``metrics``        :func:`score_metrics`: preference rewards as metrics (mean and spread)
``outputs``        the manifest of an output folder (resume, refuse another model's images), atomic writes
``loading``        :func:`load_for_evaluation`: a checkpoint, its tokenizer and backbone on a device
``grid``           :func:`image_grid`: samples with their prompts and verdicts
=================  =================================================================================

Model code (transformers' Mask2Former, CLIP, BLIP) is imported only when a benchmark scores.
"""

from .dpg import DPGItem, DPGQuestion, dpg_summary, format_dpg_summary, read_dpg, read_questions, run_dpg
from .failures import failure_table, format_failure_table
from .geneval import format_geneval_summary, geneval_summary, read_metadata, run_geneval
from .grid import image_grid
from .in_memory import evaluate_model, evaluate_trainer, sample_images, sample_verdicts
from .loading import LoadedModel, load_for_evaluation, run_manifest
from .metrics import parse_metrics, score_metrics
from .outputs import MANIFEST, OutputFolderError
from .sampling import image_seed, sampler_settings
from .vqa import DEFAULT_VQA_MODEL, BlipVQA

__all__ = [
    "evaluate_model", "evaluate_trainer", "image_grid", "read_metadata", "image_seed", "sampler_settings",
    "sample_images", "sample_verdicts", "run_geneval", "geneval_summary", "format_geneval_summary", "run_dpg",
    "read_dpg", "read_questions", "dpg_summary", "format_dpg_summary", "DPGItem", "DPGQuestion", "BlipVQA", "DEFAULT_VQA_MODEL",
    "score_metrics", "parse_metrics", "load_for_evaluation", "LoadedModel", "run_manifest", "OutputFolderError",
    "MANIFEST", "failure_table", "format_failure_table",
]
