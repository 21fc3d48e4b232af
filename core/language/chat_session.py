"""A chat with SpikingBrain, independent of any terminal: turns, sampling settings, slash commands, statistics.

The REPL (``tantra_cli/repl.py``) draws it; one-shot ``tantra chat`` uses ``ask`` alone. Commands return the text
to show, so every one of them can be tested without a terminal.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from config.errors import BadInput, TantraError
from core.language.conversation import Conversation, PromptCache, SamplingOptions
from core.language.grounding import LAYOUT, Grounds, told_before, turn_messages
from core.language.remote_lm import RemoteChatModel, TokenCounts
from core.language.reply_filter import without_stage_directions
from core.memory.chat_log import ExchangeStart, ImageRecord, one_line, to_the_minute
from core.memory.episodes import Recollection
from core.memory.journal import Journal
from core.runtime.status import say


@dataclass(frozen=True)
class ReplyStats:
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    first_token_seconds: float
    """Until the first token: reading the prompt, which grows with the conversation."""
    interrupted: bool

    @property
    def tokens_per_second(self) -> float | None:
        """Decoding speed: the tokens after the first over the time after the first."""
        decoding = self.seconds - self.first_token_seconds
        if self.completion_tokens < 2 or decoding <= 0:
            return None
        return round((self.completion_tokens - 1) / decoding, 2)


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


# An image path in a message, as `ollama run` picks them up: quoted, or a word ending in an image extension.
_IMAGE_EXTENSIONS = r"\.(?:png|jpe?g|gif|webp|bmp|tiff?)"
_IMAGE_PATH = re.compile(
    rf"""["']([^"']+{_IMAGE_EXTENSIONS})["']|(?<!\S)(\S+?{_IMAGE_EXTENSIONS})(?=[\s,;:!?)]|\.?$|\.\s)""", re.IGNORECASE
)


def image_paths_in(text: str) -> list[Path]:
    """The paths of existing image files that ``text`` mentions, in order, each once."""
    found: list[Path] = []
    for match in _IMAGE_PATH.finditer(text):
        path = Path(match.group(1) or match.group(2)).expanduser()
        if path.is_file() and path not in found:
            found.append(path)
    return found


def image_record(describer, path: Path) -> ImageRecord:
    """The image as a chat keeps it: its path and sha256 for the log, and ``[Image NAME: what it shows]``, the line
    the model reads in its place."""
    from core.runtime.files import sha256_of

    facts = describer.note(path)  # first: it says clearly what is wrong with a missing or broken file
    return ImageRecord(str(Path(path).resolve()), sha256_of(Path(path)), facts)


def memory_note(recollection: Recollection) -> str:
    """A recalled episode as ``/memory`` shows it: the user's own statements, never the model's reply."""
    facts = " ".join(recollection.facts) or one_line(recollection.exchange.prompt, 200)
    return f"[Memory of {recollection.exchange.datetime_utc[:10]}: the user said \"{facts}\"]"


class ChatSession:
    def __init__(self, model, tokenizer, options: SamplingOptions, system: str | None = None,
                 model_name: str = "SpikingBrain", describer=None, journal: Journal | None = None,
                 fallback: Callable[[], dict] | None = None, warn: Callable[[str], None] = say,
                 layout: str = LAYOUT) -> None:  # fmt: skip
        """``describer`` (a ``core.vision.describer.ImageDescriber``) lets messages carry images: the model reads what
        the image shows as text (labels and any text in it), since SpikingBrain itself sees no pixels.
        ``journal`` logs every exchange and recalls episodes of other conversations (none: nothing is kept).

        ``model`` is SpikingBrain with its ``tokenizer``, or an ``core.language.remote_lm.RemoteChatModel`` (tokenizer
        None): a server's model. ``fallback`` gives the local model (``load_spikingbrain``'s dict) that answers
        when the server fails before its first word, for that turn and the rest of the session; ``warn`` says so.
        ``layout``: where a turn's facts go in the prompt (``core.language.grounding``; other layouts are for benchmarks)."""
        self.model, self.tokenizer, self.options, self.model_name = model, tokenizer, options, model_name
        self.layout = layout
        self.fallback, self.warn = fallback, warn
        self.conversation = Conversation(system or None)
        self.last: ReplyStats | None = None
        self._last_ids: list[int] = []  # prompt + reply of the last turn, for /stats
        self._last_counted = True  # the last reply's counts are the model's own (a server may report none)
        self.describer = describer
        self.journal = journal or Journal()
        self.pending_images: list[ImageRecord] = []  # from /image, for the next message
        self.prompt_cache = PromptCache()  # each reply runs only the prompt tokens the last one did not
        self.on_image: Callable[[str], None] | None = None  # told what each image in a message shows (the REPL says it)

    @property
    def remote(self) -> bool:
        """Whether a server runs the model (``core.language.remote_lm``): no tokenizer, no spikes, no context here."""
        return isinstance(self.model, RemoteChatModel)

    @property
    def spiking(self) -> bool:
        """Whether the model answers with spike coding (a server's model: as the server says, else not)."""
        return bool(self.model.spiking if self.remote else self.model.config.spiking)

    def use_local(self) -> None:
        """From now on the local model answers (``fallback``'s): the server failed."""
        loaded = self.fallback()
        self.model, self.tokenizer, self.model_name = loaded["model"], loaded["tokenizer"], loaded["name"]
        self.prompt_cache = PromptCache()

    def image_record(self, path: Path) -> ImageRecord:
        if self.describer is None:
            raise BadInput("images are not available in this chat")
        return image_record(self.describer, path)

    def continue_from(self, exchanges) -> None:
        """Take up a logged conversation (``core.memory.chat_log.Exchange``s, in order): its turns are the context again."""
        if exchanges:
            self.journal.conversation_id = exchanges[0].conversation_id
            self.conversation.system = self.conversation.system or exchanges[-1].system
        for exchange in exchanges:
            if exchange.error is None:
                images = Grounds(images=tuple(image.facts for image in exchange.images))
                self.conversation.messages += turn_messages(exchange.prompt, images, self.layout)
                self.conversation.messages.append({"role": "assistant", "content": exchange.reply})

    # ---- talking --------------------------------------------------------------------------------------------------

    def ask(self, text: str, source: str = "typed", context: str = "") -> Iterator[str]:
        """The reply to ``text``, streamed. Stopped early (Ctrl-C), what was said so far stays in the conversation.
        ``source`` (typed at the REPL, an argument, stdin or voice) is logged with it; ``context`` is piped text the
        question is about (logged before it, as the user gave both)."""
        text = text.strip()
        if not text:
            raise BadInput("the prompt is empty")
        context = context.strip()
        found = [self.image_record(path) for path in image_paths_in(text)]
        if self.on_image is not None:
            for image in found:
                self.on_image(image.facts)
        images, self.pending_images = self.pending_images + found, []
        recalled = self.journal.recall(text)
        if self.remote:
            reply = self._ask_remote(text, context, source, images, recalled)
            if reply is not None:
                yield from reply
                return
        prompt_ids, recalled = self._prompt(text, context, images, recalled)
        start = self._start(text, context, source, images, recalled)
        context = self.model.config.block_size
        if len(prompt_ids) >= context:
            problem = f"the prompt is {len(prompt_ids)} tokens; the model's context holds {context}: shorten it"
            self.journal.begin(start).finish("", prompt_tokens=len(prompt_ids), interrupted=False, error=problem)
            raise BadInput(problem)  # not kept in the conversation, but in the log
        generated: list[int] = []
        options = replace(self.options, stop=self.options.stop + self.tokenizer.stop_strings)
        from core.language.language_model import stream_text  # here: a chat with a server's model never needs torch

        pieces = stream_text(self.model, self.tokenizer, prompt_ids, options, generated, self.prompt_cache)

        def counted() -> tuple[int, int]:
            self._last_ids, self._last_counted = prompt_ids + generated, True
            return len(prompt_ids), len(generated)

        yield from self._stream(start, pieces, counted)

    def _start(self, text: str, context: str, source: str, images: list[ImageRecord],
               recalled: list[Recollection]) -> ExchangeStart:  # fmt: skip
        """What the log keeps of a turn: the prompt as the user gave it (piped text before the question)."""
        prompt = f"{context}\n\n{text}" if context else text
        return ExchangeStart(self.model_name, self.spiking, self.conversation.system, asdict(self.options), prompt,
                             source, tuple(images), tuple(r.exchange.id for r in recalled))  # fmt: skip

    def _stream(self, start: ExchangeStart, pieces: Iterator[str], counts: Callable[[], tuple[int, int]],
                started: float | None = None) -> Iterator[str]:  # fmt: skip
        """``pieces`` passed on, logged as they come; when they end (or the reader stops), the reply joins the
        conversation and the log, and ``last`` holds its statistics (``counts``: prompt and reply tokens).
        ``started``: when the request began, if before now (a server's first piece has come already)."""
        messages = self.conversation.messages
        entry = self.journal.begin(start)
        started = started or time.perf_counter()
        pieces = without_stage_directions(pieces)  # "*takes a sip of coffee*" is neither said nor kept
        said: list[str] = []
        first_token = 0.0
        interrupted = True
        try:
            for piece in pieces:
                first_token = first_token or time.perf_counter() - started
                said.append(piece)
                entry.progress(said)
                yield piece
            interrupted = False
        finally:
            reply = "".join(said).strip()
            messages.append({"role": "assistant", "content": reply})
            seconds = time.perf_counter() - started
            prompt_tokens, completion_tokens = counts()
            self.last = ReplyStats(prompt_tokens, completion_tokens, seconds, first_token or seconds, interrupted)
            entry.finish(reply, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                         seconds=round(seconds, 3), first_token_seconds=round(first_token or seconds, 3),
                         interrupted=interrupted)  # fmt: skip

    def _ask_remote(self, text: str, context: str, source: str, images: list[ImageRecord],
                    recalled: list[Recollection]) -> Iterator[str] | None:  # fmt: skip
        """The server's reply, once its first piece has come; None when the server failed before it (said in one
        line) and the local model now answers, this turn and the next ones. Without a ``fallback``, the failure
        is raised. The whole conversation goes to the server, which holds the context and the chat template."""
        messages = self.conversation.messages
        before = len(messages)
        messages += self._turn(text, context, images, recalled)
        head = [{"role": "system", "content": self.conversation.system}] if self.conversation.system else []
        counts = TokenCounts()
        started = time.perf_counter()
        pieces = self.model.stream(head + messages, self.options, counts)
        try:
            first = next(pieces, None)
        except BadInput:
            del messages[before:]  # refused (too long for its context, a bad setting): a local model is no better
            raise
        except TantraError as failure:
            del messages[before:]
            if self.fallback is None:
                raise
            self.warn(f"{failure}; the local language model answers instead")
            self.use_local()
            return None
        except BaseException:  # Ctrl-C while waiting for the first word: the turn never happened
            del messages[before:]
            raise

        def reply() -> Iterator[str]:
            try:
                if first is not None:
                    yield first
                yield from pieces
            finally:
                pieces.close()  # the reader stopped: so does the server

        self._last_ids, self._last_counted = [], counts.reported
        start = self._start(text, context, source, images, recalled)

        def counted() -> tuple[int, int]:
            self._last_counted = counts.reported
            return counts.prompt_tokens, counts.completion_tokens

        return self._stream(start, reply(), counted, started)

    def _turn(self, text: str, context: str, images: list[ImageRecord], recalled: list[Recollection]) -> list[dict]:
        """The messages of this turn, its facts placed as ``core.language.grounding`` lays them out."""
        grounds = Grounds(told_before(self.conversation.messages, text),
                          tuple(fact for r in recalled for fact in r.facts),
                          tuple(image.facts for image in images), context)  # fmt: skip
        return turn_messages(text, grounds, self.layout)

    def _prompt(self, text: str, context: str, images: list[ImageRecord], recalled: list[Recollection]):
        """The prompt's token ids with the user's turn added to the conversation, and the recollections it holds:
        they give way when the conversation would not fit with them. A prompt too long even so is taken back out of
        the conversation."""
        messages = self.conversation.messages
        context_size = self.model.config.block_size
        before = len(messages)
        for remembered in (recalled, []):
            messages += self._turn(text, context, images, remembered)
            prompt_ids = self.conversation.prompt_ids(self.tokenizer, context_size, self.options.max_tokens)
            if len(prompt_ids) < context_size:
                return prompt_ids, remembered
            del messages[before:]
            if not remembered:
                break
        return prompt_ids, []

    def keep_heard(self, heard: str) -> None:
        """The last reply was cut by the user speaking: it is remembered, and logged, as far as it was heard."""
        self.conversation.messages[-1]["content"] = heard
        self.journal.amend_last(heard)

    def turn_mark(self) -> tuple[int, int | None]:
        """Where the conversation stands now; ``retract`` goes back to it."""
        return len(self.conversation.messages), self.journal.last_exchange

    def retract(self, mark: tuple[int, int | None]) -> None:
        """What was asked since ``mark`` never happened (a spoken draft the user talked over): gone from the
        conversation, the log and memory."""
        messages_before, exchange_before = mark
        del self.conversation.messages[messages_before:]
        if self.journal.last_exchange != exchange_before:
            self.journal.retract_last()
        self.journal.last_exchange = exchange_before

    def warm_up(self) -> None:
        """Two tokens for a short prompt, outside the conversation: the first real reply then does not pay for
        the first run of every kernel (the voice loop calls it while the user is still speaking). A server's
        model is warm already: nothing to do."""
        if self.remote:
            return
        ids = self.tokenizer.encode(self.tokenizer.apply_chat_template([{"role": "user", "content": "Hello"}]))
        from core.language.language_model import stream_text

        for _ in stream_text(self.model, self.tokenizer, ids, replace(self.options, max_tokens=2, seed=0)):
            pass

    # ---- slash commands -------------------------------------------------------------------------------------------

    def command(self, line: str) -> str | Ask:
        """Run one ``/command``; returns what to show, or an ``Ask``: text to send now, as if typed. Unknown
        commands and bad arguments raise BadInput."""
        name, _, argument = line.strip().partition(" ")
        handler: Callable[[str], str | Ask] | None = (
            getattr(self, f"_cmd_{name[1:]}", None) if name.startswith("/") else None
        )
        if handler is None:
            raise BadInput(f"unknown command {name}; /help lists them")
        return handler(argument.strip())

    def _cmd_help(self, _: str) -> str:
        return "\n".join(f"{usage:<22} {what}" for usage, what in COMMANDS)

    def _cmd_clear(self, _: str) -> str:
        self.conversation.messages.clear()
        self.last, self._last_ids = None, []
        self.journal.new_conversation()
        return "conversation cleared (the system prompt stays); a new one begins in the log"

    def _cmd_system(self, argument: str) -> str:
        if not argument:
            return f"system prompt: {self.conversation.system!r}" if self.conversation.system else "no system prompt"
        self.conversation.system = None if argument.lower() == "none" else argument
        return "system prompt cleared" if self.conversation.system is None else "system prompt set"

    def _cmd_set(self, argument: str) -> str:
        if not argument:
            return "\n".join(f"{name} = {getattr(self.options, name)!r}" for name in SETTINGS)
        name, _, raw = argument.partition(" ")
        name = name.replace("-", "_")
        if name not in SETTINGS:
            raise BadInput(f"no setting {name!r}; choose one of {', '.join(SETTINGS)}")
        if not raw.strip():
            raise BadInput(f"give a value: /set {name} VALUE")
        self.options = replace(self.options, **{name: _parse_setting(name, raw.strip())})
        return f"{name} = {getattr(self.options, name)!r}"

    def _cmd_save(self, argument: str) -> str:
        if not argument:
            raise BadInput("give a file: /save FILE")
        path = Path(argument).expanduser()
        document = {"system": self.conversation.system, "messages": self.conversation.messages,
                    "options": asdict(self.options)}  # fmt: skip
        try:
            path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as error:
            raise BadInput(f"cannot write {path}: {error.strerror}") from None
        return f"saved {len(self.conversation.messages)} messages to {path}"

    def _cmd_load(self, argument: str) -> str:
        if not argument:
            raise BadInput("give a file: /load FILE")
        path = Path(argument).expanduser()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            messages = document["messages"]
            if not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(
                m.get("content"), str) for m in messages):  # fmt: skip
                raise ValueError("messages must be user/assistant turns")
            options = replace(self.options, **{k: v for k, v in document.get("options", {}).items() if k in SETTINGS})
            if isinstance(options.stop, list):
                options = replace(options, stop=tuple(options.stop))
        except OSError as error:
            raise BadInput(f"cannot read {path}: {error.strerror}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise BadInput(f"{path} is not a conversation saved by /save ({error})") from None
        self.conversation = Conversation(document.get("system") or None, list(messages))
        self.options = options
        self.journal.new_conversation()
        return f"loaded {len(messages)} messages from {path}"

    def _cmd_image(self, argument: str) -> str | Ask:
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
            named = [path for path, _ in starts if re.search(rf"{_IMAGE_EXTENSIONS}$", path.name, re.IGNORECASE)]
            raise BadInput(f"{(named or [starts[0][0]])[0]}: no such file")
        path, question = found
        image = self.image_record(path)
        self.pending_images.append(image)
        if question:
            return Ask(question, image.facts)
        return f"{image.facts} goes with your next message"

    def _cmd_model(self, _: str) -> str:
        if self.remote:
            return (f"{self.model_name}: served by the {self.model.label} (OpenAI-compatible API)\n"
                    "the server runs it: no spike coding here; top_k and repetition_penalty are not sent")  # fmt: skip
        config = self.model.config
        parameters = sum(t.numel() for name, t in self.model.state_dict().items() if not name.endswith("qscale"))
        device = next(iter(self.model.state_dict().values())).device
        if config.spiking:
            scales = f"one scale per {config.weight_group} inputs" if config.weight_group else "one scale per row"
            coding = f"spiking on (threshold mean|x|/{config.spike_k:g}), INT8 weights with {scales}"
        else:
            coding = "spiking off (full-precision reference)"
        shape = f"{config.family} family, {config.n_layer} layers, {config.n_embd} wide"
        size = f"{parameters / 1e6:.0f}M parameters, context {config.block_size} tokens, on {device}"
        return f"{self.model_name}: {shape}, {size}\n{coding}"

    def _cmd_stats(self, _: str) -> str:
        if self.last is None:
            return "no reply yet"
        last = self.last
        speed = f"{last.tokens_per_second} tokens/s" if last.tokens_per_second else "-"
        lines = [f"last reply: {last.completion_tokens} tokens in {last.seconds:.2f} s, decoding at {speed}; "
                 f"prompt {last.prompt_tokens} tokens read in {last.first_token_seconds:.2f} s"
                 + (" (stopped early)" if last.interrupted else "")]  # fmt: skip
        if self.remote:
            lines.append(f"from the {self.model.label}, network included"
                         + ("" if self._last_counted else "; it sent no token counts: these are estimates"))
        elif self.spiking and last.completion_tokens:
            import torch

            ids = torch.tensor([self._last_ids[: self.model.config.block_size]])
            stats = self.model.spike_stats(ids, last_tokens=last.completion_tokens)
            lines.append(f"spikes: {stats.silent_share:.0%} of activations silent, {stats.mean_spikes:.2f} spikes per "
                         f"activation, ternary-train sparsity {stats.ternary_sparsity:.1%}")  # fmt: skip
        return "\n".join(lines)

    def _cmd_memory(self, _: str) -> str:
        if self.journal.memory is None:
            return "memory is off in this chat"
        if not self.journal.recalled:
            return "nothing was recalled for the last message"
        lines = ["recalled for the last message (/forget ID to drop one):"]
        for r in self.journal.recalled:
            lines.append(f"  #{r.exchange.id} {to_the_minute(r.exchange.datetime_utc)} score {r.score:.2f}: "
                         + memory_note(r))  # fmt: skip
        return "\n".join(lines)

    def _cmd_forget(self, argument: str) -> str:
        memory = self.journal.memory
        if memory is None:
            raise BadInput("memory is off in this chat")
        if argument:
            if not argument.lstrip("#").isdigit():
                raise BadInput(f"/forget takes an episode number (see /memory), not {argument!r}")
            episode = int(argument.lstrip("#"))
        elif self.journal.last_exchange is not None:
            episode = self.journal.last_exchange
        else:
            raise BadInput("nothing said yet to forget; /forget ID forgets an episode that /memory shows")
        if not memory.forget(episode):
            raise BadInput(f"no episode #{episode} in memory")
        self.journal.recalled = [r for r in self.journal.recalled if r.exchange.id != episode]
        return f"forgot episode #{episode}: it will not be recalled again (the log keeps it)"

    def _cmd_voice(self, _: str) -> str:
        raise BadInput("/voice works in the interactive chat: run tantra chat at a terminal")

    def _cmd_quit(self, _: str) -> str:
        raise EOFError

    _cmd_exit = _cmd_quit


@dataclass(frozen=True)
class Ask:
    """What a command gives back when it also asks something now (``/image PATH QUESTION``): the front end shows
    ``note`` and sends ``text`` as if it had been typed, so the reply streams, or is spoken, as any other."""

    text: str
    note: str = ""


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
