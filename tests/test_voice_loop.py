"""The voice loop on the stand-in sound card with fake models: turns, speculation, half-duplex, echo, barge-in,
Ctrl-C. Audio is made of tones: the fake Whisper hears a tone's pitch as words, the fake voice speaks in 440 Hz,
and an energy detector stands in for Silero. Each test runs a few seconds of real time."""

import re
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile

from core.language.chat_session import ChatSession
from core.language.conversation import SamplingOptions
from core.talk.events import Note, Roles, TurnDone, VoiceOptions
from core.talk.stand_in_audio import RecordingSource, Room, StandInAudio
from core.talk.voice_loop import ECHO_BURST_SECONDS, VoiceLoop
from core.voice.speaker import Speaker
from tests.conftest import ROOT
from tests.fakes import FakeVoice, fake_language_model

RATE = 16000
WORDS = {300: "hello there", 500: "tell me more", 700: "stop please"}
TANTRA_PITCH = 440
SPEED = 6  # the stand-in's timeline runs six times faster than real time: the fake models take milliseconds


def tone(pitch: int, seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def pitch_of(audio: np.ndarray) -> int:
    spectrum = np.abs(np.fft.rfft(audio))
    return int(round(np.argmax(spectrum) * RATE / len(audio) / 10) * 10)


def sounding(audio: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """For each 10 ms of ``audio``, whether something sounds in it."""
    windows = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    return np.abs(windows).max(axis=1) > threshold


def tones(audio: np.ndarray) -> list[np.ndarray]:
    """The runs of sound in ``audio``, split where it is silent for 100 ms or more."""
    loud = np.flatnonzero(sounding(audio))
    if not len(loud):
        return []
    breaks = np.flatnonzero(np.diff(loud) > 10)
    starts, ends = np.r_[loud[0], loud[breaks + 1]], np.r_[loud[breaks], loud[-1]]
    return [audio[start * 160 : (end + 1) * 160] for start, end in zip(starts, ends)]


WAKE_PITCH = 1100  # a tone that stands in for "hey Jarvis"


def has_pitch(audio: np.ndarray, pitch: int) -> bool:
    spectrum = np.abs(np.fft.rfft(audio))
    return spectrum[round(pitch * len(audio) / RATE)] > 0.2 * spectrum.max()


def energy_vad(frame: np.ndarray) -> float:
    return 1.0 if float(np.sqrt(np.mean(frame**2))) > 0.01 else 0.0


class Conversation:
    """A fake-model voice session over ``mic`` audio; ``events`` holds everything ``run`` yielded."""

    def __init__(self, mic, tmp_path, barge_in="auto", room=None, reply=None, echo_transcript=None,
                 wake=None, echo_canceller=None, trailing=1.0) -> None:  # fmt: skip
        self.speaker_file = tmp_path / "speaker.wav"
        self.link = StandInAudio(RecordingSource(mic), RATE, self.speaker_file, room=room, speed=SPEED,
                                 trailing_seconds=trailing)  # fmt: skip
        options = VoiceOptions(barge_in=barge_in, wake=wake, echo_canceller=echo_canceller)
        self.loop = VoiceLoop(self.link, energy_vad, options)
        loaded = fake_language_model(reply=reply)
        self.session = ChatSession(loaded["chat"], SamplingOptions(max_tokens=400), "short")
        self.heard_audio: list[np.ndarray] = []

        def hear(audio: np.ndarray) -> str:
            self.heard_audio.append(audio)
            pitch = pitch_of(audio)
            if pitch == TANTRA_PITCH:  # Tantra's own voice came back: a perfect transcript of what it said
                return echo_transcript or "you"
            if pitch == WAKE_PITCH or has_pitch(audio, WAKE_PITCH):  # the wake word, said first
                rest = WORDS.get(pitch_of(audio[len(audio) // 2 :]), "")
                return f"Hey, Jarvis. {rest}".strip()
            said = [WORDS.get(pitch_of(part), "") for part in tones(audio)]  # a pitch said again is the same words
            return " ".join(words for i, words in enumerate(said) if words and (i == 0 or words != said[i - 1]))

        self.roles = Roles(self.session, hear, Speaker(FakeVoice()))
        self.events: list = []

    def run(self, during=None):
        if during is not None:
            threading.Thread(target=during, args=(self,), daemon=True).start()
        try:
            for event in self.loop.run(lambda: self.roles):
                self.events.append(event)
        finally:
            self.link.close()
        return self

    @property
    def turns(self):
        return [e.record for e in self.events if isinstance(e, TurnDone)]

    def notes(self):
        return [e.text for e in self.events if isinstance(e, Note)]

    def speaker_audio(self) -> np.ndarray:
        audio, rate = soundfile.read(self.speaker_file, dtype="float32")
        assert rate == RATE
        return audio


def test_a_spoken_question_is_heard_answered_and_spoken(tmp_path):
    mic = np.concatenate([silence(0.5), tone(300, 1.0), silence(0.5)])
    talk = Conversation(mic, tmp_path).run()
    [turn] = talk.turns
    assert turn.heard == "hello there"
    assert turn.reply == "You said: hello there." and not turn.interrupted
    latency = turn.latency
    assert 0 < latency["transcribed"] <= latency["first_token"] <= latency["first_sentence"] <= latency["first_audio"]
    assert latency["first_audio"] >= 0.6  # nothing is played before the turn is over
    # The speaker file is the true timeline: silence while the user speaks, then Tantra's 440 Hz voice
    audio = talk.speaker_audio()
    voiced = np.flatnonzero(np.abs(audio) > 0.05)
    assert voiced[0] / RATE > 1.5 + 0.6 - 0.05
    assert pitch_of(audio[voiced[0] : voiced[-1]]) == TANTRA_PITCH
    spoken_seconds = (voiced[-1] - voiced[0]) / RATE
    assert spoken_seconds == pytest.approx(len("You said: hello there.") * 0.01, abs=0.1)
    assert talk.session.conversation.messages[-1]["content"] == "You said: hello there."


def test_the_session_ends_only_after_the_last_reply_has_been_spoken(tmp_path):
    mic = np.concatenate([silence(0.3), tone(500, 0.8)])  # the file ends right after the question
    talk = Conversation(mic, tmp_path, reply=lambda m: "A long answer. " * 8).run()
    assert len(talk.turns) == 1
    audio = talk.speaker_audio()
    assert len(audio) / RATE >= 0.3 + 0.8 + 0.6 + len("A long answer.") * 8 * 0.01  # question, wait, answer
    assert sounding(audio).sum() * 0.01 == pytest.approx(len("A long answer.") * 8 * 0.01, abs=0.1)


def test_the_first_piece_is_voiced_while_the_model_waits_and_the_rest_beside_it(tmp_path):
    from core.runtime.decoding_pause import is_paused

    class WatchedVoice(FakeVoice):
        def synthesize(self, sentence: str, rate: float):
            paused.append(is_paused())
            yield from super().synthesize(sentence, rate)

    paused: list[bool] = []
    mic = np.concatenate([silence(0.3), tone(500, 0.8), silence(0.8)])
    talk = Conversation(mic, tmp_path, reply=lambda m: "A long answer. " * 4)
    talk.roles = replace(talk.roles, speaker=Speaker(WatchedVoice()))
    talk.run()
    assert len(talk.turns) == 1 and paused == [True, False, False, False] and not is_paused()


def test_as_the_user_starts_to_speak_about_a_picture_the_model_reads_its_note_ahead(tmp_path):
    from core.memory.chat_log import ImageRecord
    from tests.fakes import PROMPTS_READ, READ_AHEAD

    READ_AHEAD.clear()
    mic = np.concatenate([silence(0.3), tone(300, 1.0), silence(1.5), tone(500, 1.0), silence(1.0)])
    talk = Conversation(mic, tmp_path)
    talk.loop.attach_image("cat.png", ImageRecord("/x/cat.png", "0" * 64, "[Image cat.png: Looks like cat (90%).]"))
    talk.run()
    assert [t.heard for t in talk.turns] == ["hello there", "tell me more"]
    [ahead] = READ_AHEAD  # the second turn, with no picture, is read with its question
    assert ahead.endswith("<system>The picture cat.png shows: cat (90%).\n<user>")
    assert PROMPTS_READ[-2].startswith(ahead)


def test_a_pause_shorter_than_600_ms_keeps_one_turn_and_throws_the_draft_away(tmp_path):
    mic = np.concatenate([silence(0.3), tone(300, 0.7), silence(0.45), tone(300, 0.7), silence(0.2)])
    talk = Conversation(mic, tmp_path).run()
    assert len(talk.turns) == 1
    assert len(talk.heard_audio) == 2  # the speculation at 300 ms of silence, then the whole turn
    assert talk.heard_audio[1].size > talk.heard_audio[0].size + 0.7 * RATE
    messages = talk.session.conversation.messages
    assert [m["role"] for m in messages] == ["user", "assistant"]  # the draft left nothing behind


def test_a_question_that_sounds_unfinished_but_reads_as_one_is_answered_without_the_long_wait(tmp_path):
    mic = np.concatenate([silence(0.3), tone(500, 0.8), silence(2.0), tone(300, 0.8), silence(3.5)])
    talk = Conversation(mic, tmp_path)
    hear = talk.roles.hear
    talk.roles = replace(talk.roles, hear=lambda audio: hear(audio).replace("tell me more", "tell me more?"),
                         end_of_turn=lambda audio: 0.1)  # Smart Turn finds every turn unfinished  # fmt: skip
    talk.loop.detector.settings = replace(talk.loop.detector.settings, unfinished_end_seconds=3.0)
    question, statement = talk.run().turns
    assert question.heard == "tell me more?" and statement.heard == "hello there"
    assert question.latency["first_audio"] < 1.5  # ended after 0.6 s of silence, as silence alone ends a turn
    assert statement.latency["first_audio"] >= 3.0  # waited out


def test_two_turns_and_noise_between_them(tmp_path):
    mic = np.concatenate([
        silence(0.3), tone(300, 0.8), silence(1.5),
        tone(900, 0.6), silence(1.5),  # Whisper hears nothing in it: not a turn
        tone(500, 0.8), silence(0.3),
    ])  # fmt: skip
    talk = Conversation(mic, tmp_path).run()
    assert [t.heard for t in talk.turns] == ["hello there", "tell me more"]
    assert [t.turn for t in talk.turns] == [1, 2]
    assert "(heard no words)" in talk.notes()


@pytest.mark.parametrize("barge_in", ["auto", "on"])
def test_the_room_echo_makes_no_false_turn_and_no_self_interruption(tmp_path, barge_in):
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(3.0), tone(500, 0.8), silence(0.3)])
    room = Room(gain_db=-10, delay=0.08)
    talk = Conversation(mic, tmp_path, barge_in=barge_in, room=room, reply=lambda m: f"Sure. I heard {m}. " * 3,
                        echo_transcript="Sure. I heard hello there.").run()  # fmt: skip
    assert [t.heard for t in talk.turns] == ["hello there", "tell me more"]
    assert not any(t.interrupted for t in talk.turns)


def test_an_echo_that_gets_through_is_recognised_and_dropped(tmp_path):
    # Tantra's own voice comes back after the reply and its echo tail (a long reverberation, a far wall): it is a
    # turn, but its transcript matches what Tantra said, so it is dropped, not answered.
    reply = "Sure, I can tell you all about the weather today."  # 0.5 s of fake voice
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 0.5 + 0.6), tone(440, 0.8), silence(1.0)])
    talk = Conversation(mic, tmp_path, reply=lambda m: reply, echo_transcript="tell you all about the weather").run()
    assert [t.heard for t in talk.turns] == ["hello there"]
    assert any("own voice" in note for note in talk.notes())


