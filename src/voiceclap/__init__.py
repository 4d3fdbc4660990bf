"""VoiceCLAP: reference-free, multilingual speech/transcript fidelity scores (a substitute for WER).

    from voiceclap import load_model, load_audio
    model = load_model()                      # the shipped default model, or a directory / hub id
    model.score(load_audio("clip.flac"), "what was said")

The model classes pull in torch and transformers; they are imported on first use so that
`import voiceclap` and `voiceclap --help` stay fast.
"""

from importlib.metadata import PackageNotFoundError, version

from .pretrained import DEFAULT_MODEL_NAME as DEFAULT_MODEL

try:
    __version__ = version("voiceclap")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["DEFAULT_MODEL", "VoiceCLAP", "__version__", "load_audio", "load_model"]

_LAZY = {"VoiceCLAP": "voiceclap.model", "load_model": "voiceclap.model", "load_audio": "voiceclap.audio"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'voiceclap' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
