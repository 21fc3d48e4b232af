"""``POST /v1/audio/transcriptions`` (and ``/translations``) with Whisper, ``POST /v1/audio/speech`` with the voice."""

from __future__ import annotations

import io
import tempfile
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tantra_server.errors import ApiError, bad_request
from tantra_server.streaming import HeldStreamingResponse, iterate_in_thread, until_gone

TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
SPEECH_FORMATS = {"wav": "audio/wav", "pcm": "audio/pcm", "mp3": "audio/mpeg", "flac": "audio/flac"}
PCM_RATE = 24_000  # OpenAI's raw "pcm" is 24 kHz 16-bit mono: clients play it at that rate, so it is resampled to it
LONGEST_INPUT = 4096  # characters of text to speak, OpenAI's own limit: a book goes in parts, not one request


# ---- speech to text -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptRequest:
    audio: bytes
    filename: str
    response_format: str
    language: str | None
    words: bool
    task: str
    model: str


async def transcriptions(request: Request) -> Response:
    return await _transcribe(request, "transcribe")


async def translations(request: Request) -> Response:
    return await _transcribe(request, "translate")


async def _transcribe(request: Request, task: str) -> Response:
    server = request.app.state.tantra
    asked = await _transcript_request(request, server, task)
    engine = await server.model("hearing", asked.model)
    segments, transcript = await until_gone(request, server.lanes["hearing"].call(_run_whisper, server, engine, asked))
    return _transcript_response(segments, transcript, asked, task)


async def _transcript_request(request: Request, server, task: str) -> TranscriptRequest:
    form = await server.form(request)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_request("file is required: the audio, as a multipart file field", "file")
    fmt = str(form.get("response_format") or "json")
    if fmt not in TRANSCRIPT_FORMATS:
        raise bad_request(f"response_format must be one of {', '.join(TRANSCRIPT_FORMATS)}", "response_format")
    granularities = form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
    unknown = set(map(str, granularities)) - {"segment", "word"}
    if unknown:
        raise bad_request("timestamp_granularities are segment and word", "timestamp_granularities")
    model = str(form.get("model") or "")
    language = str(form.get("language") or "").strip().lower() or None
    return TranscriptRequest(await upload.read(), upload.filename or "audio", fmt, language,
                             "word" in granularities, task, model)  # fmt: skip


def _run_whisper(server, engine, asked: TranscriptRequest):
    """Segments of the whole upload, as ``tantra transcribe`` makes them (blocks, silence skipped, ...)."""
    from core.hearing.audio_io import probe
    from core.hearing.transcriber import TranscribeOptions, Transcript, check_options, transcribe

    if not asked.audio:
        raise bad_request("the audio file is empty", "file")
    options = TranscribeOptions(asked.language, asked.task, server.loader.beam_size, asked.words)
    check_options(engine, options)
    suffix = Path(asked.filename).suffix[:10] if Path(asked.filename).suffix.isascii() else ""
    with tempfile.NamedTemporaryFile(prefix="tantra-serve-", suffix=suffix) as spool:
        spool.write(asked.audio)
        spool.flush()
        info = probe(Path(spool.name), label=Path(asked.filename).name or "audio")
        limit = server.options.max_audio_seconds
        if info.duration is not None and info.duration > limit:
            raise ApiError(413, f"the audio is {info.duration:.0f} s long; this server takes up to {limit:g} s",
                           "audio_too_long", "file")  # fmt: skip
        transcript = Transcript(info.label, info.duration)
        segments = []
        for segment in transcribe(engine, info, options, transcript):
            if segment.end > limit:  # a format that does not say its length: counted as it is heard
                raise ApiError(413, f"the audio is over this server's limit of {limit:g} s", "audio_too_long", "file")
            segments.append(segment)
        return segments, transcript


def _transcript_response(segments, transcript, asked: TranscriptRequest, task: str) -> Response:
    from core.hearing.transcript_formats import write_srt, write_vtt

    text = "".join(segment.text for segment in segments).strip()
    if asked.response_format == "text":
        return PlainTextResponse(text + "\n")
    if asked.response_format in ("srt", "vtt"):
        out = io.StringIO()
        (write_srt if asked.response_format == "srt" else write_vtt)(segments, transcript, out)
        return PlainTextResponse(out.getvalue())
    if asked.response_format == "json":
        return JSONResponse({"text": text})
    body = {
        "task": task, "language": transcript.language, "duration": transcript.duration, "text": text,
        "segments": [{
            "id": s.id, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [], "temperature": 0.0,
            "avg_logprob": s.avg_logprob, "compression_ratio": None, "no_speech_prob": s.no_speech_prob,
        } for s in segments],
    }  # fmt: skip
    if asked.words:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                         for s in segments for w in s.words or ()]  # fmt: skip
    return JSONResponse(body)


# ---- speech ---------------------------------------------------------------------------------------------------------


async def speech(request: Request) -> Response:
    from core.voice.speaker import Speaker
    from core.voice.speech_text import has_words, normalize

    server = request.app.state.tantra
    body = await server.json_body(request)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("input is required: the text to speak", "input")
    if len(text) > LONGEST_INPUT:
        raise bad_request(f"input is {len(text)} characters; at most {LONGEST_INPUT} per request", "input")
    if not has_words(normalize(text)):
        raise bad_request("input has no words to speak", "input")
    fmt = body.get("response_format") or "mp3"
    if fmt not in SPEECH_FORMATS:
        raise bad_request(f"response_format must be one of {', '.join(SPEECH_FORMATS)}", "response_format")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        raise bad_request("speed must be a number from 0.25 to 4.0", "speed")
    await server.model("voice", str(body.get("model") or ""))
    speaker = Speaker(await server.voice(body.get("voice")), float(speed))

    lane = server.lanes["voice"]
    leave = await until_gone(request, lane.enter())
    try:
        if fmt in ("wav", "pcm"):  # streamed: the first sentence plays while the rest is synthesized
            chunks = iterate_in_thread(lambda: speaker.synthesize(text), lane.threads, done=leave)
            answer = HeldStreamingResponse(_pcm_stream(chunks, speaker.sample_rate, fmt), leave,
                                           media_type=SPEECH_FORMATS[fmt])  # fmt: skip
            leave = None  # the response gives the place back now, when it ends
            return answer
        audio = await until_gone(request, lane.run(_encoded, speaker, text, fmt))
    finally:
        if leave is not None:
            leave()
    return Response(audio, media_type=SPEECH_FORMATS[fmt])


async def _pcm_stream(chunks, sample_rate: int, fmt: str):
    import numpy as np

    from core.voice.audio_output import wav_header_streaming

    if fmt == "wav":
        yield wav_header_streaming(sample_rate)
    async with aclosing(chunks):
        async for chunk in chunks:
            samples = chunk.samples
            if fmt == "pcm" and sample_rate != PCM_RATE:
                import soxr

                samples = soxr.resample(samples, sample_rate, PCM_RATE)
            yield (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _encoded(speaker, text: str, fmt: str) -> bytes:
    """The whole speech as one MP3 or FLAC file: those encoders want all the samples before they finish."""
    import numpy as np
    import soundfile

    samples = np.concatenate([chunk.samples for chunk in speaker.synthesize(text)])
    out = io.BytesIO()
    soundfile.write(out, samples, speaker.sample_rate, format=fmt.upper())
    return out.getvalue()