def test_a_question_after_a_quiet_moment_is_answered_even_when_it_repeats_the_answer(tmp_path):
    # The echo filter compares a turn with what Tantra said lately: only a turn that began while its voice, or the
    # room's echo of it, could be in the microphone can be that echo. Here the user asks 2 s after the voice stopped.
    reply = "Sure, tell me more about it."  # 0.3 s of fake voice, from about 1.7 s
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 0.3 + 2.0), tone(500, 0.8), silence(1.0)])
    talk = Conversation(mic, tmp_path, reply=lambda m: reply).run()
    assert [t.heard for t in talk.turns] == ["hello there", "tell me more"], talk.notes()


def test_a_barge_in_still_going_as_the_input_ends_stops_the_reply_and_the_session_ends(tmp_path):
    # The file ends 0.2 s after the interruption: its turn ends as silence would end it. (A barge-in's turn holds
    # the reply paused until it is judged, and one left unended kept the session waiting for ever.)
    long_reply = "This is a long reply that goes on. " * 10
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 1.0 + 0.1), tone(700, 1.0, 0.5)])
    talk = Conversation(mic, tmp_path, barge_in="on", reply=lambda m: long_reply, trailing=0.2)
    runner = threading.Thread(target=talk.run, daemon=True)
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "the session never ended"
    assert talk.turns[0].interrupted and len(talk.loop.barge_ins) == 1


