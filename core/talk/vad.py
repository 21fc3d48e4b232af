"""Voice activity: the probability that a 32 ms frame holds speech, from the Silero model faster-whisper ships.

faster-whisper's own wrapper reads a whole recording at once and starts from a fresh state every call; a
microphone needs one frame at a time with the network's state carried over, so the ONNX session is run here
directly (about 0.07 ms a frame on one thread: listening costs almost nothing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from config.errors import ModelUnavailable

FRAME = 512  # samples at 16 kHz: the frame size Silero was trained on
_CONTEXT = 64  # samples of the previous frame the model reads before each new one


def silero_path() -> Path:
    try:
        from faster_whisper.utils import get_assets_path
    except ImportError:
        raise ModelUnavailable("voice activity detection needs faster-whisper (pip install faster-whisper)") from None
    path = Path(get_assets_path()) / "silero_vad_v6.onnx"
    if not path.is_file():
        raise ModelUnavailable(f"faster-whisper's Silero VAD model is missing ({path}); reinstall faster-whisper")
    return path


class SileroVad:
    """``vad(frame)`` -> probability of speech in 512 samples of 16 kHz audio; frames must come in order."""

    name = "silero"

    def __init__(self, path: Path | None = None) -> None:
        from core.runtime.onnx_session import open_session

        # One thread: a frame is tiny, and the cores belong to Whisper, the language model and the voice.
        self.session = open_session(
            path or silero_path(), 1, ["CPUExecutionProvider"], "Silero VAD",
            inter_op_num_threads=1, log_severity_level=4,
        )  # fmt: skip
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 1, 128), dtype=np.float32)  # the LSTM's h and c
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        if frame.shape != (FRAME,):
            raise ValueError(f"Silero VAD reads frames of {FRAME} samples, not {frame.shape}")
        samples = frame.reshape(1, FRAME).astype(np.float32, copy=False)
        probability, h, c = self.session.run(
            None, {"input": np.concatenate([self._context, samples], axis=1), "h": self._state[0], "c": self._state[1]}
        )
        self._state = np.stack([h, c])
        self._context = samples[:, -_CONTEXT:]
        return float(np.asarray(probability).reshape(-1)[0])
