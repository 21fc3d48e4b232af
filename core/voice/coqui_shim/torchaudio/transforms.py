"""Import-only stand-in for torchaudio.transforms (see ../README.md)."""


class _Missing:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"torchaudio.transforms.{type(self).__name__}: torchaudio is not installed")


class Resample(_Missing):
    pass


class MelSpectrogram(_Missing):
    pass