def test_barge_in_stops_the_voice_within_200_ms_and_keeps_what_was_heard(tmp_path):
    long_reply = "This is a long reply that goes on. " * 10  # 3.5 s of fake voice
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 1.0 + 0.1), tone(700, 1.0, 0.5), silence(0.3)])
    talk = Conversation(mic, tmp_path, barge_in="on", room=Room(), reply=lambda m: long_reply).run()
    first, second = talk.turns
    assert first.interrupted and second.heard == "stop please"
    assert 0 < len(first.reply) < len(long_reply.strip())
    assert long_reply.startswith(first.reply)  # whole words, in order, as far as they played
    assert talk.session.conversation.messages[1]["content"] == first.reply  # remembered as heard
    # On the speaker file's timeline: the voice falls silent within 200 ms of the decision to stop it
    [decided] = talk.loop.barge_ins
    decided -= talk.link.started_at
    voice = sounding(talk.speaker_audio())
    silent_from = np.flatnonzero(voice[: int(decided * 100) + 50] == 0)
    stopped = silent_from[silent_from > int(decided * 100) - 1][0] * 0.01
    assert -0.01 < stopped - decided < 0.2  # ``stopped`` is on the 10 ms grid of ``sounding``
    interrupting_speech = 0.3 + 0.8 + 0.6 + 1.0 + 0.1
    assert decided - interrupting_speech < 0.5  # 300 ms of sure speech, and a frame or two
    stop = round(stopped * 100)
    assert not voice[stop : stop + 50].any()  # the rest was never played (the next reply comes after the new turn)


