"""The VoiceCLAP trainer (not imported by the library): ``python -m voiceclap.train`` or
``voiceclap train``, under torchrun for several processes. See docs/TRAINING.md."""

from voiceclap.train.main import add_train_arguments, train, train_from_args

__all__ = ["add_train_arguments", "train", "train_from_args"]
