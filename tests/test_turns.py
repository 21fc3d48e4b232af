"""Turn taking, reply pieces and the heard-text filters: pure logic, made-up probabilities, no audio library."""

import numpy as np
import pytest

from core.talk.heard_filter import is_echo, is_noise
from core.talk.sound_io import PlaybackQueue
from core.talk.spoken_reply import ReplyPieces, heard_part
from core.talk.turns import FRAME, FRAME_SECONDS, Ended, Resumed, Speculate, Started, TurnDetector, TurnSettings


def feed(detector: TurnDetector, probabilities: list[float], strict: bool = False, start: float = 0.0):
    """Events per frame index, for frames whose first sample is the frame index itself."""
    events = []
    for index, probability in enumerate(probabilities):
        frame = np.full(FRAME, index, dtype=np.float32)
        at = start + (index + 1) * FRAME_SECONDS
        events += [(index, event) for event in detector.feed(frame, probability, at, strict)]
    return events


def frames(seconds: float) -> int:
    return round(seconds / FRAME_SECONDS)


def test_speech_starts_after_250_ms_and_keeps_half_a_second_before_it():
    detector = TurnDetector()
    probabilities = [0.0] * 30 + [0.9] * 40 + [0.0] * 30
    events = feed(detector, probabilities)
    started = [(i, e) for i, e in events if isinstance(e, Started)]
    assert [i for i, _ in started] == [30 + frames(0.25) - 1]  # confirmed after 8 frames (256 ms)
    ended = [e for _, e in events if isinstance(e, Ended)]
    assert len(ended) == 1
    audio = ended[0].utterance.audio.reshape(-1, FRAME)[:, 0]
    assert audio[0] == 30 - frames(0.5)  # the pre-roll: 500 ms before the first voiced frame
    assert ended[0].utterance.last_voiced == pytest.approx(70 * FRAME_SECONDS)  # the end of frame 69


def test_a_short_noise_is_not_a_turn():
    assert feed(TurnDetector(), [0.0] * 10 + [0.9] * 5 + [0.0] * 40) == []


def test_the_turn_ends_after_600_ms_of_silence_and_speculates_at_300():
    events = feed(TurnDetector(), [0.9] * 20 + [0.0] * 30)
    kinds = [(i, type(e).__name__) for i, e in events]
    assert kinds == [(7, "Started"), (19 + frames(0.3), "Speculate"), (19 + frames(0.6), "Ended")]
    speculated, ended = events[1][1].utterance, events[2][1].utterance
    assert np.array_equal(speculated.audio, ended.audio)  # one transcript serves both
    assert speculated.voiced_frames == ended.voiced_frames


def test_speech_after_the_speculation_resumes_the_turn():
    events = feed(TurnDetector(), [0.9] * 20 + [0.0] * 12 + [0.9] * 10 + [0.0] * 30)
    kinds = [type(e) for _, e in events]
    assert kinds == [Started, Speculate, Resumed, Speculate, Ended]
    assert events[-1][1].utterance.voiced_frames > events[1][1].utterance.voiced_frames


class Judge:
    """A stand-in end-of-turn model: its answers in turn, and the audio of each question (frame indices)."""

    def __init__(self, *answers: float) -> None:
        self.answers, self.asked = list(answers), []

    def __call__(self, audio: np.ndarray) -> float:
        self.asked.append(audio.reshape(-1, FRAME)[:, 0])
        return self.answers.pop(0)


def test_a_turn_that_sounds_complete_is_transcribed_after_64_ms_and_ends_after_300():
    judge = Judge(0.9)
    events = feed(TurnDetector(end_of_turn=judge), [0.9] * 20 + [0.0] * 30)
    kinds = [(i, type(e).__name__) for i, e in events]
    assert kinds == [(7, "Started"), (19 + frames(0.064), "Speculate"), (19 + frames(0.3), "Ended")]
    assert judge.asked[0][-1] == 19 + frames(0.16)  # asked while Whisper runs: the turn so far, its pause included
    speculated, ended = events[1][1].utterance, events[2][1].utterance
    assert np.array_equal(speculated.audio, ended.audio)  # one transcript serves both


def test_a_turn_that_sounds_unfinished_is_waited_out_for_a_second():
    judge = Judge(0.1, 0.2)  # asked at 160 ms, and again at 300 ms
    events = feed(TurnDetector(end_of_turn=judge), [0.9] * 20 + [0.0] * 40)
    kinds = [(i, type(e).__name__) for i, e in events]
    assert kinds == [(7, "Started"), (19 + frames(0.064), "Speculate"), (19 + frames(1.0), "Ended")]
    assert len(judge.asked) == 2


def test_a_turn_found_complete_at_the_second_question_ends_after_600_ms():
    events = feed(TurnDetector(end_of_turn=Judge(0.1, 0.7)), [0.9] * 20 + [0.0] * 30)
    assert [(i, type(e).__name__) for i, e in events][1:] == [(19 + frames(0.064), "Speculate"),
                                                              (19 + frames(0.6), "Ended")]  # fmt: skip


