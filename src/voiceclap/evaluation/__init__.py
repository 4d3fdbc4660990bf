"""``voiceclap eval``: retrieval, synthetic corruption, gold validation, ASR-WER baseline, calibration, report.

The CLI wires :func:`add_eval_arguments` and :func:`eval_from_args`; the trainer calls
:func:`quick_eval` on :class:`EvalClip` objects. Only the argument parser is imported eagerly, so
that building the ``voiceclap`` command line does not load torch and transformers; the rest loads
on first use.
"""

from importlib import import_module

from .cli import add_eval_arguments, eval_from_args

__all__ = ["EvalClip", "add_eval_arguments", "eval_from_args", "load_eval_set", "quick_eval"]

_LAZY = {"EvalClip": ".data", "load_eval_set": ".data", "quick_eval": ".quick"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
