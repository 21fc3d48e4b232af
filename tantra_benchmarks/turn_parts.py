"""Part of ``tantra bench transcribe``: a long spoken turn read whole once it ends (what the voice loop does) against
read in parts while it is spoken, on the same audio in one run: word error rate, and the seconds of the last read (the
one the user waits for).

The turns are ``samples/prose.txt`` two sentences at a time, each sentence said by the store's Piper voice (and by
espeak-ng where it is installed) clause by clause with 0.45 s pauses: 8-16 s turns of 1-6 clauses. The voice loop
reads a turn at each pause (64 ms in, ``core.talk.turns``), so the parts are cut there.

Read in parts (whisper_streaming's way, without word timestamps):
- a pause becomes a commit point once a later read, reaching at least ``AHEAD`` seconds past it, agrees word for word
  with the read that ended there, and ends a sentence there;
- each read starts at a pause at least ``OVERLAP`` seconds before the last commit point. Its words up to that point
  are forced as the decoder's prefix (a read that starts cold mishears its first words), and the text before it is
  Whisper's prompt;
- a read whose first words after the commit point are not those heard there before is read again from the point
  before.

Measured, this is faster and hears worse (docs/BENCHMARKS.md): the voice loop reads the whole turn.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass

import numpy as np

from config.settings import Settings
from tantra_benchmarks.common import model_loader, prose_text
from tantra_benchmarks.turn_window import _voices, _words, word_errors

PAUSE = 0.45  # seconds between clauses: inside a turn, with or without Smart Turn
KEPT = 1024  # samples of each pause that go with the clause before it (the read at a pause ends 64 ms in)
AHEAD = 2.0
OVERLAP = 1.5
CHECKED_WORDS = 2  # words after a commit point that a later read must begin with


@dataclass(frozen=True)
class _Point:
    samples: int
    text: str
    """Everything heard before ``samples``."""
    next_words: tuple[str, ...] = ()
    """The first words heard after it, by the read that committed it."""


def _plain_words(text: str) -> list[str]:
    return [word for word in (re.sub(r"[^a-z0-9]", "", token.lower()) for token in text.split()) if word]


def _first_words(text: str, count: int) -> tuple[str, str]:
    """``text`` split after its first ``count`` words (punctuation stays with its word)."""
    tokens, seen = text.split(), 0
    for index, token in enumerate(tokens):
        if seen == count:
            return " ".join(tokens[:index]), " ".join(tokens[index:])
        seen += bool(_plain_words(token))
    return text, ""


def sentence_end(earlier: str, later: str) -> tuple[str, tuple[str, ...]] | None:
    """Where ``earlier`` (a read that ended at a pause) ends inside ``later`` (a read that went on past it): the text
    of ``later`` up to there and its next words, when the two agree on every word and ``later`` ends a sentence
    there; else None."""
    heard = _plain_words(earlier)
    tokens = [token for token in later.split() if _plain_words(token)]
    if not heard or len(tokens) <= len(heard) or _plain_words(" ".join(tokens[: len(heard)])) != heard:
        return None
    if not re.search(r"[.?!]$", tokens[len(heard) - 1]):
        return None
    following = _plain_words(" ".join(tokens[len(heard) : len(heard) + CHECKED_WORDS]))
    return " ".join(tokens[: len(heard)]), tuple(following)


def _reader(whisper, beam_size: int):
    """(audio, prompt, forced) -> the words after ``forced``, read in the turn window with ``prompt`` as the text
    before and ``forced`` as the decoder's prefix."""
    import ctranslate2
    from faster_whisper.transcribe import get_suppressed_tokens

    from core.hearing.transcriber import TranscribeOptions

    model = whisper.model
    tokenizer = whisper._tokenizer(TranscribeOptions())

    def read(audio: np.ndarray, prompt: str = "", forced: str = "") -> str:
        before = tokenizer.encode(" " + prompt)[-223:] if prompt else []
        prefix = tokenizer.encode(" " + forced) if forced else []
        tokens = [*([tokenizer.sot_prev, *before] if before else []), *tokenizer.sot_sequence, tokenizer.no_timestamps,
                  *prefix]  # fmt: skip
        encoded = model.model.encode(ctranslate2.StorageView.from_array(whisper.turn_window(audio)), to_cpu=False)
        result = model.model.generate(encoded, [tokens], beam_size=beam_size, max_length=len(tokens) + 224,
                                      suppress_blank=True, suppress_tokens=get_suppressed_tokens(tokenizer, [-1]))[0]
        return tokenizer.decode(result.sequences_ids[0][len(prefix) :]).strip()

    return read


