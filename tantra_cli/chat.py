"""``tantra chat [PROMPT]``: ask SpikingBrain. One answer on stdout for a prompt or piped text."""

from __future__ import annotations

import json
import sys
import time

import typer

from core.errors import BadInput, TantraError
from tantra_cli.common import settings_of, user_errors


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    if b"\0" in data:
        raise BadInput("stdin holds binary data, not text; pipe text into tantra chat")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInput(
            f"stdin is not valid UTF-8 text (byte {error.start}); convert it first, e.g. with iconv"
        ) from None


def chat(
    ctx: typer.Context,
    prompt: str = typer.Argument(None, help="The question; piped stdin becomes context for it (as `llm` does)."),
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
    """Answer one question from the argument, stdin, or both, and exit."""
    settings = settings_of(ctx)
    with user_errors(settings):
        interactive = sys.stdin is None or sys.stdin.isatty()  # None: started with stdin closed
        piped = "" if interactive else _read_stdin()
        if prompt is None and not piped.strip():
            if interactive:
                raise TantraError('give a question: tantra chat "..." or echo question | tantra chat')
            raise BadInput("stdin is empty: pipe a question in, or give one as an argument")
        question = f"{piped.strip()}\n\n{prompt}" if piped.strip() and prompt else (prompt or piped).strip()
        if not question:
            raise BadInput("the prompt is empty")

        from config.model_config import MODEL_CONFIG
        from core.language_model import Conversation, SamplingOptions, stream_text
        from core.model_loader import ModelLoader

        options = SamplingOptions(temperature, top_k, top_p, repetition_penalty, max_tokens, seed=seed)
        loaded = ModelLoader(MODEL_CONFIG, settings).load_spikingbrain(spiking=not no_spiking)
        model, tokenizer = loaded["model"], loaded["tokenizer"]
        conversation = Conversation(system, [{"role": "user", "content": question}])
        prompt_ids = conversation.prompt_ids(tokenizer, model.config.block_size, max_tokens)
        start = time.perf_counter()
        pieces = []
        for piece in stream_text(model, tokenizer, prompt_ids, options):
            pieces.append(piece)
            if not (no_stream or as_json):
                sys.stdout.write(piece)
                sys.stdout.flush()
        seconds = time.perf_counter() - start
        reply = "".join(pieces).strip()
        if as_json:
            completion = len(tokenizer.encode(reply))
            print(json.dumps({
                "reply": reply, "prompt_tokens": len(prompt_ids), "completion_tokens": completion,
                "seconds": round(seconds, 3), "tokens_per_second": round(completion / seconds, 2) if seconds else None,
                "spiking": not no_spiking,
            }, ensure_ascii=False))  # fmt: skip
        elif no_stream:
            print(reply)
        else:
            print()
