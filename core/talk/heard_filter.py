"""Which transcripts are not the user talking to Tantra: Whisper's inventions over noise, and Tantra's own voice
coming back through the microphone (no local assistant cancels echo; GLaDOS #38, pipecat #188 and RealtimeSTT #156
show what users hear otherwise)."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

# What Whisper says over noise, breath and silence: learned from YouTube subtitles (openai/whisper #928, #1783).
HALLUCINATIONS = frozenset({
    "you", "thank you", "thanks", "thank you very much", "thanks for watching", "thank you for watching",
    "please subscribe", "bye", "bye bye", "so", "uh", "um", "hmm", "oh", "the end", "okay", "ok",
})  # fmt: skip
ECHO_SIMILARITY = 0.6  # this close to something Tantra just said, and it is Tantra's voice coming back


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def is_noise(transcript: str) -> bool:
    """Empty, bracketed sound effects ("[Music]", "(coughs)"), or a phrase Whisper invents over noise."""
    spoken = re.sub(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪", " ", transcript)
    words = words_of(spoken)
    return not words or " ".join(words) in HALLUCINATIONS


def is_echo(transcript: str, said: str) -> bool:
    """Whether ``transcript`` is mostly a stretch of ``said`` (what Tantra said lately): compared word by word
    with every stretch of ``said`` of the same length, so a short echo of a long reply is caught too."""
    heard, spoken = words_of(transcript), words_of(said)
    if not heard or not spoken:
        return False
    width = min(len(heard), len(spoken))
    best = max(
        SequenceMatcher(None, heard, spoken[start : start + width], autojunk=False).ratio()
        for start in range(0, max(1, len(spoken) - width + 1))
    )
    return best >= ECHO_SIMILARITY