def test_a_question_in_words_that_sounds_unfinished_ends_after_600_ms():
    for speech_since in (0, 1):
        detector = TurnDetector(end_of_turn=Judge(0.1, 0.2))  # unfinished, both times it is asked
        events = feed(detector, [0.9] * 20 + [0.0] * 8)  # Whisper has read the pause begun at frame 20 ...
        speculated = events[-1][1].utterance
        detector.heard_a_question(speculated.voiced_frames - speech_since)  # ... a question, the turn as it is now?
        events = feed(detector, [0.0] * 40, start=28 * FRAME_SECONDS)
        [(index, ended)] = [(i, e) for i, e in events if isinstance(e, Ended)]
        ends_at = 28 + index - 19  # frames of silence
        assert ends_at == (frames(0.6) if not speech_since else frames(1.0))  # a question heard of an earlier pause: no


def test_speech_after_an_early_speculation_resumes_the_turn_and_the_next_pause_is_asked_again():
    judge = Judge(0.9, 0.9)
    events = feed(TurnDetector(end_of_turn=judge), [0.9] * 20 + [0.0] * 6 + [0.9] * 10 + [0.0] * 20)  # paused 192 ms
    assert [type(e) for _, e in events] == [Started, Speculate, Resumed, Speculate, Ended]
    assert len(judge.asked) == 2


def test_a_dip_below_the_start_threshold_is_still_speech_once_speaking():
    # 0.4 is under 0.5 (no start) but over 0.35 (stays in speech): Silero's hysteresis
    events = feed(TurnDetector(), [0.9] * 10 + [0.4] * 30 + [0.0] * 30)
    assert [type(e) for _, e in events] == [Started, Speculate, Ended]
    assert events[-1][1].utterance.voiced_frames == 40  # the opening's speech counted too


def test_a_turn_is_cut_at_30_seconds():
    settings = TurnSettings(longest_seconds=2.0)
    events = feed(TurnDetector(settings), [0.9] * frames(3.0))
    ended = [e for _, e in events if isinstance(e, Ended)]
    assert ended and ended[0].utterance.cut and ended[0].utterance.seconds <= 2.0 + 0.3


def test_barge_in_needs_surer_and_longer_speech():
    weak = feed(TurnDetector(), [0.7] * 20, strict=True)
    assert weak == []  # 0.7 starts a turn normally, but not while Tantra speaks
    short = feed(TurnDetector(), [0.9] * frames(0.25), strict=True)
    assert short == []
    events = feed(TurnDetector(), [0.9] * frames(0.35), strict=True)
    assert [type(e) for _, e in events] == [Started] and events[0][1].barge_in


def test_a_barge_in_ends_after_800_ms_of_silence_whatever_the_end_of_turn_model_says():
    """ "Wait," said as the voice pauses, then "that is enough.": one turn, though "Wait," sounds complete."""
    judge = Judge(0.9, 0.9)
    pause = frames(0.5)
    events = feed(TurnDetector(end_of_turn=judge), [0.9] * 12 + [0.0] * pause + [0.9] * 20 + [0.0] * 30, strict=True)
    assert [type(e) for _, e in events] == [Started, Speculate, Resumed, Speculate, Ended]  # speculated at 300 ms
    last = 12 + pause + 19  # the last voiced frame
    assert events[-1][0] == last + frames(0.8)
    assert judge.asked == []
    # A turn that starts while Tantra is quiet still ends early when it sounds complete.
    assert [type(e) for _, e in feed(TurnDetector(end_of_turn=Judge(0.9)), [0.9] * 12 + [0.0] * pause)] == [
        Started, Speculate, Ended]  # fmt: skip


def test_with_the_echo_cancelled_a_barge_in_needs_less_sure_speech():
    """The canceller softens the user's words over the echo (its double-talk suppression), and leaves little of the
    echo: the voice loop asks 0.6 instead of 0.8 while it runs."""
    settings = TurnSettings(barge_in_probability=TurnSettings().cancelled_barge_in_probability)
    assert feed(TurnDetector(), [0.7] * 20, strict=True) == []
    assert [type(e) for _, e in feed(TurnDetector(settings), [0.7] * 20, strict=True)] == [Started]
    assert feed(TurnDetector(settings), [0.5] * 20, strict=True) == []


def test_barge_in_counts_speech_across_the_dips_between_words():
    words = ([0.95] * 4 + [0.1]) * 4  # 4 frames of a word, a dip, and again: never 10 frames in a row
    events = feed(TurnDetector(), words, strict=True)
    assert [type(e) for _, e in events] == [Started]
    assert feed(TurnDetector(), ([0.95] * 2 + [0.1] * 2) * 10, strict=True) == []  # half speech is not enough


