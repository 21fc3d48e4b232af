"""``tantra logs``: the conversations kept in ``tantra.db``: list, show, search, and logging on or off."""

from __future__ import annotations

import json
import sys

import typer

from config.errors import BadInput
from tantra_cli.common import settings_of, user_errors

app = typer.Typer(help="Conversations kept in the log: list, show, search.", invoke_without_command=True,
                  no_args_is_help=False)  # fmt: skip


def _open_log(settings):
    from core.memory.chat_log import ChatLog
    from core.memory.log_db import database_path, open_database

    return ChatLog(open_database(database_path(settings)))


@app.callback()
def logs(
    ctx: typer.Context,
    count: int = typer.Option(None, "--count", "-n", min=0, help="How many (default 10 conversations; 0 for all)."),
    cid: str = typer.Option(None, "--cid", help="Show this conversation (an id, or the start of one)."),
    current: bool = typer.Option(False, "--current", "-c", help="Show the latest conversation."),
    query: str = typer.Option(None, "--query", "-q", help="Search every turn for these words (best first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """The latest conversations; -c or --cid to show one, -q to search."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    with user_errors(settings):
        log = _open_log(settings)
        conversation = None
        if cid is not None:
            conversation = log.find_conversation(cid)
        elif current:
            conversation = log.latest_conversation()
            if conversation is None:
                raise BadInput("the log holds no conversation yet")
        if query is not None:
            hits = log.search(query, 10 if count is None else count, conversation)
            _print(as_json, [hit.as_json() for hit in hits], lambda: _show_exchanges(hits, search=True))
        elif conversation is not None:
            exchanges = log.exchanges(conversation, count or 0)
            _print(as_json, [e.as_json() for e in exchanges], lambda: _show_exchanges(exchanges))
        else:
            summaries = log.conversations(10 if count is None else count)
            _print(as_json, [s.as_json() for s in summaries], lambda: _show_conversations(summaries))


def _print(as_json: bool, documents: list[dict], show) -> None:
    if as_json:
        print(json.dumps(documents, indent=2, ensure_ascii=False))
    else:
        show()


def _show_conversations(summaries) -> None:
    from core.memory.chat_log import one_line, to_the_minute

    if not summaries:
        print("no conversations logged yet", file=sys.stderr)
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("id", "last turn", "turns", "model", "began with"):
            table.add_column(column, no_wrap=column != "began with", overflow="ellipsis")
        for s in summaries:
            table.add_row(s.id, to_the_minute(s.last_at), str(s.turns), s.model or "", one_line(s.first_prompt, 200))
        Console(highlight=False).print(table)
        return
    for s in summaries:
        print(f"{s.id}  {to_the_minute(s.last_at)}  {s.turns:>3} turn{'s' if s.turns != 1 else ' '}  {s.model or '-'}  "
              f"{one_line(s.first_prompt, 60)}")  # fmt: skip


def _show_exchanges(exchanges, search: bool = False) -> None:
    """Markdown: rendered at a terminal, as it is in a pipe."""
    from core.memory.chat_log import to_the_minute

    if not exchanges:
        print("nothing found" if search else "no turns", file=sys.stderr)
        return
    parts = []
    for e in exchanges:
        facts = [e.source, e.model + ("" if e.spiking else ", spiking off")]
        if e.interrupted:
            facts.append("interrupted")
        heading = f"## {to_the_minute(e.datetime_utc)} #{e.id}" + (f" in {e.conversation_id}" if search else "")
        lines = [f"{heading} ({', '.join(facts)})", ""]
        lines += [f"> {line}" if line else ">" for line in e.user_content().splitlines()]
        lines += ["", e.error and f"*not answered: {e.error}*" or e.reply or "*(no reply)*", ""]
        parts.append("\n".join(lines))
    text = "\n".join(parts)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console(highlight=False).print(Markdown(text))
    else:
        print(text.rstrip())


@app.command()
def path(ctx: typer.Context) -> None:
    """Print where the log is kept."""
    from core.memory.log_db import database_path

    print(database_path(settings_of(ctx)))


@app.command()
def status(ctx: typer.Context) -> None:
    """Whether chats are logged, and what the log holds."""
    from core.memory.log_db import database_path, logging_on

    settings = settings_of(ctx)
    with user_errors(settings):
        print(f"logging is {'on' if logging_on(settings) else 'off'} for every chat")
        where = database_path(settings)
        if not where.exists():
            print(f"no log yet ({where})")
            return
        db = _open_log(settings).db
        conversations, exchanges = (db.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("conversations", "exchanges"))
        episodes = db.query("SELECT count(*) FROM episodes")[0][0]
        files = [where.with_name(where.name + suffix) for suffix in ("", "-wal", "-shm")]
        size = sum(file.stat().st_size for file in files if file.exists())
        print(f"{conversations} conversations, {exchanges} exchanges, {episodes} episodes in memory")
        print(f"{where}: {size / 1024:.0f} KiB")


def _switch(ctx: typer.Context, on: bool) -> None:
    from core.memory.log_db import LOGS_OFF

    settings = settings_of(ctx)
    with user_errors(settings):
        marker = settings.data_dir / LOGS_OFF
        try:
            if on:
                marker.unlink(missing_ok=True)
            else:
                settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                marker.touch()
        except OSError as error:
            raise BadInput(f"cannot change {marker}: {error.strerror}") from None
        print(f"logging is {'on' if on else 'off'} for every chat" + ("" if on else " (--no-log does it for one)"))


@app.command()
def on(ctx: typer.Context) -> None:
    """Log every chat (the default)."""
    _switch(ctx, True)


@app.command()
def off(ctx: typer.Context) -> None:
    """Log no chat until `tantra logs on`."""
    _switch(ctx, False)
