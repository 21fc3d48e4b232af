"""The two Whisper engines. Each imports its heavy library only when it is built.

- faster-whisper runs the CTranslate2 files from the store as they are (int8 on a CPU: the faster engine here).
- openai-whisper (the spec's) runs the converted checkpoint, an official model name, or any ``.pt`` path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from config.errors import ModelUnavailable
from core.hearing.transcriber import Segment, TranscribeOptions, Word


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, model_dir: Path, model_name: str, device: str, threads: int, compute_type: str) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        self.model_name = model_name
        self.device = device
        self.model = WhisperModel(str(model_dir), device=device, compute_type=compute_type, cpu_threads=threads)
        self.multilingual = bool(self.model.model.is_multilingual)
        self.languages = tuple(_LANGUAGE_CODES)

    def transcribe_block(self, audio: np.ndarray, options: TranscribeOptions) -> tuple[str, Iterator[Segment]]:
        segments, info = self.model.transcribe(
            audio,
            language=options.language,
            task=options.task,
            beam_size=options.beam_size,
            word_timestamps=options.word_timestamps,
            vad_filter=False,
        )
        return info.language, (_faster_segment(s) for s in segments)

    def transcribe_turn(self, audio: np.ndarray, options: TranscribeOptions) -> str | None:
        """The text of one spoken turn, its encoder reading the turn and 2 s of silence (10 s at least) instead of
        30 s: tiny.en reads a short turn in about 0.2 s instead of 0.44 here, as accurately (word error rate 0.082
        against 0.100 over 47 spoken sentences, ``tantra bench transcribe``). Whisper is trained on 30 s windows,
        and with less than about 1 s of silence after the speech it repeats or invents words, so the margin is kept.

        None where this shortcut does not apply or its text looks wrong (a turn over 28 s, a language to detect,
        a repetition as faster-whisper's fallback finds it): the caller then uses ``transcribe_block``."""
        import ctranslate2
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        too_long = len(audio) > (SHORT_WINDOW_LONGEST - SHORT_WINDOW_MARGIN) * 16000
        if too_long or (self.multilingual and not options.language) or options.task != "transcribe":
            return None
        tokenizer = self._tokenizer(options)
        encoded = self.model.model.encode(ctranslate2.StorageView.from_array(self.turn_window(audio)), to_cpu=False)
        result = self.model.model.generate(
            encoded, [[*tokenizer.sot_sequence, tokenizer.no_timestamps]], beam_size=options.beam_size,
            max_length=224, return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]  # fmt: skip
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens).strip()
        if get_compression_ratio(text) > 2.4 or says_twice(text):  # a repeating decode: read the usual way
            return None
        average = result.scores[0] * len(tokens) / (len(tokens) + 1)  # faster-whisper's average log-probability
        if result.no_speech_prob > 0.6 and average < -1.0:  # its rule for a window nobody spoke in
            return ""
        return text

    def turn_window(self, audio: np.ndarray) -> np.ndarray:
        """The encoder's input for a turn: its log-mel features and 2 s of silence after them, 10 s at least, 30 s
        at most (``transcribe_turn``)."""
        features = self.model.feature_extractor(audio)
        frames = min(3000, max(SHORT_WINDOW_SHORTEST * 100, features.shape[1] + SHORT_WINDOW_MARGIN * 100))
        window = np.zeros((1, features.shape[0], frames), np.float32)
        window[0, :, : features.shape[1]] = features[:, :frames]
        return window

    def _tokenizer(self, options: TranscribeOptions):
        from faster_whisper.tokenizer import Tokenizer

        language = options.language or "en"
        return Tokenizer(self.model.hf_tokenizer, self.multilingual, task=options.task, language=language)


def says_twice(text: str) -> bool:
    """Whether a sentence of ``text`` comes twice in a row. A window cut to the turn sometimes makes Whisper repeat
    a short question ("What do bees make? What do bees make?", on PulseAudio), too short for faster-whisper's
    compression-ratio test to see; a person who did say it twice is read the usual way too, at no loss."""
    sentences = [" ".join(re.findall(r"[a-z0-9']+", s.lower())) for s in re.split(r"(?<=[.?!])\s+", text)]
    sentences = [s for s in sentences if s]
    return any(first == second for first, second in zip(sentences, sentences[1:]))


SHORT_WINDOW_SHORTEST = 10  # seconds: the encoder reads at least this much
SHORT_WINDOW_MARGIN = 2  # seconds of silence after the turn
SHORT_WINDOW_LONGEST = 30  # Whisper's own window: a longer turn is transcribed the usual way


def _faster_segment(segment) -> Segment:
    words = None
    if segment.words is not None:
        words = tuple(Word(w.start, w.end, w.word, w.probability) for w in segment.words)
    return Segment(
        segment.id, segment.start, segment.end, segment.text, words, segment.avg_logprob, segment.no_speech_prob
    )


class OpenAIWhisperEngine:
    name = "openai-whisper"

    def __init__(self, checkpoint: str, model_name: str, device: str, download_root: Path,
                 alignment_heads: list[tuple[int, int]] | None = None) -> None:  # fmt: skip
        import torch
        import whisper
        from whisper.tokenizer import LANGUAGES

        self.model_name = model_name
        self.device = device
        try:
            self.model = whisper.load_model(checkpoint, device=device, download_root=str(download_root))
        except Exception as error:  # noqa: BLE001 - every way a load fails ends in the same one-line message
            # Seen: RuntimeError for a failed download or a truncated file, URLError without a network,
            # UnpicklingError for a .pt that weights_only refuses, KeyError for a checkpoint that is not Whisper's.
            reason = _first_line(error)
            if "Weights only load failed" in reason:
                reason = "it is not a plain-tensor checkpoint, and tantra never unpickles code from a model file"
            raise ModelUnavailable(f"cannot load Whisper model {model_name!r}: {reason}") from None
        if alignment_heads:
            # Converted checkpoints carry no alignment heads; word timestamps need them.
            mask = torch.zeros(self.model.dims.n_text_layer, self.model.dims.n_text_head, dtype=torch.bool)
            for layer, head in alignment_heads:
                mask[layer, head] = True
            self.model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
        self.multilingual = bool(self.model.is_multilingual)
        self.languages = tuple(LANGUAGES)

    def transcribe_block(self, audio: np.ndarray, options: TranscribeOptions) -> tuple[str, Iterator[Segment]]:
        import whisper

        result = whisper.transcribe(
            self.model,
            audio,
            language=options.language,
            task=options.task,
            # openai-whisper decodes greedily when beam_size is None; 1 would mean a beam of one, same result.
            beam_size=options.beam_size if options.beam_size > 1 else None,
            word_timestamps=options.word_timestamps,
            fp16=self.device == "cuda",
            verbose=None,
        )
        return result["language"], (_openai_segment(s) for s in result["segments"])


def _openai_segment(segment: dict) -> Segment:
    words = None
    if "words" in segment:
        words = tuple(Word(w["start"], w["end"], w["word"], w["probability"]) for w in segment["words"])
    return Segment(
        segment["id"], segment["start"], segment["end"], segment["text"], words,
        segment.get("avg_logprob"), segment.get("no_speech_prob"),
    )  # fmt: skip


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
