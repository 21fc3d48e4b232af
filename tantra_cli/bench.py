"""``tantra bench``: the project's benchmarks; each prints one JSON document on stdout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from config.errors import TantraError
from config.settings import Settings
from tantra_cli.common import settings_of, user_errors

app = typer.Typer(help="Measure speed and memory against reference implementations (prints JSON).")

ANSWERING_MODEL = ("The language model that answers: a name of `tantra models` or a directory from `tantra models "
                   "convert` (default: the default model).")


def _check_model(settings: Settings, model: str | None) -> None:
    """A one-line error for an unknown ``--model`` now, not after minutes of benchmark."""
    if model is not None:
        from core.language.loading import named_model

        named_model(settings, model)


@contextmanager
def benchmark_errors(settings: Settings) -> Iterator[None]:
    """``user_errors``, and one line where what a benchmark measures against is not installed or its samples are not
    here: the pip route installs neither the references (the test extra, openai-whisper) nor the repository's
    ``samples/``."""
    from tantra_benchmarks.common import SAMPLES

    with user_errors(settings):
        if not SAMPLES.is_dir():
            raise TantraError("the benchmarks read the repository's samples/: run them in a clone of Tantra")
        try:
            yield
        except ModuleNotFoundError as missing:
            extra = ("pip install --no-deps openai-whisper==20250625" if missing.name == "whisper"
                     else "pip install '.[test]'")  # fmt: skip
            raise TantraError(f"this benchmark compares with {missing.name}, which is not installed: {extra}") from None


@app.command("transcribe")
def bench_transcribe(
    ctx: typer.Context,
    clip: Path = typer.Option(None, "--clip", help="Audio to use (default: a 10 s clip of the bundled sample)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs per measurement; the median is reported."),
) -> None:
    """Real-time factor of each Whisper engine vs openai-whisper's transcribe(), cold starts, peak memory."""
    settings = settings_of(ctx)
    with benchmark_errors(settings):
        from tantra_benchmarks.transcribe import bench_transcribe as run

        _print(settings, run(settings, clip, repeats))


@app.command("chat")
def bench_chat(
    ctx: typer.Context,
    model: str = typer.Option(None, "--model", "-m", help="Only the perplexity of this model (a name, an imported "
                              "model or a converted directory), spiking and plain."),
    text: Path = typer.Option(None, "--text", help="The text of --model's perplexity (its first 1,024 tokens; "
                              "default samples/prose.txt)."),
    shapes: bool = typer.Option(False, "--shapes", help="Only decode speed and memory at the shapes of 135M, 360M, "
                                "0.5B and 1.5B models (random weights)."),
) -> None:
    """SpikingBrain spiking vs not vs transformers: perplexity, spike sparsity, the k trade-off, speed, memory."""
    settings = settings_of(ctx)
    with benchmark_errors(settings):
        if shapes:
            from tantra_benchmarks.shapes import bench_shapes

            _print(settings, bench_shapes(settings))
            return
        if model is not None or text is not None:
            from tantra_benchmarks.perplexity import bench_perplexity

            _print(settings, bench_perplexity(settings, model, text))
            return
        from tantra_benchmarks.chat import bench_chat as run

        _print(settings, run(settings))


@app.command("speak")
def bench_speak(
    ctx: typer.Context,
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs of the short reply; the median is reported."),
) -> None:
    """Time to first audio, real-time factor and memory per speech backend, and against piper's own CLI."""
    settings = settings_of(ctx)
    with benchmark_errors(settings):
        from tantra_benchmarks.speak import bench_speak as run

        _print(settings, run(settings, repeats))


@app.command("describe")
def bench_describe(
    ctx: typer.Context,
    repeats: int = typer.Option(5, "--repeats", min=1, help="Passes over the photos; the median is reported."),
) -> None:
    """Seconds per image (labels, OCR), load time and peak memory of each vision engine: onnxruntime, torch."""
    settings = settings_of(ctx)
    with benchmark_errors(settings):
        from tantra_benchmarks.describe import bench_describe as run

        _print(settings, run(settings, repeats))