class PassingCanceller:
    """An echo canceller that takes nothing out: ``barge_in`` auto is full duplex, as on loudspeakers."""

    cancellation_db = None

    def attach(self, playback, output_rate: int) -> None:
        pass

    def clean(self, samples: np.ndarray, captured_at: float) -> np.ndarray:
        return samples


@pytest.mark.parametrize(("pitch", "seconds", "barge_in", "why"), [
    (TANTRA_PITCH, 1.0, "on", "own voice"), (900, 1.0, "on", "heard no words"),
    (300, 0.4, "auto", "nothing was said once my voice paused"),
])  # fmt: skip
def test_a_barge_in_that_is_tantras_own_voice_or_a_noise_pauses_the_reply_which_then_goes_on(tmp_path, pitch, seconds,
                                                                                           barge_in, why):  # fmt: skip
    # Sure speech while Tantra speaks, as a real room's echo sometimes is: the voice pauses at once, and once the
    # turn has ended the reply goes on where it paused, none of it lost, if the turn's words were Tantra's own or
    # none, or (on loudspeakers) if it stopped as the voice paused, as the echo does.
    long_reply = "This is a long reply that goes on. " * 10  # 3.5 s of fake voice
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 1.0 + 0.1), tone(pitch, seconds, 0.5),
                          silence(4.0)])  # fmt: skip
    talk = Conversation(mic, tmp_path, barge_in=barge_in, reply=lambda m: long_reply, echo_canceller=PassingCanceller(),
                        echo_transcript="a long reply that goes on").run()  # fmt: skip
    [turn] = talk.turns
    assert turn.heard == "hello there" and not turn.interrupted and turn.reply == long_reply.strip()
    assert len(talk.loop.barge_ins) == 1 and len(talk.loop.resumed) == 1 and why in talk.loop.resumed[0]
    assert any(note.startswith("not a barge-in") and why in note for note in talk.notes())
    voice = sounding(talk.speaker_audio())
    decided = round((talk.loop.barge_ins[0] - talk.link.started_at) * 100)
    assert not voice[decided + 10 : decided + 40].any()  # paused while the turn was heard
    assert voice[decided + 40 :].any()  # then it went on
    assert voice.sum() * 0.01 > 3.3  # and all of it was played


class SlowVoice(FakeVoice):
    """The fake voice, ``delay`` s slower to begin each piece (six times that on the stand-in's timeline)."""

    def __init__(self, delay: float = 0.2) -> None:
        super().__init__()
        self.delay = delay

    def synthesize(self, sentence: str, rate: float):
        time.sleep(self.delay)
        yield from super().synthesize(sentence, rate)


