"""Import-only stand-in for torchaudio, for Coqui TTS's inference (see ../README.md)."""

from . import functional, transforms  # noqa: F401

__version__ = "0.0.0+tantra-stand-in"


def load(*args, **kwargs):
    raise NotImplementedError("torchaudio.load: torchaudio is not installed (tantra's stand-in)")


def save(*args, **kwargs):
    raise NotImplementedError("torchaudio.save: torchaudio is not installed (tantra's stand-in)")
