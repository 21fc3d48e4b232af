"""``tantra chat [PROMPT]``: talk with SpikingBrain. A REPL at a terminal; one answer for a prompt or piped text;
a spoken conversation with ``--voice`` (or ``--mic-file``, the stand-in microphone)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import typer

from config.errors import BadInput, TantraError
from config.settings import END_OF_TURN
from core.language.conversation import SamplingOptions
from tantra_cli.common import EXIT_FAILED, error, read_stdin_text, settings_of, user_errors

DEFAULTS = SamplingOptions()
"""The sampling ``tantra bench answers`` chose for the small model (``core.language.conversation``)."""
MIC_FILE_HELP = (
    "Stand-in microphone: this audio file (or a FIFO) at real time, then silence; the session ends once it is over "
    "and answered."
)
BARGE_IN_HELP = (
    "auto: talk over it (its echo cancelled; without the canceller the microphone rests while Tantra speaks); "
    "on: speaking interrupts it, even uncancelled (headphones); off: only Ctrl-C or a key does."
)


def chat(
    ctx: typer.Context,
    prompt: str = typer.Argument(None, help="The question; piped stdin becomes context for it (as `llm` does)."),
    model: str = typer.Option(
        None, "--model", "-m", help="A language model of `tantra models`, or a directory from `tantra models convert`."
    ),
    system: str = typer.Option(None, "--system", "-s", help="System prompt."),
    temperature: float = typer.Option(
        DEFAULTS.temperature, "--temperature", "-t", min=0.0, help="0 (the default) answers deterministically."
    ),
    top_k: int = typer.Option(DEFAULTS.top_k, "--top-k", min=0),
    top_p: float = typer.Option(DEFAULTS.top_p, "--top-p", min=0.0, max=1.0),
    repetition_penalty: float = typer.Option(
        DEFAULTS.repetition_penalty, "--repetition-penalty", min=1.0, help="Against repeating the reply's own words."
    ),
    max_tokens: int = typer.Option(DEFAULTS.max_tokens, "--max-tokens", "-n", min=1, help="Longest reply, in tokens."),
    seed: int = typer.Option(None, "--seed", help="Make sampling repeatable."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print the reply when it is complete."),
    no_spiking: bool = typer.Option(False, "--no-spiking", help="Run the same weights without spike coding."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the reply with token counts and timings as JSON (voice: one object per turn)."
    ),
    images: list[str] = typer.Option(
        None, "--image", "-i", help="An image to ask about (repeatable); with --voice it goes with the first turn."
    ),
    voice: bool = typer.Option(False, "--voice", help="Talk: listen to the microphone and speak the replies."),
    ptt: bool = typer.Option(False, "--ptt", help="Push-to-talk: Enter on an empty line starts and stops a turn."),
    barge_in: str = typer.Option("auto", "--barge-in", metavar="auto|on|off", help=BARGE_IN_HELP),
    input_device: str = typer.Option(None, "--input-device", help="Microphone: index or name (`tantra devices`)."),
    output_device: str = typer.Option(None, "--output-device", help="Speaker: index or name (`tantra devices`)."),
    mic_file: Path = typer.Option(None, "--mic-file", help=MIC_FILE_HELP, dir_okay=False),
    speaker_file: Path = typer.Option(
        None, "--speaker-file", help="Stand-in speaker: a WAV of what would have been played, silences included."
    ),
    rate: float = typer.Option(1.0, "--rate", help="Speaking speed of the voice: 1 is normal, 1.5 faster."),
    wake: str = typer.Option(
        None, "--wake", metavar="[NAME]", help="Answer only after this wake word (and follow-ups); alone, list them."
    ),
    end_of_turn: str = typer.Option(
        None, "--end-of-turn", metavar="smart-turn|silence", help="How a spoken turn's end is heard: smart-turn (the "
        "default: a complete question is answered after 300 ms of silence, a pause mid-sentence waited out) or "
        "silence (600 ms always).",
    ),  # fmt: skip
    resume: bool = typer.Option(False, "--continue", "-c", help="Continue the latest conversation of the log."),
    cid: str = typer.Option(None, "--cid", help="Continue the conversation with this id (`tantra logs`)."),
    no_log: bool = typer.Option(False, "--no-log", help="Keep this chat out of the log (and out of memory)."),
    no_memory: bool = typer.Option(False, "--no-memory", help="Recall nothing from earlier conversations."),
) -> None:
    """Chat in a REPL at a terminal; with a prompt or piped text, answer once and exit; --voice to talk."""
    settings = settings_of(ctx)
    with user_errors(settings):
        if end_of_turn is not None:
            if end_of_turn not in END_OF_TURN:
                raise BadInput(f"--end-of-turn {end_of_turn!r}: choose {' or '.join(END_OF_TURN)}")
            settings = replace(settings, end_of_turn=end_of_turn)
        if wake == "list":
            _list_wake_words()
            return
        request = _voice_request(barge_in, ptt, input_device, output_device, mic_file, speaker_file, rate,
                                 wake or settings.wake_word or None)  # fmt: skip
        earlier = _earlier_turns(settings, resume, cid)  # an unknown --cid is refused before anything loads
        record = Record(not no_log, not no_memory, earlier)
        voice = voice or ptt  # push-to-talk is a way of talking
        if voice or mic_file is not None or speaker_file is not None:
            options = SamplingOptions(temperature, top_k, top_p, repetition_penalty, max_tokens, seed=seed)
            interactive = voice and not as_json and sys.stdin is not None and sys.stdin.isatty()
            try:
                code = _voice_chat(settings, request, model, system, no_spiking, interactive, as_json, images or [],
                                   options, record)  # fmt: skip
            except TantraError as failure:
                if settings.debug:
                    raise
                error(str(failure))
                code = EXIT_FAILED
            _exit_now(code)
        interactive = sys.stdin is None or sys.stdin.isatty()  # None: started with stdin closed
        piped = "" if interactive else read_stdin_text("tantra chat")
        repl = prompt is None and sys.stdin is not None and sys.stdin.isatty()
        if not repl:
            if prompt is None and not piped.strip():
                if interactive:
                    raise TantraError('give a question: tantra chat "..." or echo question | tantra chat')
                raise BadInput("stdin is empty: pipe a question in, or give one as an argument")
            # Piped text with a question is what the question is about (as `llm` takes it); alone, it is the question.
            question, context = (prompt, piped.strip()) if piped.strip() and prompt else ((prompt or piped).strip(), "")
            if not question.strip():
                raise BadInput("the prompt is empty")

        from config.model_config import MODEL_CONFIG
        from core.language.chat_session import ChatSession
        from core.model_loader import ModelLoader
        from core.vision.describer import ImageDescriber

        options = SamplingOptions(temperature, top_k, top_p, repetition_penalty, max_tokens, seed=seed)
        loader = ModelLoader(MODEL_CONFIG, settings)
        if sys.stderr.isatty():
            from rich.console import Console

            with Console(stderr=True).status("loading the language model"):
                loaded = loader.load_spikingbrain(spiking=not no_spiking, model=model)
        else:
            loaded = loader.load_spikingbrain(spiking=not no_spiking, model=model)
        describer = ImageDescriber(loader)  # its models load at the first image (the server's with --server)
        session = ChatSession.of(loaded, options, _system(system), describer=describer,
                                 journal=record.journal(settings, loader),
                                 fallback=_local_model(loader, no_spiking, model))  # fmt: skip
        session.continue_from(earlier)
        for image in images or []:
            session.attach(session.image_record(_existing(image)))
        if repl:
            from tantra_cli.repl import run_repl

            _say_continued(earlier)
            run_repl(session, settings.home / "chat_history", stream=not no_stream, loader=loader, request=request)
            _exit_now(0)  # /voice on may have run the voice loop's threads
        source = "stdin" if piped.strip() else "argument"
        if as_json:
            reply = "".join(session.ask(question, source, context)).strip()
            last, journal = session.last, session.journal
            print(json.dumps({
                "reply": reply, "model": session.model_name, "spiking": session.spiking,
                "prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens,
                "seconds": round(last.seconds, 3), "first_token_seconds": round(last.first_token_seconds, 3),
                "tokens_per_second": last.tokens_per_second,
                "conversation_id": journal.conversation_id if journal.log is not None else None,
                "recalled": [r.as_json() for r in journal.recalled],
            }, ensure_ascii=False))  # fmt: skip
        elif no_stream:
            print("".join(session.ask(question, source, context)).strip())
        elif sys.stdout.isatty():
            from rich.console import Console

            from tantra_cli.repl import ReplyPrinter

            printer = ReplyPrinter(Console(highlight=False))
            printer.finish(printer.stream(session.ask(question, source, context)))
        else:
            for piece in session.ask(question, source, context):
                sys.stdout.write(piece)
                sys.stdout.flush()
            print()


def _system(system: str | None, voice: bool = False) -> str | None:
    """The system prompt: the user's (``-s ""`` or ``-s none``: the chat template's own), else Tantra's default, in
    which the facts a turn is given are used (``core.language.grounding``)."""
    from core.language.grounding import DEFAULT_SYSTEM, VOICE_SYSTEM

    if system is None:
        return VOICE_SYSTEM if voice else DEFAULT_SYSTEM
    return None if system.strip().lower() in ("", "none") else system


def _local_model(loader, no_spiking: bool, model: str | None):
    """What answers when the language model server fails mid-session: the local chain, loaded then (once)."""
    return lambda: loader.load_spikingbrain(spiking=not no_spiking, model=model, remote=False)


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown. The voice loop has run Whisper (CTranslate2), the voice
    and the detector (onnxruntime) and torch on threads of their own, and the C++ teardown of their thread pools
    after Python's sometimes aborts ("terminate called without an active exception", exit -6 instead of 0 or 130)
    when all the work is done: everything is written and flushed first, so nothing is lost by skipping it."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@dataclass(frozen=True)
class Record:
    """What the chat keeps: ``log`` its exchanges, ``memory`` recalls earlier ones; ``earlier``: the turns of a
    logged conversation it continues."""

    log: bool
    memory: bool
    earlier: list

    def journal(self, settings, loader):
        from core.memory.journal import open_journal

        return open_journal(settings, loader.load_embedder, log=self.log, memory=self.memory)


def _earlier_turns(settings, resume: bool, cid: str | None) -> list:
    """The exchanges of the conversation that ``-c`` (the latest) or ``--cid`` asks to continue; [] for neither."""
    if not resume and cid is None:
        return []
    from core.memory.chat_log import ChatLog
    from core.memory.log_db import database_path, open_database

    log = ChatLog(open_database(database_path(settings)))
    conversation = log.find_conversation(cid) if cid is not None else log.latest_conversation()
    if conversation is None:
        raise BadInput("the log holds no conversation to continue yet")
    return log.exchanges(conversation)


def _say_continued(earlier: list) -> None:
    if earlier:
        turns = len(earlier)
        print(f"tantra: continuing conversation {earlier[0].conversation_id} ({turns} turn{'s' * (turns != 1)})",
              file=sys.stderr)  # fmt: skip


def _voice_request(barge_in, ptt, input_device, output_device, mic_file, speaker_file, rate, wake):
    from core.talk.events import VoiceOptions
    from core.talk.start import VoiceRequest
    from core.talk.wake_word import check_wake_word

    VoiceOptions(barge_in=barge_in)  # a bad --barge-in or wake word is refused before anything loads
    wake = check_wake_word(wake) if wake else None
    return VoiceRequest(barge_in, ptt, input_device, output_device, mic_file, speaker_file, rate, wake)


def _list_wake_words() -> None:
    from core.talk.wake_word import WAKE_WORDS

    for name, spoken in WAKE_WORDS.items():
        print(f"{name}\t{spoken}")


def _existing(image: str) -> Path:
    path = Path(image).expanduser()
    if not path.is_file():
        raise BadInput(f"{image}: no such image file")
    return path


def _voice_chat(settings, request, model, system, no_spiking, interactive, as_json, images, options, record) -> int:
    """A spoken conversation: ``interactive`` (``--voice`` at a terminal), the REPL with the microphone on (typed
    turns too); otherwise (``--mic-file`` alone, a pipe, ``--json``) spoken turns until the stand-in microphone's
    file is over (exit code 0), or Ctrl-C."""
    from config.model_config import MODEL_CONFIG
    from core.language.chat_images import image_record
    from core.language.chat_session import ChatSession
    from core.model_loader import ModelLoader
    from core.talk.start import load_roles, open_link, voice_options
    from core.talk.vad import SileroVad
    from core.talk.voice_loop import VoiceLoop
    from core.vision.describer import ImageDescriber
    from tantra_cli.voice import run_headless

    paths = [_existing(image) for image in images]  # a missing image is refused before anything loads
    loader = ModelLoader(MODEL_CONFIG, settings)
    describer = ImageDescriber(loader)

    def new_session() -> ChatSession:
        loaded = loader.load_spikingbrain(spiking=not no_spiking, model=model)
        session = ChatSession.of(loaded, options, _system(system, voice=True), describer=describer,
                                 journal=record.journal(settings, loader),
                                 fallback=_local_model(loader, no_spiking, model))  # fmt: skip
        session.continue_from(record.earlier)
        return session

    if interactive:
        _say_continued(record.earlier)
        from tantra_cli.repl import run_repl

        session = new_session()
        run_repl(session, settings.home / "chat_history", loader=loader, request=request, voice=True, images=paths)
        return 0
    if request.push_to_talk:
        raise BadInput("--ptt needs a terminal: Enter on an empty line starts and stops a turn")
    link = open_link(request)
    loop = VoiceLoop(link, SileroVad(), voice_options(request))
    for path in paths:
        loop.attach_image(path, image_record(describer, path))
    return run_headless(loop, lambda: load_roles(loader, new_session, request), as_json)
