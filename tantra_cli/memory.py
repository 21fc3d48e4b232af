"""``tantra memory``: what is recalled into new conversations (the facts the user told, by episode): list, search,
forget, clear."""

from __future__ import annotations

import json
import sys

import typer

from config.errors import BadInput
from tantra_cli.common import settings_of, user_errors

app = typer.Typer(help="The episodic memory: what you told in earlier conversations, recalled into new ones.",
                  no_args_is_help=True)  # fmt: skip


def _memory(settings, embedder: bool = False):
    from core.memory.episodes import EpisodicMemory
    from core.memory.log_db import database_path, open_database

    def load():
        from config.model_config import MODEL_CONFIG
        from core.model_loader import ModelLoader

        return ModelLoader(MODEL_CONFIG, settings).load_embedder()

    return EpisodicMemory(open_database(database_path(settings)), load if embedder else lambda: None,
                          max(settings.memory_size, 1))  # fmt: skip


def _line(exchange, facts: tuple[str, ...], score: float | None = None) -> str:
    """One episode: its number, when it was told, and the facts kept of it (the user's words, not the reply)."""
    from core.memory.chat_log import one_line, to_the_minute

    scored = f"  {score:.2f}" if score is not None else ""
    return f"#{exchange.id:<6}{scored}  {to_the_minute(exchange.datetime_utc)}  {one_line(' | '.join(facts), 100)}"


@app.command(name="list")
def list_episodes(
    ctx: typer.Context,
    count: int = typer.Option(20, "--count", "-n", min=0, help="How many, the latest first (0 for all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """The facts kept, by episode, the latest first (a question or a request keeps none)."""
    settings = settings_of(ctx)
    with user_errors(settings):
        memory = _memory(settings)
        episodes = memory.episodes(count)
        if as_json:
            print(json.dumps([e.as_json() for e in episodes], indent=2, ensure_ascii=False))
            return
        for episode in episodes:
            print(_line(episode.exchange, episode.facts))
        print(f"{memory.count()} episodes kept ({memory.count_facts()} facts), {settings.memory_size} at most",
              file=sys.stderr)  # fmt: skip


@app.command()
def search(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="What to recall: the episodes most like it, best first."),
    count: int = typer.Option(5, "--count", "-n", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Recall as a chat would (from every conversation): the facts that match, with each episode's score."""
    settings = settings_of(ctx)
    with user_errors(settings):
        if not text.strip():
            raise BadInput("give something to recall")
        found = _memory(settings, embedder=True).recall(text, limit=count, mark=False)
        if as_json:
            print(json.dumps([r.as_json() for r in found], indent=2, ensure_ascii=False))
            return
        for recollection in found:
            print(_line(recollection.exchange, recollection.facts, recollection.score))
        if not found:
            print("nothing recalled", file=sys.stderr)


@app.command()
def forget(ctx: typer.Context, episode: int = typer.Argument(..., help="The episode's number (#ID in the list).")):
    """Forget one episode: it is not recalled again (the log keeps the exchange)."""
    settings = settings_of(ctx)
    with user_errors(settings):
        if not _memory(settings).forget(episode):
            raise BadInput(f"no episode #{episode} in memory; `tantra memory list` shows them")
        print(f"forgot episode #{episode}")


@app.command()
def clear(ctx: typer.Context, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask first.")) -> None:
    """Forget every episode (the log keeps the conversations)."""
    settings = settings_of(ctx)
    with user_errors(settings):
        memory = _memory(settings)
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput("clearing the memory cannot be undone: add --yes")
            typer.confirm(f"Forget all {memory.count()} episodes?", abort=True)
        print(f"forgot {memory.clear()} episodes")
