"""Process-wide settings, applied by entry points (the CLI, :func:`voiceclap.model.load_model`,
the trainer), never on import."""

from __future__ import annotations

import os

ONEDNN_PRIMITIVE_CACHE_CAPACITY = 8  # see limit_onednn_primitive_cache


def limit_onednn_primitive_cache() -> None:
    """Keep oneDNN's cache of primitives small: enough for one forward pass, not one per input length.

    oneDNN keeps up to 1,024 primitives, one per input shape, a convolution's with its own reordered
    copy of the weights. `masked` pooling gives the Whisper convolutions a new length in nearly every
    batch, so that cache added 100-300 MiB to a scoring run's peak memory (1,262-1,457 MiB against
    1,144-1,156 without it, 200 clips). No cache at all cost a float32 encoder nothing (its matrix
    products go to MKL), but in bfloat16 (load_model's audio_precision) they are oneDNN primitives,
    JIT-compiled for AMX: rebuilt at every call, a clip scored alone took twice as long (13.8-14.8
    against 25.5-29.0 clips/s, whisper-base, 1 thread). A forward pass uses 5 shapes (2 convolutions,
    3 matrix products), so 8 primitives are reused across its layers and the old lengths still go
    (peak RSS 781-788 MiB against 773-810 with none and 886-906 with 1,024). oneDNN reads the
    variable when it first runs, so entry points (the CLI, :func:`load_model`) call this before any
    convolution; a value the user set wins.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_PRIMITIVE_CACHE_CAPACITY))


def configure_threads(local_world: int = 1, threads: int | None = None) -> int:
    """Torch threads: ``threads``, or this machine's cores split between the ``local_world`` processes on it."""
    import torch

    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // local_world)
    torch.set_num_threads(threads)
    return threads


def quiet_transformers() -> None:
    """No per-encoder "Loading weights" bars from transformers: the commands' own bars say what runs."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