@pytest.mark.parametrize(("barge_in", "canceller"), [("on", None), ("auto", PassingCanceller()), ("auto", None)])
def test_a_user_who_goes_on_before_the_answer_sounds_is_answered_once_for_the_whole_turn(tmp_path, barge_in,
                                                                                       canceller):  # fmt: skip
    # The pause after "hello there" ends the turn (0.6 s of silence); "tell me more" begins 0.1 s later, while the
    # answer is still being voiced: it is not a barge-in but the rest of the turn. The answer is taken back, and the
    # two parts are one question, on headphones and on loudspeakers alike, and half-duplex (no echo canceller).
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.7), tone(500, 0.8), silence(3.0)])
    talk = Conversation(mic, tmp_path, barge_in=barge_in, echo_canceller=canceller)
    talk.roles = replace(talk.roles, speaker=Speaker(SlowVoice()))
    talk.run()
    first, whole = talk.turns
    assert first.went_on and first.heard == "hello there" and first.reply == ""
    assert not whole.went_on and whole.heard == "hello there tell me more" and not whole.interrupted
    assert whole.reply == "You said: hello there tell me more."
    assert [m["content"] for m in talk.session.conversation.messages if m["role"] == "user"] == [whole.heard]
    assert talk.loop.barge_ins == []  # nothing was talked over
    voice = np.flatnonzero(sounding(talk.speaker_audio()))
    assert voice[0] * 0.01 > 0.3 + 0.8 + 0.7 + 0.8  # Tantra's first sound came after the whole question
    assert whole.latency["first_audio"] is not None


def test_the_answer_does_not_begin_over_a_user_who_goes_on(tmp_path):
    # "tell me more" begins 0.5 s after the turn ended, just before the answer's first sound (0.6 s): its sound is
    # held back until the turn is decided, and the two parts are one question.
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 0.5), tone(500, 0.8), silence(3.0)])
    talk = Conversation(mic, tmp_path, barge_in="on")
    talk.roles = replace(talk.roles, speaker=Speaker(SlowVoice(delay=0.1)))
    talk.run()
    assert [(t.heard, t.went_on) for t in talk.turns] == [("hello there", True), ("hello there tell me more", False)]
    voice = np.flatnonzero(sounding(talk.speaker_audio()))
    assert voice[0] * 0.01 > 0.3 + 0.8 + 0.6 + 0.5 + 0.8  # nothing played over the user


def test_a_sound_before_the_answer_only_delays_it(tmp_path):
    # A click 0.1 s after the turn ended, too short to be a turn: the answer waits at most 0.3 s of quiet for the user,
    # then is said whole.
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 0.1), tone(500, 0.1), silence(3.0)])
    talk = Conversation(mic, tmp_path, barge_in="on")
    talk.roles = replace(talk.roles, speaker=Speaker(SlowVoice(delay=0.1)))
    talk.run()
    [turn] = talk.turns
    assert turn.heard == "hello there" and turn.reply == "You said: hello there." and not turn.interrupted
    assert turn.latency["first_audio"] < 0.6 + 0.6 + 0.3 + 0.25  # the end, the slow voice, the wait, and a margin


def test_on_loudspeakers_a_question_begun_as_the_answer_ends_is_heard_from_its_start(tmp_path):
    """Said over the last 0.2 s of the answer, too soon to be decided before the voice stops: the microphone stays
    open after it (no rest for the echo's tail) and the turn keeps its start."""
    answer = "An answer of three seconds. " * 11  # 3.08 s of fake voice, from 1.72 s
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(1.72 + 3.08 - 0.2 - 1.1), tone(500, 1.2),
                          silence(2.0)])  # fmt: skip
    talk = Conversation(mic, tmp_path, reply=lambda m: answer, echo_canceller=PassingCanceller()).run()
    assert [(t.heard, t.interrupted) for t in talk.turns] == [("hello there", False), ("tell me more", False)]
    assert sounding(talk.heard_audio[-1]).sum() * 0.01 >= 1.15  # all of the question's 1.2 s


def test_with_headphones_a_short_word_as_the_voice_pauses_still_stops_it(tmp_path):
    long_reply = "This is a long reply that goes on. " * 10
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 1.0 + 0.1), tone(700, 0.4, 0.5), silence(2.0)])
    talk = Conversation(mic, tmp_path, barge_in="on", reply=lambda m: long_reply).run()
    assert [(t.heard, t.interrupted) for t in talk.turns][:2] == [("hello there", True), ("stop please", False)]


