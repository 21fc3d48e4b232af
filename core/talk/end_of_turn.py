"""Smart Turn v3: whether what the user said so far sounds like a finished turn, from its sound alone (pitch falling,
a question's shape, a trailing "and..."), so that a complete question is answered after a short pause and a
thinking pause is waited out.

The model (pipecat's, BSD-2, 8.7 MB) is a Whisper-tiny encoder with a classifier: it reads the last 8 s of the turn
as Whisper's 80 log-mel bands (faster-whisper's feature extractor, which matches the reference to 3e-6) and gives
the probability that the turn is complete, in 45-140 ms on one thread here. ``core.talk.turns.TurnDetector`` asks
it once the user pauses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from config.model_config import find_store_model

MODEL = "smart-turn-v3"
SAMPLE_RATE = 16_000
WINDOW = 8 * SAMPLE_RATE  # the model reads 8 s: the end of a longer turn, a shorter one padded in front


class EndOfTurn:
    """``end_of_turn(audio)`` -> the probability that the turn in ``audio`` (16 kHz float32) is complete."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        from core.runtime.onnx_session import open_session

        self._features = FeatureExtractor(feature_size=80, chunk_length=WINDOW // SAMPLE_RATE)
        self._session = open_session(path, threads, ["CPUExecutionProvider"], "Smart Turn model",
                                     inter_op_num_threads=1)  # fmt: skip

    def __call__(self, audio: np.ndarray) -> float:
        audio = audio[-WINDOW:]
        audio = np.pad(audio, (WINDOW - len(audio), 0)).astype(np.float64)
        normalised = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)  # as Whisper's extractor's do_normalize
        features = self._features(normalised.astype(np.float32), padding=0)[:, : WINDOW // 160]
        (probability,) = self._session.run(None, {"input_features": features[None]})[0][0]
        return float(probability)


def load_end_of_turn(settings, warn) -> EndOfTurn | None:
    """The model from the store (pulled once), or None with one line from ``warn`` when it cannot run: the turn's
    end is then decided by silence alone."""
    from config.errors import TantraError
    from core.runtime import model_store

    if settings.end_of_turn != "smart-turn":
        return None
    model = find_store_model(MODEL)
    try:
        root = model_store.ensure(model, settings)
        end_of_turn = EndOfTurn(model_store.verify_file(model, root, "smart-turn.onnx"))
        end_of_turn(np.zeros(SAMPLE_RATE, np.float32))  # the first run is the slowest
        return end_of_turn
    except TantraError as error:
        warn(f"turns end after 600 ms of silence: Smart Turn is unavailable ({error})")
        return None
