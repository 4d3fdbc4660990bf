"""The offline TTS engines of the corpus builder, one module per engine (family).

* :mod:`.base`: :class:`~.base.Voice`, :class:`~.base.SynthesisError`, the engine interface and
  the subprocess / in-process helpers;
* subprocess engines: :mod:`.espeak` (espeak-ng, MBROLA), :mod:`.pico` (SVOX Pico), :mod:`.flite`,
  :mod:`.rhvoice` (RHVoice), :mod:`.festival` (Festival HTS voices), :mod:`.openjtalk` (Open JTalk);
* in-process ONNX engines: :mod:`.piper_tts` (Piper), :mod:`.hibari_tts` (hibari).

The registry and the public calls (``ENGINES``, ``synthesize``, ``discover_voices``) are in
:mod:`voiceclap.corpus.tts`.
"""
