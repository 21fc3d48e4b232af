"""Whisper on an OpenAI-compatible server (``/v1/audio/transcriptions`` and ``/translations``: vLLM, faster-whisper
servers such as speaches, OpenAI itself, another ``tantra serve``), as a ``core.hearing.transcriber.WhisperEngine``.

Each block of audio goes as a 16-bit WAV in a multipart form and comes back as ``verbose_json`` segments (and
words). A server that fails in the middle of a recording gives way, in one line, to the local engine, which
transcribes that block and the rest: a transcript is never cut short because a server went away.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import numpy as np

from config.errors import ModelUnavailable, TantraError
from core.hearing.transcriber import Segment, TranscribeOptions, WhisperEngine, Word, check_options
from core.runtime.fallback import GiveWay
from core.runtime.openai_http import Endpoint, model_listing
from core.runtime.status import say

SAMPLE_RATE = 16000  # what core.hearing.transcriber hands every engine

# Whisper's languages, code -> name, in its tokenizer's order (whisper/tokenizer.py LANGUAGES): a copy, since
# importing whisper (torch) or faster_whisper (ctranslate2, av) for a list would cost a second at every start.
# OpenAI's API answers with the name ("english"), faster-whisper servers with the code ("en").
LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}  # fmt: skip
_CODES = {name: code for code, name in LANGUAGES.items()}


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """``audio`` (float32 in [-1, 1]) as a 16-bit PCM WAV file: half the bytes of float, and every server reads it."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class RemoteWhisperEngine:
    """``transcribe_block`` on a server; ``local`` (a factory of the local engine) answers once the server fails."""

    multilingual = True  # the server's model decides; one that cannot do a language says so itself
    languages = tuple(LANGUAGES)
    device = "remote"

    def __init__(self, endpoint: Endpoint, model: str, local: Callable[[], WhisperEngine] | None = None,
                 warn: Callable[[str], None] = say) -> None:  # fmt: skip
        self.endpoint, self.model = endpoint, model
        self.fallback = GiveWay(local, warn, "the local Whisper transcribes from here on")
        self.tantra = False
        """The server is a ``tantra serve``."""

    @classmethod
    def connect(cls, base_url: str, model: str, api_key: str = "", timeout: float = 120.0,
                local: Callable[[], WhisperEngine] | None = None, warn: Callable[[str], None] = say,
                ) -> RemoteWhisperEngine:  # fmt: skip
        """The server after one ``GET /models``: it answers and takes the key; raises so the local chain loads."""
        endpoint = Endpoint(base_url, api_key, timeout, "speech-to-text server")
        engine = cls(endpoint, model, local, warn)
        engine.tantra = any(entry.get("owned_by") == "tantra" for entry in model_listing(endpoint))
        return engine

    @property
    def name(self) -> str:
        return self.fallback.engine.name if self.fallback.engine is not None else "remote"

    @property
    def model_name(self) -> str:
        return self.fallback.engine.model_name if self.fallback.engine is not None else self.model

    @property
    def screens_silence(self) -> bool:
        """Whether blocks without speech are skipped where they are transcribed: a ``tantra serve`` runs the same
        voice-activity detector, so this process need not load one to do it first
        (``core.hearing.transcriber.has_speech``). Once the local engine has taken over, it is done here again."""
        return self.tantra and self.fallback.engine is None

    @property
    def label(self) -> str:
        return self.endpoint.label

    def __repr__(self) -> str:
        return f"RemoteWhisperEngine({self.model!r} at {self.label!r})"  # never the key

    def transcribe_block(self, audio: np.ndarray, options: TranscribeOptions) -> tuple[str | None, Iterator[Segment]]:
        """The server's language and segments for ``audio``; the local engine's once the server has failed. The
        language is None where the server does not say it."""
        local = self.fallback.engine
        if local is None:
            try:
                return self._remote_block(audio, options)
            except TantraError as failure:  # a refusal of this audio or an option is raised as it is
                local = self.fallback.after(failure)
        check_options(local, options)  # an English-only local model cannot go on in French
        return local.transcribe_block(audio, options)

    def _remote_block(self, audio: np.ndarray, options: TranscribeOptions) -> tuple[str | None, Iterator[Segment]]:
        translate = options.task == "translate"
        fields: dict[str, str | list[str]] = {"model": self.model, "response_format": "verbose_json"}
        if not translate:  # OpenAI's translations take neither: the target is English, the times are segments
            fields["timestamp_granularities[]"] = ["segment", "word"] if options.word_timestamps else ["segment"]
            if options.language:
                fields["language"] = options.language
        files = {"file": ("audio.wav", wav_bytes(audio), "audio/wav")}
        path = "/audio/translations" if translate else "/audio/transcriptions"
        with self.endpoint.post_form(path, fields, files) as response:
            raw = self.endpoint.read(response)
        try:
            reply = json.loads(raw)
        except ValueError:
            raise TantraError(f"the {self.label} answered something that is not JSON") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("text", ""), str):
            raise TantraError(f"the {self.label} answered something that is not a transcription")
        language = _code(reply.get("language")) or options.language
        if translate:
            language = "en"
        return language, iter(segments_of(reply, len(audio) / SAMPLE_RATE, self.label))


def _code(language) -> str | None:
    if not isinstance(language, str) or not language:
        return None
    language = language.strip().lower()
    return language if language in LANGUAGES else _CODES.get(language)


def segments_of(reply: dict, duration: float, label: str = "server") -> list[Segment]:
    """``core.hearing.transcriber.Segment``s of a ``verbose_json`` answer, times relative to the block. Words come
    inside segments (faster-whisper servers) or beside them (OpenAI's API): beside, each goes to the segment its middle
    falls in. A server that answers ``text`` alone gives one segment spanning the block."""
    try:
        words = [_word(w) for w in reply.get("words") or []]
        raw_segments = reply.get("segments") or []
        if not raw_segments:
            text = reply.get("text", "")
            if not text.strip():
                return []
            return [Segment(0, 0.0, duration, text if text.startswith(" ") else " " + text, tuple(words) or None)]
        segments = []
        for index, raw in enumerate(raw_segments):
            start, end = float(raw["start"]), float(raw["end"])
            inside = raw.get("words")
            if inside is not None:
                own = tuple(_word(w) for w in inside)
            elif words:
                last = index == len(raw_segments) - 1
                own = tuple(w for w in words if start <= (w.start + w.end) / 2 < end or (last and w.start >= start))
            else:
                own = None
            segments.append(Segment(index, start, end, str(raw["text"]), own,
                                    _number(raw.get("avg_logprob")), _number(raw.get("no_speech_prob"))))  # fmt: skip
        return segments
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise TantraError(f"the {label} answered segments of an unknown shape ({error!r})") from None


def _word(raw: dict) -> Word:
    # OpenAI's API gives no probability: None (unknown) rather than an invented 1.0.
    return Word(float(raw["start"]), float(raw["end"]), str(raw["word"]), _number(raw.get("probability")))


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def from_settings(settings, local: Callable[[], WhisperEngine] | None = None, warn: Callable[[str], None] = say,
                  model: str | None = None) -> RemoteWhisperEngine:  # fmt: skip
    """The configured server (``TANTRA_HEARING_URL`` ...), probed; ``model`` in place of the configured name."""
    if not settings.hearing_url:
        raise ModelUnavailable("no speech-to-text server configured (TANTRA_HEARING_URL)")
    return RemoteWhisperEngine.connect(settings.hearing_url, model or settings.hearing_model, settings.hearing_api_key,
                                       float(settings.hearing_timeout), local, warn)  # fmt: skip
