"""Models shipped inside the package (trained parts only; base encoders come from their sources)."""

from pathlib import Path

PRETRAINED_DIR = Path(__file__).parent
DEFAULT_MODEL_NAME = "voiceclap-base-e5s"
# The whisper scorer's (voiceclap.teacher) score -> expected-WER map, fitted by `voiceclap eval
# --scorers teacher --fit-calibration` on held-out clips.
TEACHER_CALIBRATION_PATH = PRETRAINED_DIR / "whisper-teacher-calibration.json"


def default_model_path() -> Path:
    path = PRETRAINED_DIR / DEFAULT_MODEL_NAME
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the default model {DEFAULT_MODEL_NAME!r} is not shipped in this build; pass --model DIR"
        )
    return path
