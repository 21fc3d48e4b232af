"""The slash commands of a chat (``/set``, ``/save``, ``/image``, ``/memory``, ``/stats``, ...) and their help table.

``ChatSession.command`` (``core.language.chat_session``) hands each ``/command`` line to ``run``, which works on that
session: its conversation, settings, journal and the statistics of its last reply. Commands return the text to show,
so every one of them can be tested without a terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from config.errors import BadInput
from core.language.chat_images import IMAGE_EXTENSIONS
from core.language.conversation import Conversation, SamplingOptions
from core.memory.chat_log import one_line, to_the_minute
from core.memory.episodes import Recollection


@dataclass(frozen=True)
class Ask:
    """What a command gives back when it also asks something now (``/image PATH QUESTION``): the front end shows
    ``note`` and sends ``text`` as if it had been typed, so the reply streams, or is spoken, as any other."""

    text: str
    note: str = ""


def _parse_setting(name: str, raw: str):
    """A ``/set`` value as its SamplingOptions field wants it, or BadInput that says what is allowed."""
    limits = {
        "temperature": (float, 0.0, None), "top_k": (int, 0, None), "top_p": (float, 0.0, 1.0),
        "repetition_penalty": (float, 1.0, None), "max_tokens": (int, 1, None), "seed": (int, None, None),
    }  # fmt: skip
    if name == "stop":
        return () if raw.lower() == "none" else tuple(part for part in raw.split("|") if part)
    if name == "seed" and raw.lower() == "none":
        return None
    kind, low, high = limits[name]
    try:
        value = kind(raw)
    except ValueError:
        raise BadInput(f"{name} takes {'a whole number' if kind is int else 'a number'}, not {raw!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadInput(f"{name} must be {bounds}")
    return value


SETTINGS = tuple(f.name for f in fields(SamplingOptions))


def memory_note(recollection: Recollection) -> str:
    """A recalled episode as ``/memory`` shows it: the user's own statements, never the model's reply."""
    facts = " ".join(recollection.facts) or one_line(recollection.exchange.prompt, 200)
    return f"[Memory of {recollection.exchange.datetime_utc[:10]}: the user said \"{facts}\"]"


def run(session, line: str) -> str | Ask:
    """Run one ``/command`` on ``session`` (a ``ChatSession``); returns what to show, or an ``Ask``: text to send
    now, as if typed. Unknown commands and bad arguments raise BadInput."""
    name, _, argument = line.strip().partition(" ")
    handler: Callable[..., str | Ask] | None = _HANDLERS.get(name[1:]) if name.startswith("/") else None
    if handler is None:
        raise BadInput(f"unknown command {name}; /help lists them")
    return handler(session, argument.strip())


def _help(session, _: str) -> str:
    return "\n".join(f"{usage:<22} {what}" for usage, what in COMMANDS)


def _clear(session, _: str) -> str:
    session.clear()
    return "conversation cleared (the system prompt stays); a new one begins in the log"


def _system(session, argument: str) -> str:
    if not argument:
        return f"system prompt: {session.conversation.system!r}" if session.conversation.system else "no system prompt"
    session.conversation.system = None if argument.lower() == "none" else argument
    return "system prompt cleared" if session.conversation.system is None else "system prompt set"


def _set(session, argument: str) -> str:
    if not argument:
        return "\n".join(f"{name} = {getattr(session.options, name)!r}" for name in SETTINGS)
    name, _, raw = argument.partition(" ")
    name = name.replace("-", "_")
    if name not in SETTINGS:
        raise BadInput(f"no setting {name!r}; choose one of {', '.join(SETTINGS)}")
    if not raw.strip():
        raise BadInput(f"give a value: /set {name} VALUE")
    session.options = replace(session.options, **{name: _parse_setting(name, raw.strip())})
    return f"{name} = {getattr(session.options, name)!r}"


def _save(session, argument: str) -> str:
    if not argument:
        raise BadInput("give a file: /save FILE")
    path = Path(argument).expanduser()
    document = {"system": session.conversation.system, "messages": session.conversation.messages,
                "options": asdict(session.options)}  # fmt: skip
    try:
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as error:
        raise BadInput(f"cannot write {path}: {error.strerror}") from None
    return f"saved {len(session.conversation.messages)} messages to {path}"


def _load(session, argument: str) -> str:
    if not argument:
        raise BadInput("give a file: /load FILE")
    path = Path(argument).expanduser()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        messages = document["messages"]
        if not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(
            m.get("content"), str) for m in messages):  # fmt: skip
            raise ValueError("messages must be user/assistant turns")
        options = replace(session.options, **{k: v for k, v in document.get("options", {}).items() if k in SETTINGS})
        if isinstance(options.stop, list):
            options = replace(options, stop=tuple(options.stop))
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadInput(f"{path} is not a conversation saved by /save ({error})") from None
    session.conversation = Conversation(document.get("system") or None, list(messages))
    session.options = options
    session.journal.new_conversation()
    return f"loaded {len(messages)} messages from {path}"


def _image(session, argument: str) -> str | Ask:
    """``/image PATH``: the image goes with the next message. ``/image PATH QUESTION``: with this question, asked
    now (an ``Ask``). A path with spaces is quoted, or is the longest start of the argument that names a file."""
    if not argument:
        raise BadInput("give an image: /image PATH [QUESTION]")
    quoted = re.match(r"""(["'])(.+?)\1(?=\s|$)""", argument)
    if quoted:
        starts = [(Path(quoted[2]).expanduser(), argument[quoted.end() :])]
    else:  # each start of the argument that ends before a space, and what follows it
        cuts = [(m.start(), m.end()) for m in re.finditer(r"\s+", argument)] + [(len(argument), len(argument))]
        starts = [(Path(argument[:start].strip("\"'")).expanduser(), argument[end:]) for start, end in cuts]
    found = next(((path, rest.strip()) for path, rest in reversed(starts) if path.is_file()), None)
    if found is None:  # name what was meant: the start that ends like an image ("my photo.jpg"), else a word
        named = [path for path, _ in starts if re.search(rf"{IMAGE_EXTENSIONS}$", path.name, re.IGNORECASE)]
        raise BadInput(f"{(named or [starts[0][0]])[0]}: no such file")
    path, question = found
    image = session.image_record(path)
    session.attach(image)
    if question:
        return Ask(question, image.facts)
    return f"{image.facts} goes with your next message"


def _model(session, _: str) -> str:
    return session.model.describe()


def _stats(session, _: str) -> str:
    if session.last is None:
        return "no reply yet"
    last = session.last
    speed = f"{last.tokens_per_second} tokens/s" if last.tokens_per_second else "-"
    lines = [f"last reply: {last.completion_tokens} tokens in {last.seconds:.2f} s, decoding at {speed}; "
             f"prompt {last.prompt_tokens} tokens read in {last.first_token_seconds:.2f} s"
             + (" (stopped early)" if last.interrupted else "")]  # fmt: skip
    return "\n".join(lines + session.model.stats(session.last_counts))


def _memory(session, _: str) -> str:
    if session.journal.memory is None:
        return "memory is off in this chat"
    if not session.journal.recalled:
        return "nothing was recalled for the last message"
    lines = ["recalled for the last message (/forget ID to drop one):"]
    for r in session.journal.recalled:
        lines.append(f"  #{r.exchange.id} {to_the_minute(r.exchange.datetime_utc)} score {r.score:.2f}: "
                     + memory_note(r))  # fmt: skip
    return "\n".join(lines)


def _forget(session, argument: str) -> str:
    memory = session.journal.memory
    if memory is None:
        raise BadInput("memory is off in this chat")
    if argument:
        if not argument.lstrip("#").isdigit():
            raise BadInput(f"/forget takes an episode number (see /memory), not {argument!r}")
        episode = int(argument.lstrip("#"))
    elif session.journal.last_exchange is not None:
        episode = session.journal.last_exchange
    else:
        raise BadInput("nothing said yet to forget; /forget ID forgets an episode that /memory shows")
    if not memory.forget(episode):
        raise BadInput(f"no episode #{episode} in memory")
    session.journal.recalled = [r for r in session.journal.recalled if r.exchange.id != episode]
    return f"forgot episode #{episode}: it will not be recalled again (the log keeps it)"


def _voice(session, _: str) -> str:
    raise BadInput("/voice works in the interactive chat: run tantra chat at a terminal")


def _quit(session, _: str) -> str:
    raise EOFError


_HANDLERS: dict[str, Callable[..., str | Ask]] = {
    "help": _help, "clear": _clear, "system": _system, "set": _set, "save": _save, "load": _load, "image": _image,
    "model": _model, "stats": _stats, "memory": _memory, "forget": _forget, "voice": _voice,
    "quit": _quit, "exit": _quit,
}  # fmt: skip

COMMANDS: tuple[tuple[str, str], ...] = (
    ("/help", "this list"),
    ("/clear", "forget the conversation"),
    ("/system [TEXT|none]", "show, set or clear the system prompt"),
    ("/set [NAME VALUE]", "show or change a sampling setting: " + ", ".join(SETTINGS)),
    ("/image PATH [QUESTION]", "show the model an image: asked about now, or with your next message "
                               "(paths in messages work too)"),
    ("/voice on|off", "talk: the microphone hears you and the replies are spoken"),
    ("/memory", "what was recalled from other conversations for the last message"),
    ("/forget [ID]", "forget an episode: the last exchange, or one that /memory shows"),
    ("/save FILE", "write the conversation and settings as JSON"),
    ("/load FILE", "continue a conversation saved with /save"),
    ("/model", "which model answers, and how"),
    ("/stats", "tokens, speed and spike sparsity of the last reply"),
    ("/quit", "leave (Ctrl-D too)"),
)
