"""``tantra transcribe FILE... | -``: speech to text with Whisper, like the ``whisper`` CLI, offline."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path

import typer

from config.errors import TantraError
from config.model_config import MODEL_CONFIG, WHISPER_ENGINES
from core.runtime.status import say
from tantra_cli.common import EXIT_FAILED, EXIT_USAGE, error, settings_of, user_errors

Engine = Enum("Engine", {name.replace("-", "_"): name for name in WHISPER_ENGINES}, type=str)


class Task(str, Enum):
    transcribe = "transcribe"
    translate = "translate"


class OutputFormat(str, Enum):
    txt = "txt"
    srt = "srt"
    vtt = "vtt"
    tsv = "tsv"
    json = "json"
    all = "all"


LONG_INPUT_SECONDS = 60  # show a progress bar for inputs longer than this (when stderr is a terminal)


def transcribe(
    ctx: typer.Context,
    inputs: list[str] = typer.Argument(None, metavar="FILE... | -", help="Audio files (or - for stdin)."),
    model: str = typer.Option(
        None, "--model", "-m", help="tiny.en (default), base, any openai-whisper name, or a .pt path."
    ),
    engine: Engine = typer.Option(None, "--engine", help="Default: the faster one installed (faster-whisper)."),
    language: str = typer.Option(None, "--language", "-l", help="Language code (en, fr, ...); default: detect."),
    task: Task = typer.Option(Task.transcribe, "--task", help="transcribe, or translate into English."),
    output_format: OutputFormat = typer.Option(OutputFormat.txt, "--output-format", "-f", help="File format."),
    output_dir: Path = typer.Option(None, "--output-dir", "-o", help="Write files named after each input here."),
    word_timestamps: bool = typer.Option(False, "--word-timestamps", help="Time every word (json, srt, vtt)."),
    beam_size: int = typer.Option(None, "--beam-size", help="Beam width (default 5; 1 with --low-resource)."),
    live: bool = typer.Option(False, "--live", help="Caption the microphone as you speak (Ctrl-C ends)."),
    mic_file: Path = typer.Option(
        None, "--mic-file", help="With --live: read this audio file or FIFO instead of the microphone."
    ),
    input_device: str = typer.Option(None, "--input-device", help="With --live: the microphone (tantra devices)."),
) -> None:
    """Transcribe speech: the text goes to stdout, or files to --output-dir (any format but txt writes files).

    Reads wav, flac, ogg and mp3, and other formats through the bundled ffmpeg. Long recordings stream in
    blocks of a few minutes, so memory stays bounded. With several files, one failure does not stop the rest.

    --live captions speech as it is spoken: the line being said is replaced in place at a terminal, final lines
    go to a pipe, -f srt|vtt writes timed cues (to -o FILE, or stdout).
    """
    settings = settings_of(ctx)
    with user_errors(settings):
        if live:
            _live(settings, inputs or [], model, engine, language, task, output_format, output_dir, word_timestamps,
                  beam_size, mic_file, input_device)  # fmt: skip
            return
        if not inputs:
            error("give audio files (or - for stdin), or --live for the microphone")
            raise typer.Exit(EXIT_USAGE)
        if mic_file is not None or input_device is not None:
            error("--mic-file and --input-device go with --live")
            raise typer.Exit(EXIT_USAGE)
        # With --server the server's Whisper transcribes (the local one where it cannot be reached).
        failed = _transcribe_all(settings, inputs, model, engine, language, task, output_format, output_dir,
                                 word_timestamps, beam_size)  # fmt: skip
        if failed:
            if len(inputs) > 1:
                error(f"{failed} of {len(inputs)} inputs failed")
            raise typer.Exit(EXIT_FAILED)


def _transcribe_all(settings, inputs, model, engine, language, task, output_format, output_dir, word_timestamps,
                    beam_size) -> int:  # fmt: skip
    """Each input transcribed; how many failed (each said in one line)."""
    from core.hearing.transcriber import TranscribeOptions, check_options
    from core.model_loader import ModelLoader

    loader = ModelLoader(MODEL_CONFIG, settings)
    options = TranscribeOptions(
        language=language.lower() if language else None,
        task=task.value,
        beam_size=beam_size or loader.beam_size,
        word_timestamps=word_timestamps,
    )
    whisper = loader.load_whisper(model, engine.value if engine else None)
    check_options(whisper, options)
    formats = _formats(output_format)
    target_dir = output_dir if output_dir is not None or formats != ["txt"] else None
    failed = 0
    for source in inputs:
        try:
            _transcribe_one(source, whisper, options, formats, target_dir, settings.verbose)
        except TantraError as failure:
            if settings.debug:
                raise
            error(str(failure))
            failed += 1
    return failed


def _live(settings, inputs, model, engine, language, task, output_format, output, word_timestamps, beam_size,
          mic_file, input_device) -> None:  # fmt: skip
    from core.hearing.transcriber import TranscribeOptions, check_options
    from core.model_loader import ModelLoader
    from tantra_cli.live_captions import check_live, run_live

    check_live(inputs, output_format.value, output, word_timestamps)
    loader = ModelLoader(MODEL_CONFIG, settings)
    options = TranscribeOptions(language=language.lower() if language else None, task=task.value,
                                beam_size=beam_size or loader.beam_size)  # fmt: skip

    def load_whisper():
        whisper = loader.load_whisper(model, engine.value if engine else None)
        check_options(whisper, options)
        return whisper

    run_live(load_whisper, options, output_format.value, output, mic_file, input_device, settings.verbose)


def _formats(choice: OutputFormat) -> list[str]:
    from core.hearing.transcript_formats import FORMATS

    return list(FORMATS) if choice is OutputFormat.all else [choice.value]


def _transcribe_one(source, whisper, options, formats: list[str], target_dir: Path | None, verbose: bool) -> None:
    from core.hearing.audio_io import open_input
    from core.hearing.transcriber import Transcript, transcribe

    with open_input(source) as audio:
        transcript = Transcript(audio.label, audio.duration)
        if verbose:
            length = f"{audio.duration:.1f} s" if audio.duration is not None else "unknown length"
            say(f"{audio.label}: {length}, read with {audio.reader}")
        segments = _with_progress(transcribe(whisper, audio, options, transcript), audio.label, audio.duration)
        if target_dir is None:
            for segment in segments:  # stream: each segment reaches the pipe as soon as it is decoded
                print(segment.text.strip(), flush=True)
            return
        collected = list(segments)
    _write_files(collected, transcript, formats, target_dir, Path(source).stem if source != "-" else "stdin")


def _with_progress(segments, label: str, duration: float | None):
    """Pass segments through, with a progress bar on stderr for long inputs when stderr is a terminal."""
    if not sys.stderr.isatty() or duration is None or duration < LONG_INPUT_SECONDS:
        yield from segments
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=duration)
        for segment in segments:
            progress.update(task, completed=min(segment.end, duration))
            yield segment


def _write_files(segments, transcript, formats: list[str], target_dir: Path, stem: str) -> None:
    from core.hearing.transcript_formats import WRITERS

    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise TantraError(f"cannot create output directory {target_dir}: {failure.strerror}") from None
    for fmt in formats:
        path = target_dir / f"{stem}.{fmt}"
        partial = path.with_name(path.name + ".partial")
        try:
            with partial.open("w", encoding="utf-8") as out:
                WRITERS[fmt](segments, transcript, out)
            os.replace(partial, path)  # a reader never sees half a file
        except OSError as failure:
            partial.unlink(missing_ok=True)
            raise TantraError(f"cannot write {path}: {failure.strerror}") from None
        say(f"wrote {path}")
