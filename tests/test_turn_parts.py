"""A long turn read in parts (``tantra_benchmarks.turn_parts``, measured against reading it whole): points are
committed only where a later read agrees and ends a sentence, each read forces the words it re-hears, and a read
that does not begin with the words heard after its point is read again from the point before."""

from __future__ import annotations

import numpy as np

from tantra_benchmarks.turn_parts import _first_words, read_in_parts, sentence_end

CLAUSES = ["The old lighthouse stood on the cliff.", "Every night its keeper climbed the stairs,",
           "trimmed the wick", "and polished the lens.", "Ships relied on its beam."]  # fmt: skip


def _parts(clauses: list[str], seconds: float = 2.0) -> list[np.ndarray]:
    """One part per clause, its samples all equal to the clause's number (1, 2, ...)."""
    return [np.full(round(seconds * 16000), index + 1, np.float32) for index in range(len(clauses))]


def _reader(clauses: list[str], reads: list, drop_first_word_cold: bool = False):
    """A stand-in for Whisper that hears each part's clause, and with ``drop_first_word_cold`` loses the first word
    of a read that starts at a point with nothing forced (as tiny.en does)."""

    def read(audio: np.ndarray, prompt: str, forced: str) -> str:
        reads.append(([int(v) for v in np.unique(audio)], prompt, forced))
        heard = " ".join(clauses[int(v) - 1] for v in np.unique(audio))
        assert heard.startswith(forced)
        heard = heard[len(forced) :].strip()
        return heard.split(" ", 1)[1] if drop_first_word_cold and prompt and not forced else heard

    return read


def test_a_point_is_a_sentence_end_that_a_later_read_agrees_on():
    assert sentence_end("The old lighthouse stood on the cliff.", " ".join(CLAUSES[:2])) == (
        "The old lighthouse stood on the cliff.", ("every", "night"))  # fmt: skip
    # The later read ends no sentence there, or hears other words, or nothing more.
    assert sentence_end("Every night its keeper climbed the stairs.", " ".join(CLAUSES[1:3])) is None
    assert sentence_end("The old lighthouse stood on a cliff.", " ".join(CLAUSES[:2])) is None
    assert sentence_end(CLAUSES[0], CLAUSES[0]) is None
    assert _first_words("Every night, its keeper climbed", 3) == ("Every night, its", "keeper climbed")


def test_a_read_forces_the_words_it_hears_again_from_a_pause_before_its_point():
    clauses = ["The old lighthouse stood on the cliff,", "above the sea.", "Every night its keeper climbed the stairs,",
               "and polished the lens."]  # fmt: skip
    reads = []
    text, seconds, committed = read_in_parts(_reader(clauses, reads), _parts(clauses))
    assert text == " ".join(clauses) and seconds >= 0
    assert committed == 1  # "sea." once a read went 2 s past it ("lens." ends the turn: nothing reads past it)
    assert reads[0] == ([1], "", "")
    assert reads[-1] == ([2, 3, 4], "The old lighthouse stood on the cliff,", "above the sea.")


def test_a_read_that_loses_the_words_after_its_point_is_read_again_from_the_point_before():
    reads = []
    text, _, committed = read_in_parts(_reader(CLAUSES, reads, drop_first_word_cold=True), _parts(CLAUSES))
    assert text == " ".join(CLAUSES)
    # From "cliff." (no pause 1.5 s before it) the read starts cold and loses "Every": read again, whole.
    assert ([2, 3, 4], CLAUSES[0], "") in reads and reads[-2:] == [([2, 3, 4, 5], CLAUSES[0], ""),
                                                                  ([1, 2, 3, 4, 5], "", "")]  # fmt: skip
    assert committed == 2
