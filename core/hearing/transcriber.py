"""Speech to text: what a transcript is made of, and the loop that feeds a Whisper engine block by block."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from config.errors import TantraError
from core.hearing.audio_io import AudioInfo, read_blocks

TASKS = ("transcribe", "translate")
# Below this peak level (-50 dBFS) a block holds no speech anyone could hear; Whisper would only invent words.
SILENCE_PEAK = 10 ** (-50 / 20)


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    """As Whisper writes it, usually with a leading space."""
    words: tuple[Word, ...] | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None
    """A language code (en, fr, ...); None lets the model detect it."""
    task: str = "transcribe"
    """transcribe, or translate into English."""
    beam_size: int = 5
    """1 decodes greedily: faster, a little less accurate."""
    word_timestamps: bool = False


class WhisperEngine(Protocol):
    name: str
    model_name: str
    multilingual: bool
    languages: tuple[str, ...]
    """Every language code Whisper's tokenizer knows (an English-only model still knows the codes)."""

    def transcribe_block(self, audio: np.ndarray, options: TranscribeOptions) -> tuple[str, Iterator[Segment]]:
        """The detected (or given) language and the block's segments, times relative to the block."""
        ...


def check_options(engine: WhisperEngine, options: TranscribeOptions) -> None:
    """Refuse what the model cannot do before any audio is decoded."""
    if options.task not in TASKS:
        raise TantraError(f"unknown task {options.task!r}; choose {' or '.join(TASKS)}")
    if options.beam_size < 1:
        raise TantraError("--beam-size must be 1 or more")
    if options.language is not None and options.language not in engine.languages:
        raise TantraError(
            f"unknown language {options.language!r}; use a code Whisper knows: {', '.join(engine.languages)}"
        )
    if not engine.multilingual:
        if options.language not in (None, "en"):
            raise TantraError(
                f"{engine.model_name} is English-only and cannot do {options.language!r}; "
                "use a multilingual model such as --model base"
            )
        if options.task == "translate":
            raise TantraError(f"{engine.model_name} is English-only and cannot translate; use --model base")


def spoken_text(segments) -> str:
    """The text of ``segments`` without the ones Whisper only imagined (its own rule: likely no speech, and not sure
    of its words): what a microphone's turn or caption line said."""
    return "".join(
        s.text for s in segments
        if not (s.no_speech_prob is not None and s.no_speech_prob > 0.6 and (s.avg_logprob or 0) < -1.0)
    ).strip()  # fmt: skip


def has_speech(audio: np.ndarray, detector: bool = True) -> bool:
    """False for a block nobody speaks in; Whisper would invent words ("Thank you.") for it.

    Two checks: a peak level gate (free), then, with ``detector``, the Silero voice-activity detector that
    faster-whisper ships (a small ONNX model, a few milliseconds per second of audio). Only whole blocks without
    any detected speech are skipped, so a quiet word inside speech is never cut.
    """
    if len(audio) == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
        return False
    if not detector:
        return True
    try:
        from faster_whisper.vad import get_speech_timestamps
    except ImportError:
        return True  # no detector installed: let Whisper's own no-speech check decide
    return bool(get_speech_timestamps(audio))


@dataclass
class Transcript:
    """Filled in as the segments stream out of ``transcribe``."""

    label: str
    duration: float | None
    language: str | None = None


def transcribe(
    engine: WhisperEngine, info: AudioInfo, options: TranscribeOptions, transcript: Transcript | None = None
) -> Iterator[Segment]:
    """Segments of the whole input in order, with times from its start; long inputs stream in blocks."""
    check_options(engine, options)
    next_id = 0
    for offset, audio in read_blocks(info):
        screened = getattr(engine, "screens_silence", False)  # a server that runs the same detector on each block
        if not has_speech(audio, detector=not screened):
            continue
        language, segments = engine.transcribe_block(audio, options)
        if transcript is not None and transcript.language is None:
            transcript.language = language
        # Later blocks keep the language the first one found, so one recording is not split across languages.
        if options.language is None and engine.multilingual:
            options = replace(options, language=language)
        for segment in segments:
            if not any(character.isalnum() for character in segment.text):
                continue  # "." or "..." over noise is not a transcript
            words = segment.words and tuple(
                replace(w, start=w.start + offset, end=w.end + offset) for w in segment.words
            )
            yield replace(segment, id=next_id, start=segment.start + offset, end=segment.end + offset, words=words)
            next_id += 1