def read_in_parts(read, parts: list[np.ndarray]) -> tuple[str, float, int]:
    """The turn made of ``parts`` (each a clause and the pause after it) read at every pause as above: its text, the
    seconds of the last read, and how many points were committed."""
    points, reads = [_Point(0, "")], []  # reads: (end in samples, text) of each pause's read
    audio = np.zeros(0, np.float32)
    for part in parts:
        audio = np.concatenate([audio, part])
        start = time.perf_counter()
        for point in reversed(points):
            lead = [(end, len(_plain_words(text))) for end, text in reads if 0 < end <= point.samples - OVERLAP * 16000
                    and _plain_words(point.text)[: len(_plain_words(text))] == _plain_words(text)]  # fmt: skip
            begin, prompt, forced = point.samples, point.text, ""
            if lead:
                begin, count = lead[-1]
                prompt, forced = _first_words(point.text, count)
            said = read(audio[begin:], prompt, forced)
            if tuple(_plain_words(said)[: len(point.next_words)]) == point.next_words:
                break
        seconds = time.perf_counter() - start
        heard = " ".join(text for text in (point.text, said) if text)
        for end, text in reads:
            if end > points[-1].samples and len(audio) - end >= AHEAD * 16000:
                found = sentence_end(text, heard)
                if found is not None:
                    points.append(_Point(end, *found))
        reads.append((len(audio), heard))
    return heard, seconds, len(points) - 1


def _turns(loader) -> list[tuple[str, list[np.ndarray]]]:
    """(text, parts) of each long turn, in each voice."""
    from core.voice.speech_text import sentences as split_sentences

    sentences = list(split_sentences(prose_text()))
    texts = [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)]
    pause = np.zeros(round(PAUSE * 16000), np.float32)
    turns = []
    for say in _voices(loader):
        for text in texts:
            clauses = [say(clause) for clause in re.split(r"(?<=[,.?!])\s+", text) if clause.strip()]
            parts = [np.concatenate([pause[KEPT:] if i else np.zeros(8000, np.float32), clause, pause[:KEPT]])
                     for i, clause in enumerate(clauses)]  # fmt: skip
            parts[-1] = np.concatenate([parts[-1], pause[KEPT:]])
            turns.append((text, parts))
    return turns


def bench_turn_parts(settings: Settings) -> dict:
    from core.hearing.transcriber import TranscribeOptions, spoken_text

    loader = model_loader(settings)
    whisper = loader.load_whisper()
    if whisper.name != "faster-whisper":
        return {"skipped": f"reads in parts through faster-whisper's model; the engine is {whisper.name}"}
    options = TranscribeOptions(beam_size=loader.beam_size)
    read = _reader(whisper, options.beam_size)

    def whole(audio: np.ndarray) -> str:
        said = whisper.transcribe_turn(audio, options)
        return said if said is not None else spoken_text(whisper.transcribe_block(audio, options)[1])

    whole(np.zeros(16000, np.float32))  # warm-up
    turns = _turns(loader)
    words = sum(len(_words(text)) for text, _ in turns)
    errors, seconds = {"whole": 0, "in_parts": 0}, {"whole": [], "in_parts": []}
    commits, worse, better = 0, [], 0
    for text, parts in turns:
        audio = np.concatenate(parts)
        start = time.perf_counter()
        at_once = whole(audio)
        seconds["whole"].append(time.perf_counter() - start)
        in_parts, last_read, committed = read_in_parts(read, parts)
        seconds["in_parts"].append(last_read)
        commits += committed
        errors["whole"] += word_errors(text, at_once)
        errors["in_parts"] += word_errors(text, in_parts)
        if word_errors(text, in_parts) > word_errors(text, at_once):
            worse.append({"said": text, "whole": at_once, "in_parts": in_parts})
        better += word_errors(text, in_parts) < word_errors(text, at_once)
    result: dict = {"turns": len(turns), "words": words, "seconds_of_audio_median": round(statistics.median(
        len(np.concatenate(parts)) / 16000 for _, parts in turns), 1)}  # fmt: skip
    for way in ("whole", "in_parts"):
        result[way] = {"wer": round(errors[way] / words, 4),
                       "last_read_median_s": round(statistics.median(seconds[way]), 3),
                       "last_read_mean_s": round(statistics.fmean(seconds[way]), 3)}  # fmt: skip
    result["commit_points"] = commits
    result["turns_heard_better_in_parts"] = better
    result["heard_worse_in_parts"] = worse
    return result
