"""The two Whisper engines. Each imports its heavy library only when it is built.

- faster-whisper runs the CTranslate2 files from the store as they are (int8 on a CPU: the faster engine here).
- openai-whisper (the spec's) runs the converted checkpoint, an official model name, or any ``.pt`` path.
"""

from __future__ import annotations

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