@app.command("voice")
def bench_voice(
    ctx: typer.Context,
    turns: int = typer.Option(10, "--turns", min=1, max=12, help="Spoken questions per configuration."),
    photo: Path = typer.Option(None, "--photo", help="The image that goes with the first question."),
    barge_ins: int = typer.Option(3, "--barge-ins", min=1, help="Answers interrupted, with headphones and through "
                                  "the loudspeakers' echo (issue 23 asks for 20)."),
    model: str = typer.Option(None, "--model", "-m", help=ANSWERING_MODEL),
) -> None:
    """End of speech -> first audio (p50, p95, per stage) with the defaults and --low-resource; idle CPU; memory."""
    settings = settings_of(ctx)
    with benchmark_errors(settings):
        from tantra_benchmarks.voice import bench_voice as run

        _check_model(settings, model)
        _print(settings, run(settings, photo, turns, barge_ins, model))


@app.command("wake")
def bench_wake(
    ctx: typer.Context,
    minutes: float = typer.Option(30.0, "--minutes", min=0.5, help="Minutes of speech without the words."),
    words: list[str] = typer.Option(["hey_jarvis", "alexa"], "--word", help="Wake words to try (repeatable)."),
) -> None:
    """False wakes over long speech without any wake word, and the detector's CPU."""
    settings = settings_of(ctx)
    with benchmark_errors(settings):
        from core.talk.wake_word import check_wake_word
        from tantra_benchmarks.false_wakes import bench_false_wakes

        _print(settings, bench_false_wakes(settings, minutes, tuple(check_wake_word(w) for w in words)))


@app.command("memory")
def bench_memory(
    ctx: typer.Context,
    episodes: int = typer.Option(1000, "--episodes", min=16, help="Exchanges logged and remembered first."),
) -> None:
    """Recall over N episodes, embedding a turn, what logging and memory add to the first token, database size."""
    settings = settings_of(ctx)
    with benchmark_errors(settings):
        from tantra_benchmarks.memory import bench_memory as run

        _print(settings, run(settings, episodes))


@app.command("serve")
def bench_serve(
    ctx: typer.Context,
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs of the CLI transcription; the median is reported."),
) -> None:
    """A real tantra serve under 1, 4 and 16 clients: requests/s, p50/p95 per endpoint, chat tokens/s, memory;
    the warm server against the cold CLI for the same transcription."""
    settings = settings_of(ctx)
    with benchmark_errors(settings):
        from tantra_benchmarks.serve import bench_serve as run

        _print(settings, run(settings, repeats))


@app.command("answers")
def bench_answers(
    ctx: typer.Context,
    split: str = typer.Option("report", "--split", metavar="report|tune|all",
                              help="The items reported on (the defaults were tuned on the tune split)."),
    config: list[str] = typer.Option(None, "--config", metavar="before|after",
                                     help="Prompt layout, system prompt and sampling: before (inline facts), after "
                                          "(today's defaults); both when not given."),
    mode: list[str] = typer.Option(None, "--mode", metavar="spiking|plain", help="Both when not given."),
    category: list[str] = typer.Option(None, "--category", help="Only these categories (repeatable)."),
    replies: bool = typer.Option(False, "--replies", help="Each item's reply and score in the JSON too."),
    model: str = typer.Option(None, "--model", "-m", help=ANSWERING_MODEL),
) -> None:
    """Grounded answers: facts told earlier, images, memory across conversations, piped text, knowledge and voice,
    scored by pattern per category, spiking and plain, with the prompt tokens and first-token time they cost."""
    settings = settings_of(ctx)
    with benchmark_errors(settings):
        from tantra_benchmarks.answer_items import CATEGORIES
        from tantra_benchmarks.answers import CONFIGS
        from tantra_benchmarks.answers import bench_answers as run

        _choices("--split", [split], ("report", "tune", "all"))
        _choices("--config", config or [], tuple(CONFIGS))
        _choices("--mode", mode or [], ("spiking", "plain"))
        _choices("--category", category or [], CATEGORIES)
        _check_model(settings, model)
        _print(settings, run(settings, split, tuple(config or CONFIGS), tuple(mode or ("spiking", "plain")),
                             tuple(category or CATEGORIES), replies, model))  # fmt: skip


def _choices(flag: str, given: list[str], allowed: tuple[str, ...]) -> None:
    from config.errors import BadInput

    for value in given:
        if value not in allowed:
            raise BadInput(f"{flag} {value!r}: choose {', '.join(allowed)}")


def _print(settings, result: dict) -> None:
    from tantra_benchmarks.common import machine

    print(json.dumps({"machine": machine(settings), **result}, indent=2))