def test_barge_in_keeps_a_first_word_said_over_the_echo_and_silences_the_echo():
    """ "Stop." is rarely as sure as the 300 ms that decide a barge-in, and the echo goes on around it: the pre-roll
    reaches back over the echo to the word (a second at most), and the echo's frames are silence in the turn."""
    detector = TurnDetector()
    # Tantra's voice coming back; "Stop." (sure enough to stay in speech, not to barge in); the echo again; the rest.
    lead = 40  # frames of echo before the word: more than the pre-roll reaches back over
    echo = [True] * lead + [False] * 6 + [True] * 8
    probabilities = [0.0] * lead + [0.6] * 6 + [0.0] * 8 + [0.95] * frames(0.3) + [0.0] * 30
    events = []
    for index, probability in enumerate(probabilities):
        frame = np.full(FRAME, index + 1, dtype=np.float32)
        at = (index + 1) * FRAME_SECONDS
        events += detector.feed(frame, probability, at, strict=True, echo=index < len(echo) and echo[index])
    assert [type(e) for e in events] == [Started, Speculate, Ended]
    audio = events[-1].utterance.audio.reshape(-1, FRAME)[:, 0]
    run, start = frames(0.3), lead + 6 + 8  # the deciding run's first frame
    window = run + run // 2  # the frames that decided it: 300 ms of speech within half as long again
    first = start + run - window - frames(TurnSettings().barge_in_preroll_seconds)  # a second before those
    assert 0 < first < lead
    word_frames = list(range(lead + 1, lead + 7))
    assert list(audio[: start - first]) == [0.0] * (lead - first) + word_frames + [0.0] * 8
    assert list(audio[start - first : start - first + run]) == list(range(start + 1, start + 1 + run))
    assert events[-1].utterance.voiced_frames == 6 + run  # the word's frames are speech too
    assert events[0].at == pytest.approx(first * FRAME_SECONDS)


def test_an_echo_frame_is_silence_to_the_turn():
    detector = TurnDetector()
    feed(detector, [0.9] * 10)
    assert detector.in_turn
    events = []
    for index in range(frames(0.6)):
        events += detector.feed(np.zeros(FRAME, np.float32), 0.99, 10.0 + index * FRAME_SECONDS, echo=True)
    assert [type(e) for e in events] == [Speculate, Ended]


def test_reset_forgets_a_turn_in_progress():
    detector = TurnDetector()
    feed(detector, [0.9] * 20)
    assert detector.in_turn
    detector.reset()
    assert not detector.in_turn and feed(detector, [0.0] * 30) == []


def test_reply_pieces_first_clause_then_whole_sentences():
    pieces = ReplyPieces()
    said = []
    for token in ["Yes, ", "Paris is ", "the capital, ", "and it is 3.5 ", "times bigger. ", "It has ", "museums! Bye"]:
        said += pieces.feed(token)
    said += pieces.finish()
    # "Yes," is too short to be said alone; the second piece waits for a sentence end, and 3.5 is no end
    assert said == ["Yes, Paris is the capital,", "and it is 3.5 times bigger.", "It has museums!", "Bye"]


def test_a_first_piece_without_punctuation_goes_at_a_dash_or_after_sixty_characters():
    pieces = ReplyPieces()
    assert pieces.feed("Le Grand Paris - the city of light and ") == ["Le Grand Paris -"]
    long = ReplyPieces()
    words = long.feed("word " * 20)
    assert len(words) == 1 and 50 <= len(words[0]) <= 65


def test_heard_part_keeps_the_share_of_words_that_played():
    assert heard_part("one two three four", 0.5) == "one two"
    assert heard_part("one two three four", 1.0) == "one two three four"
    assert heard_part("one two", 0.0) == ""


@pytest.mark.parametrize("text", ["", "you", "Thank you.", " Thanks for watching!", "[Music]", "(coughs)", "..."])
def test_whisper_inventions_over_noise_are_noise(text):
    assert is_noise(text)


@pytest.mark.parametrize("text", ["What is this?", "Yes", "Thank you, what about Spain?"])
def test_real_turns_are_not_noise(text):
    assert not is_noise(text)


def test_an_echo_of_what_tantra_said_is_recognised_even_in_part():
    said = "Paris is the capital of France. It is known for its museums and the Eiffel Tower."
    assert is_echo("known for its museums and the Eiffel", said)
    assert is_echo("Paris is the capital of friends", said)  # misheard, still an echo
    assert not is_echo("What about Spain?", said)
    assert not is_echo("Tell me about the Eiffel Tower please, how tall is it?", said)
    assert not is_echo("anything", "")


def test_the_playback_queue_knows_what_played_and_stops_at_once():
    playback = PlaybackQueue()
    playback.add(np.ones(100, np.float32), tag=1)
    playback.add(np.ones(100, np.float32), tag=2)
    assert playback.busy
    block = playback.take(150, at=5.0, rate=100)
    assert block.sum() == 150 and playback.played[1].samples == 100 and playback.played[2].samples == 50
    assert playback.played[2].first_at == 5.0 and playback.played[2].total == 100
    assert playback.level_at(5.5) == pytest.approx(1.0) and playback.level_at(6.6) == 0.0
    playback.clear()
    assert not playback.busy and playback.take(10).sum() == 0


def test_a_turn_said_twice_over_is_read_again_the_usual_way():
    from core.hearing.whisper_engines import says_twice

    assert says_twice("what two bees make? What two bees make?")  # the turn window's repetition, seen on PulseAudio
    assert not says_twice("What do bees make?") and not says_twice("No, no. Stop.") and not says_twice("")
