"""Wake words: the voice loop answers only after its name (``tantra chat --voice --wake hey_jarvis``).

The detector is openWakeWord as ``pyopen-wakeword`` packs it: its models (a mel spectrogram, a speech embedding and
one small classifier per word) and the TensorFlow Lite runtime come inside the wheel, so nothing is downloaded.
It reads 80 ms of audio at a time and costs about 10% of a core while it runs, so ``WakeListener`` runs it only
around speech: the voice-activity detector (already running, 0.07 ms a frame) wakes it, and it first reads the last
1.5 s it missed, so a word that began the speech is heard whole. In silence, listening costs what it always did.

``strip_wake_word`` takes the word off the front of a transcript: "Hey Jarvis, what time is it?" is the question
"what time is it?"; a transcript that is only the word means the question comes next.
"""

from __future__ import annotations

import difflib
import re
from collections import deque

import numpy as np

from config.errors import BadInput, ModelUnavailable

WAKE_WORDS = {
    "hey_jarvis": "hey Jarvis",
    "alexa": "Alexa",
    "hey_mycroft": "hey Mycroft",
    "hey_rhasspy": "hey Rhasspy",
    "okay_nabu": "okay Nabu",
}
"""The words the wheel carries: their model names, and how they are said."""


def check_wake_word(name: str) -> str:
    """``name`` as a model name (spaces, dashes and case forgiven), or a one-line error listing the words."""
    key = re.sub(r"[\s-]+", "_", name.strip().lower())
    if key not in WAKE_WORDS:
        listed = ", ".join(f"{key} ({spoken!r})" for key, spoken in WAKE_WORDS.items())
        raise BadInput(f"no wake word {name!r}; the words are {listed}")
    return key


class WakeWord:
    """``detector(frame)`` -> the highest probability that the word was just said, over the windows the frame
    completed (0.0 while it gathers audio)."""

    def __init__(self, name: str, threshold: float = 0.5) -> None:
        try:
            from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures
        except ImportError:
            raise ModelUnavailable("wake words need pyopen-wakeword (pip install pyopen-wakeword)") from None
        self.name = check_wake_word(name)
        self.spoken = WAKE_WORDS[self.name]
        self.threshold = threshold
        try:
            self._features = OpenWakeWordFeatures.from_builtin()
            self._model = OpenWakeWord.from_builtin(Model(self.name))
        except (OSError, RuntimeError) as error:
            raise ModelUnavailable(f"the wake word detector does not run here ({error})") from None
        self(np.zeros(1280, np.float32))  # it starts on 8 s of silence: read them now, not at the first word

    def __call__(self, samples: np.ndarray) -> float:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()  # it reads 16-bit PCM
        best = 0.0
        for features in self._features.process_streaming(pcm):
            for probability in self._model.process_streaming(features):
                best = max(best, probability)
        return best

    def heard(self, samples: np.ndarray) -> bool:
        return self(samples) >= self.threshold

    def reset(self) -> None:
        self._features.reset()
        self._model.reset()


class WakeListener:
    """``listener.feed(frame, speech_probability)`` -> True when the wake word was just heard. ``detector`` is a
    ``WakeWord`` (or any frame -> probability callable with ``threshold``)."""

    def __init__(self, detector, history_seconds: float = 1.5, linger_seconds: float = 1.0, frame: int = 512) -> None:
        self.detector = detector
        self._history: deque[np.ndarray] = deque(maxlen=max(1, round(history_seconds * 16000 / frame)))
        self._linger = max(1, round(linger_seconds * 16000 / frame))
        self._quiet = self._linger  # frames since the last likely speech
        self.frames_read = 0
        """Frames the detector has read: how little it runs in silence (the tests and the benchmark)."""

    def feed(self, samples: np.ndarray, speech_probability: float) -> bool:
        self._quiet = 0 if speech_probability >= 0.3 else self._quiet + 1
        if self._quiet >= self._linger:
            self._history.append(samples)
            return False
        backlog = [*self._history, samples]  # what it missed while asleep, then this frame
        self._history.clear()
        self.frames_read += len(backlog)
        return max(self.detector(frame) for frame in backlog) >= self.detector.threshold


def strip_wake_word(text: str, spoken: str) -> str:
    """``text`` without the wake word at its front (as Whisper writes it: "Hey, Jarvis." or "Hey Jarvis!"); the
    word's name is matched loosely ("Jervis"), within the first four words. Text without it is returned as it is."""
    name = spoken.split()[-1].lower()
    words = text.split()
    for index, word in enumerate(words[:4]):
        bare = re.sub(r"[^\w']", "", word).lower()
        if bare and difflib.SequenceMatcher(None, bare, name).ratio() >= 0.7:
            rest = " ".join(words[index + 1 :]).lstrip(" ,.!?;:-")
            return rest[:1].upper() + rest[1:]
    return text


def listening_chime(rate: int) -> np.ndarray:
    """Two short rising notes (0.14 s at ``rate``): the wake word was heard and the question can come."""
    t = np.arange(int(0.07 * rate)) / rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # no click at either end
    tone = [0.15 * np.sin(2 * np.pi * pitch * t) * fade for pitch in (660.0, 880.0)]
    return np.concatenate(tone).astype(np.float32)
