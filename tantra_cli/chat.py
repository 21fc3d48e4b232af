"""``tantra chat [PROMPT]``: talk with SpikingBrain. A REPL at a terminal; one answer for a prompt or piped text."""

from __future__ import annotations

import json
import sys

import typer

from core.errors import BadInput, TantraError
from tantra_cli.common import read_stdin_text, settings_of, user_errors


def chat(
    ctx: typer.Context,
    prompt: str = typer.Argument(None, help="The question; piped stdin becomes context for it (as `llm` does)."),
    model: str = typer.Option(
        None, "--model", "-m", help="A language model of `tantra models`, or a directory from `tantra models convert`."
    ),
    system: str = typer.Option(None, "--system", "-s", help="System prompt."),
    temperature: float = typer.Option(0.7, "--temperature", "-t", min=0.0, help="0 answers deterministically."),
    top_k: int = typer.Option(50, "--top-k", min=0),
    top_p: float = typer.Option(0.9, "--top-p", min=0.0, max=1.0),
    repetition_penalty: float = typer.Option(1.1, "--repetition-penalty", min=1.0),
    max_tokens: int = typer.Option(256, "--max-tokens", "-n", min=1, help="Longest reply, in tokens."),
    seed: int = typer.Option(None, "--seed", help="Make sampling repeatable."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print the reply when it is complete."),
    no_spiking: bool = typer.Option(False, "--no-spiking", help="Run the same weights without spike coding."),
    as_json: bool = typer.Option(False, "--json", help="Print the reply with token counts and timings as JSON."),
) -> None:
    """Chat in a REPL at a terminal; with a prompt or piped text, answer once and exit."""
    settings = settings_of(ctx)
    with user_errors(settings):
        interactive = sys.stdin is None or sys.stdin.isatty()  # None: started with stdin closed
        piped = "" if interactive else read_stdin_text("tantra chat")
        repl = prompt is None and sys.stdin is not None and sys.stdin.isatty()
        if not repl:
            if prompt is None and not piped.strip():
                if interactive:
                    raise TantraError('give a question: tantra chat "..." or echo question | tantra chat')
                raise BadInput("stdin is empty: pipe a question in, or give one as an argument")
            question = f"{piped.strip()}\n\n{prompt}" if piped.strip() and prompt else (prompt or piped).strip()
            if not question:
                raise BadInput("the prompt is empty")

        from config.model_config import MODEL_CONFIG
        from core.chat_session import ChatSession
        from core.language_model import SamplingOptions
        from core.model_loader import ModelLoader

        options = SamplingOptions(temperature, top_k, top_p, repetition_penalty, max_tokens, seed=seed)
        loader = ModelLoader(MODEL_CONFIG, settings)
        if sys.stderr.isatty():
            from rich.console import Console

            with Console(stderr=True).status("loading the language model"):
                loaded = loader.load_spikingbrain(spiking=not no_spiking, model=model)
        else:
            loaded = loader.load_spikingbrain(spiking=not no_spiking, model=model)
        from core.describer import ImageDescriber

        describer = ImageDescriber(loader)  # its models load at the first image
        session = ChatSession(loaded["model"], loaded["tokenizer"], options, system, loaded["name"], describer)
        if repl:
            from tantra_cli.repl import run_repl

            run_repl(session, settings.home / "chat_history", stream=not no_stream)
            return
        if as_json:
            reply = "".join(session.ask(question)).strip()
            last = session.last
            print(json.dumps({
                "reply": reply, "model": session.model_name, "spiking": session.model.config.spiking,
                "prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens,
                "seconds": round(last.seconds, 3), "first_token_seconds": round(last.first_token_seconds, 3),
                "tokens_per_second": last.tokens_per_second,
            }, ensure_ascii=False))  # fmt: skip
        elif no_stream:
            print("".join(session.ask(question)).strip())
        elif sys.stdout.isatty():
            from rich.console import Console

            from tantra_cli.repl import ReplyPrinter

            printer = ReplyPrinter(Console(highlight=False))
            printer.finish(printer.stream(session.ask(question)))
        else:
            for piece in session.ask(question):
                sys.stdout.write(piece)
                sys.stdout.flush()
            print()
