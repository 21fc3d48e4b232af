"""The barge-in's hold on a reply (``core.talk.barge_in_hold``), step by step on a real playback queue: the voice
pauses at the decision, the turn's events are kept until its end, and every way out leaves the voice playing."""

import threading

import numpy as np

from core.talk.barge_in_hold import BargeInHold
from core.talk.sound_io import PlaybackQueue
from core.talk.turns import Ended, Speculate, Utterance

SOUND = np.full(4800, 0.2, np.float32)


def held_reply() -> tuple[BargeInHold, PlaybackQueue]:
    playback, replying = PlaybackQueue(), threading.Event()
    playback.add(SOUND, tag=1)
    replying.set()
    hold = BargeInHold(playback, replying, clock=lambda: 12.5)
    hold.pause()
    return hold, playback


def turn() -> Utterance:
    return Utterance(np.zeros(1600, np.float32), 13.0, 1)


def test_a_barge_in_pauses_the_voice_and_keeps_its_turn_until_it_ends():
    hold, playback = held_reply()
    assert hold.paused_at == 12.5 and not playback.take(480).any() and playback.busy  # paused, nothing dropped
    assert hold.keep(Speculate(turn()), spoken_to=True)  # a draft of the barge-in's turn is the hold's too
    assert hold.take() is None  # not ended yet
    assert hold.keep(Ended(turn()), spoken_to=False)
    utterance, spoken_to = hold.take()
    assert utterance.last_voiced == 13.0 and spoken_to is False
    assert not hold.keep(Ended(turn()), spoken_to=True)  # the next turn is the conversation's again


def test_a_barge_in_that_was_none_resumes_the_voice_where_it_paused():
    hold, playback = held_reply()
    hold.keep(Ended(turn()), spoken_to=True)
    hold.take()
    hold.resume()
    assert np.array_equal(playback.take(4800), SOUND)


def test_a_second_barge_in_before_the_first_is_judged_keeps_the_voice_paused():
    hold, playback = held_reply()
    hold.keep(Ended(turn()), spoken_to=True)
    hold.pause()  # the user spoke again
    hold.resume()  # the first turn was judged no barge-in
    assert not playback.take(480).any()


def test_the_reply_ending_hands_on_the_held_turn_and_never_leaves_the_voice_paused():
    hold, playback = held_reply()
    hold.keep(Ended(turn()), spoken_to=True)
    held = hold.take()
    hold.put_back(held)  # Ctrl-C while it was being heard
    assert hold.release() == held
    assert playback.take(480).any() and hold.release() is None
    hold.replying.clear()
    playback.add(SOUND, tag=-1)  # the wake word's chime
    hold.pause()  # speech over it, with no reply to hold
    assert not playback.busy and hold.take() is None  # the chime stops, nothing is held