def test_on_loudspeakers_a_short_interruption_decided_late_still_stops_the_reply(tmp_path):
    """ "Wait," alone decides nothing; "that is enough." decides 300 ms into it, and ends soon after the voice has
    paused, as the echo does. But it was the user: the speech said by then (the first word, in the pre-roll, and
    the words after it) is longer than the echo's bursts."""
    long_reply = "This is a long reply that goes on. " * 10
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 1.0 + 0.1), tone(500, 0.2, 0.5), silence(0.4),
                          tone(500, 0.55, 0.5), silence(4.0)])  # fmt: skip
    talk = Conversation(mic, tmp_path, reply=lambda m: long_reply, echo_canceller=PassingCanceller(),
                        echo_transcript="a long reply that goes on").run()  # fmt: skip
    assert len(talk.loop.barge_ins) == 1 and talk.loop.resumed == [], talk.notes()
    assert [(t.heard, t.interrupted) for t in talk.turns][:2] == [("hello there", True), ("tell me more", False)]


class LeakingCanceller:
    """Takes Tantra's 440 Hz voice out of the microphone as a converged canceller does, but lets the room's echo
    through for a moment, as AEC3 now and then does: 40% of it from ``leak[0]`` s after the start, all of it from
    ``leak[1]`` s to ``leak[2]`` s."""

    cancellation_db = None

    def __init__(self, leak: tuple[float, float, float]) -> None:
        self.leak, self.started_at = leak, 0.0

    def attach(self, playback, output_rate: int) -> None:
        pass

    def clean(self, samples: np.ndarray, captured_at: float) -> np.ndarray:
        spectrum = np.fft.rfft(samples)
        spectrum[12:17] = 0  # 375-530 Hz: the voice's tone, not the user's 300 or 700 Hz
        cleaned = np.fft.irfft(spectrum, len(samples)).astype(np.float32)
        at = captured_at - self.started_at
        let_through = 1.0 if self.leak[1] <= at < self.leak[2] else 0.4 if self.leak[0] <= at < self.leak[2] else 0.0
        return cleaned + let_through * (samples - cleaned)


@pytest.mark.parametrize("user", [False, True])
def test_on_loudspeakers_echo_the_canceller_let_through_no_louder_than_the_room_is_no_barge_in(tmp_path, user):
    """An echo burst long enough to be transcribed (about 1 s of speech, its last 0.3 s sure), heard by Whisper as
    other words than Tantra said, stops as the voice pauses: it was no louder than the room's echo before cancelling,
    so the answer goes on. The user's interruption of the same shape, louder than that, stops it."""
    long_reply = "This is a long reply that goes on. " * 10  # 3.5 s of fake voice, from about 1.72 s
    words = [silence(0.7), tone(700, 0.25, 0.5), silence(0.3), tone(700, 0.6, 0.5)] if user else [silence(1.85)]
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6 + 0.7), *words, silence(4.0)])
    canceller = LeakingCanceller((9.0, 9.0, 9.0) if user else (2.9, 3.6, 4.5))
    talk = Conversation(mic, tmp_path, reply=lambda m: long_reply, room=Room(), echo_canceller=canceller,
                        echo_transcript="that sounds great")  # fmt: skip
    canceller.started_at = talk.link.started_at
    talk.loop.listener.vad = lambda frame: (lambda level: 0.9 if level > 0.015 else 0.5 if level > 0.005 else 0.0)(
        float(np.sqrt(np.mean(frame**2))))  # fmt: skip
    talk.run()
    assert len(talk.loop.barge_ins) == 1, talk.notes()
    if user:
        assert [(t.heard, t.interrupted) for t in talk.turns][:2] == [("hello there", True), ("stop please", False)]
    else:
        assert [(t.heard, t.interrupted) for t in talk.turns] == [("hello there", False)], talk.notes()
        [why] = talk.loop.resumed
        assert "no louder than the echo uncancelled" in why
        assert float(re.search(r"([0-9.]+) s of speech", why)[1]) >= ECHO_BURST_SECONDS  # long enough for Whisper


