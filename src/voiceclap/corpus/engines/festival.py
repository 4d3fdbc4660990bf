"""Festival with its HTS voices (Debian ``festival`` + ``festvox-*-hts``)."""

from __future__ import annotations

from typing import ClassVar

from .base import FileOutputEngine, SynthesisError, read_wav, run_command

__all__ = ["FestivalEngine"]


class FestivalEngine(FileOutputEngine):
    """Festival's ``text2wave`` with HTS voices; rate through the HTS engine's speed option (``-r``).

    Festival's HTS module passes only the model and the speed to hts_engine, so it ignores
    ``pitch``. Only HTS voices are listed: the other festvox voices are diphone/cluster-unit voices
    whose speed cannot be set this way.
    """

    name = "festival"
    binary = "text2wave"
    catalogue: ClassVar[dict[str, tuple[str, ...]]] = {
        "ca": ("upc_ca_ona_hts",),  # festvox-ca-ona-hts, 16 kHz
        "en": ("cmu_us_slt_arctic_hts",),  # festvox-us-slt-hts, 32 kHz
    }
    # Festival reads bytes; a voice declares its text coding in its definition (``coding``).
    _ENCODINGS: ClassVar[dict[str, str]] = {"upc_ca_ona_hts": "iso-8859-15"}

    def raw(self, text, voice, rate, pitch):
        try:
            encoded = text.encode(self._ENCODINGS.get(voice.name, "utf-8"))
        except UnicodeEncodeError as error:
            raise SynthesisError(f"{voice.id} cannot read {text!r}: {error}") from error
        path = self._wav_path()
        speed = f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {rate:.3f}))))'
        # A voice festival lacks is an error it prints but does not exit with: no file is written,
        # which read_wav reports.
        run_command([self.binary, "-eval", f"(voice_{voice.name})", "-eval", speed, "-o", str(path)], stdin=encoded)
        return read_wav(path)
