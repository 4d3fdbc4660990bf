"""A cheap evaluation for the trainer's periodic checks: R@1 and the card's rho, no bootstrap, no files."""

from __future__ import annotations

from collections.abc import Sequence

from voiceclap.model import VoiceCLAP

from .corruption_eval import corruption_eval
from .data import EvalClip
from .retrieval import retrieval_eval
from .scorer import ModelScorer

__all__ = ["quick_eval"]


def quick_eval(
    model: VoiceCLAP, clips: Sequence[EvalClip], k: int = 4, seed: int = 0, batch_size: int = 16
) -> dict[str, float | int | None]:
    """``{"r1", "rho", "n"}`` on already decoded clips (``EvalClip(id, language, text, audio)``).

    ``r1``: audio->text R@1 among the clips' distinct transcripts; ``rho``: Spearman of score vs WER
    pooled over each clip's true transcript and ``k`` corruptions (negative is good). Either is
    None when undefined (fewer than 2 distinct transcripts; constant scores). The model is put in
    eval mode for the call and given back in the mode it came in.
    """
    was_training = model.training
    model.eval()
    try:
        scorer = ModelScorer(model, audio_batch_size=batch_size, progress=False)
        retrieval, _ = retrieval_eval(clips, scorer)
        corruption, _ = corruption_eval(clips, scorer, k=k, seed=seed, n_boot=0, progress=False)
    finally:
        model.train(was_training)
    return {
        "r1": retrieval["overall"]["audio_to_text"]["R@1"] if "overall" in retrieval else None,
        "rho": corruption["pooled"]["spearman"]["value"] if "pooled" in corruption else None,
        "n": retrieval["n_clips"],
    }