def test_ctrl_c_stops_the_reply_and_the_conversation_goes_on(tmp_path):
    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(2.5), tone(500, 0.8), silence(0.3)])
    talk = Conversation(mic, tmp_path, reply=lambda m: "A very long answer that keeps going. " * 10)

    def press_ctrl_c_when_it_speaks(conversation):
        while not conversation.link.playback.busy:
            time.sleep(0.005)
        time.sleep(0.3 / SPEED)
        assert conversation.loop.interrupt() == "reply"

    talk.run(during=press_ctrl_c_when_it_speaks)
    assert [t.heard for t in talk.turns] == ["hello there", "tell me more"]
    assert [t.interrupted for t in talk.turns] == [True, False]  # the last reply is spoken to its end


def test_speech_while_the_models_load_is_kept_and_answered(tmp_path):
    mic = np.concatenate([silence(0.2), tone(300, 0.8), silence(0.5)])
    talk = Conversation(mic, tmp_path)
    roles = talk.roles

    def slow_load():
        time.sleep(2.0 / SPEED)  # the question is over before the models are ready
        return roles

    talk.roles = None
    talk.events = list(talk.loop.run(slow_load))
    talk.link.close()
    assert [t.heard for t in talk.turns] == ["hello there"]
    assert talk.turns[0].latency["transcribed"] > 0.5  # it waited for the models, and says so


def test_a_microphone_that_disappears_mid_turn_ends_the_loop_with_one_note(tmp_path):
    from core.runtime.sound_cards import NoSoundDevice

    mic = np.concatenate([silence(0.2), tone(300, 0.8), silence(0.8), tone(500, 2.0)])
    talk = Conversation(mic, tmp_path)
    frames = talk.link.frames

    def unplugged():
        for index, frame in enumerate(frames()):
            if index * 0.032 > 2.3:  # in the middle of the second question
                raise NoSoundDevice("the microphone sent nothing for 2 s: was it unplugged?")
            yield frame

    talk.link.frames = unplugged
    talk.run()
    assert [t.heard for t in talk.turns] == ["hello there"]  # the first turn is kept
    assert talk.notes()[-1].startswith("the microphone stopped: ")


# ---- the wake word -----------------------------------------------------------------------------------------------


class FakeWakeWord:
    """Hears the wake word in a frame of the wake tone."""

    threshold, spoken = 0.5, "hey Jarvis"

    def __init__(self) -> None:
        self.frames = 0

    def __call__(self, frame: np.ndarray) -> float:
        self.frames += 1
        return 1.0 if float(np.sqrt(np.mean(frame**2))) > 0.01 and abs(pitch_of(frame) - WAKE_PITCH) < 40 else 0.0


def wake_listener():
    from core.talk.wake_word import WakeListener

    return WakeListener(FakeWakeWord())


def test_with_a_wake_word_only_what_follows_it_is_answered(tmp_path):
    mic = np.concatenate([
        silence(0.3), tone(300, 0.8), silence(1.5),  # not spoken to Tantra: not even transcribed
        tone(WAKE_PITCH, 0.5), tone(500, 0.8), silence(0.3),  # "hey Jarvis, tell me more", in one breath
    ])  # fmt: skip
    talk = Conversation(mic, tmp_path, wake=wake_listener()).run()
    assert [t.heard for t in talk.turns] == ["Tell me more"]
    assert len(talk.heard_audio) == 1  # the first turn never reached Whisper


