"""A spoken turn read in a window cut to it (``FasterWhisperEngine.transcribe_turn``, what the voice loop hears with):
the same words as the usual 30 s window, silence as silence, and the usual way where the shortcut does not apply."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from core.hearing.transcriber import TranscribeOptions, spoken_text
from tests.conftest import SAMPLE, SAMPLE_TEXT

pytestmark = pytest.mark.slow  # the real tiny.en


@pytest.fixture(scope="module")
def whisper(loader):
    engine = loader.load_whisper()
    assert engine.name == "faster-whisper"
    return engine


def test_a_turn_reads_as_in_the_full_window(whisper):
    speech, _ = soundfile.read(SAMPLE, dtype="float32")
    options = TranscribeOptions(beam_size=5)
    quick = whisper.transcribe_turn(speech, options)
    assert quick == spoken_text(whisper.transcribe_block(speech, options)[1])
    assert quick.lower() == SAMPLE_TEXT.lower()


def test_silence_is_no_words(whisper):
    from core.talk.heard_filter import is_noise

    for seconds in (1, 2, 5):  # (the 30 s window invents "You" for 2 s and 5 s of it)
        said = whisper.transcribe_turn(np.zeros(seconds * 16000, np.float32), TranscribeOptions())
        # Nothing the voice loop would answer. On an AVX2 CPU tiny.en says "Thank you." over 5 s of it, at a
        # no-speech probability of 0.96 but an average log-probability of -0.97, just inside faster-whisper's rule.
        assert is_noise(said), said


def test_a_turn_too_long_for_one_window_or_another_task_is_left_to_the_usual_way(whisper):
    speech, _ = soundfile.read(SAMPLE, dtype="float32")
    assert whisper.transcribe_turn(np.tile(speech, 8), TranscribeOptions()) is None  # 32 s
    assert whisper.transcribe_turn(speech, TranscribeOptions(task="translate")) is None
