"""Import-only stand-in for torchaudio.functional (see ../README.md)."""


def resample(*args, **kwargs):
    raise NotImplementedError("torchaudio.functional.resample: torchaudio is not installed (tantra's stand-in)")