def test_the_wake_word_alone_chimes_and_the_question_after_it_needs_none(tmp_path):
    mic = np.concatenate([silence(0.3), tone(WAKE_PITCH, 0.5), silence(3.0), tone(300, 0.8), silence(0.3)])
    talk = Conversation(mic, tmp_path, wake=wake_listener()).run()
    assert "(heard 'hey Jarvis': listening)" in talk.notes()
    assert [t.heard for t in talk.turns] == ["hello there"]
    audio = talk.speaker_audio()
    first = np.flatnonzero(np.abs(audio) > 0.05)[0]
    chime = audio[first : first + int(0.14 * RATE)]
    low, high = pitch_of(chime[: len(chime) // 2]), pitch_of(chime[len(chime) // 2 :])
    assert abs(low - 660) <= 20 and abs(high - 880) <= 20  # a rising chime, 70 ms a note


def test_a_follow_up_soon_after_an_answer_needs_no_wake_word_a_later_one_does(tmp_path):
    mic = np.concatenate([
        silence(0.3), tone(WAKE_PITCH, 0.5), tone(300, 0.8), silence(2.0),
        tone(500, 0.8), silence(8.0),  # within 2 s of the answer: a follow-up
        tone(700, 0.8), silence(0.3),  # long after (a margin for a busy machine: the stand-in runs 6x): not for Tantra
    ])  # fmt: skip
    talk = Conversation(mic, tmp_path, wake=wake_listener())
    talk.loop.options = replace(talk.loop.options, follow_up_seconds=2.0)  # 6 s by default: a shorter test
    talk.run()
    assert [t.heard for t in talk.turns] == ["Hello there", "tell me more"]


def test_the_wake_word_detector_sleeps_in_silence_and_hears_a_word_that_began_the_speech():
    from core.talk.wake_word import WakeListener

    detector = FakeWakeWord()
    listener = WakeListener(detector)
    frames = [np.zeros(512, np.float32)] * 300  # about 10 s of silence
    frames += [tone(WAKE_PITCH, 0.032)] * 10  # the word, which the detector is woken for only afterwards
    heard = [listener.feed(frame, 1.0 if frame.any() and i > 303 else 0.0) for i, frame in enumerate(frames)]
    assert detector.frames < 60 and any(heard)  # it read the last 1.5 s it missed, and little else


def test_the_wake_word_comes_off_the_front_of_the_transcript():
    from core.talk.wake_word import check_wake_word, strip_wake_word

    assert strip_wake_word("Hey, Jarvis. What time is it?", "hey Jarvis") == "What time is it?"
    assert strip_wake_word("Hey Jervis what time is it", "hey Jarvis") == "What time is it"
    assert strip_wake_word("Hey Jarvis!", "hey Jarvis") == ""
    assert strip_wake_word("What time is it, Jarvis?", "hey Jarvis") == "What time is it, Jarvis?"
    assert check_wake_word("Hey Jarvis") == check_wake_word("hey-jarvis") == "hey_jarvis"
    with pytest.raises(Exception, match="okay_nabu"):
        check_wake_word("computer")


# ---- echo cancellation: talking over it on loudspeakers ----------------------------------------------------------


@pytest.mark.parametrize("lateness", [0.0, 0.05])
def test_the_echo_canceller_takes_the_loudspeaker_out_of_the_microphone(lateness):
    """Also when the microphone's frames are stamped late by up to ``lateness``, each by a different amount, as
    PulseAudio's were (up to 79 ms): cut at each stamp, the reference repeated and skipped pieces of itself."""
    import soxr

    from core.talk.echo_canceller import EchoCanceller
    from core.talk.sound_io import PlaybackQueue

    rng = np.random.default_rng(0)
    speech, rate = soundfile.read(ROOT / "samples" / "arctic_a0007.wav", dtype="float32")
    voice = soxr.resample(speech, rate, RATE).astype(np.float32)
    playback, canceller = PlaybackQueue(), EchoCanceller()
    canceller.attach(playback, RATE)
    playback.add(voice, tag=1)
    delay, gain = int(0.08 * RATE), 10 ** (-10 / 20)  # the stand-in room: 80 ms late, 10 dB quieter
    played, heard, cleaned = [], [], []
    for index in range(len(voice) // 512):
        at = index * 512 / RATE
        played.append(playback.take(512, at=at, rate=RATE))
        echo = np.concatenate([np.zeros(delay, np.float32), *played])[index * 512 : (index + 1) * 512] * gain
        heard.append(echo)
        cleaned.append(canceller.clean(echo, at + 512 / RATE + rng.uniform(0, lateness)))
    last = slice(len(heard) // 3, None)  # once it has converged
    before = np.mean(np.square(np.concatenate(heard[last])))
    after = np.mean(np.square(np.concatenate(cleaned[last])))
    assert 10 * np.log10(before / after) > 20 and canceller.cancellation_db > 20


def test_with_the_echo_cancelled_a_long_answer_on_loudspeakers_does_not_interrupt_itself(tmp_path):
    from core.talk.echo_canceller import EchoCanceller

    mic = np.concatenate([silence(0.3), tone(300, 0.8), silence(6.0)])
    talk = Conversation(mic, tmp_path, room=Room(gain_db=-10, delay=0.08),
                        reply=lambda m: "A long answer that keeps going. " * 12, echo_canceller=EchoCanceller()).run()
    [turn] = talk.turns
    assert talk.loop.full_duplex  # barge-in auto, with the canceller: the microphone is heard while it speaks
    assert talk.loop.detector.settings.barge_in_probability == 0.6  # less sure than without it, and still no echo
    assert not turn.interrupted and not talk.loop.barge_ins
    assert talk.loop.canceller.cancellation_db > 20
