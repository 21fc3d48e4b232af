"""Where the facts a reply rests on go in the prompt, and in what words: one layout for every chat.

A 135M model uses a fact only in some places. Measured with ``tantra bench answers`` (docs/BENCHMARKS.md): an
image's label, a recalled memory or a piped note placed before the question in the user's own message is mostly
ignored, while the same facts in a system message just before the question, about "the user" in the third person,
are used. So each turn may carry one such note, made of:

- what the user said about themselves earlier in this conversation (a running note: a 135M model loses a name two
  turns later when it is only in the history);
- the user's own statements recalled from other conversations (never the model's replies);
- what each image of the turn shows (the local describer's hedged labels and the text read in it);
- piped text (a note, a list, an article) the question is about.

The note is kept in the conversation where it was given, so every turn's prompt begins with the last one's: the
prompt cache holds and the time to the first word does not grow with the conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.memory.user_facts import statements

LAYOUT = "system"
"""The layout every chat uses (``tantra bench answers`` chose it); "inline" is the one before it, for comparison."""
NOTE_ROLE = "system"
TOLD_AT_MOST = 8
"""Statements of this conversation repeated in a note: the latest, those sharing words with the question first."""
ABOUT_USER = "Facts about the user: "
PICTURE = "The picture {name} shows: {seen}"
TEXT = "Here is the user's text:\n"

DEFAULT_SYSTEM = (
    "You are Tantra, a helpful assistant. Answer the user's question directly and truthfully in plain words. Use the "
    "facts you are given about the user, their pictures and their text."
)
"""The system prompt of a typed chat when the user sets none."""
VOICE_SYSTEM = (
    "You are Tantra, a helpful voice assistant. The user speaks and hears your answers, so answer in one to three "
    "short sentences of plain words, without lists, code or Markdown. Use the facts you are given about the user."
)


@dataclass(frozen=True)
class Grounds:
    """What a turn's answer may rest on, besides the conversation itself."""

    told: tuple[str, ...] = ()
    """The user's statements earlier in this conversation, verbatim (``core.memory.user_facts.statements``)."""
    remembered: tuple[str, ...] = ()
    """The user's statements recalled from other conversations, verbatim."""
    images: tuple[str, ...] = ()
    """``[Image NAME: what it shows]`` lines (``core.vision.describer.facts_note``)."""
    context: str = ""
    """Piped text the question is about."""

    def __bool__(self) -> bool:
        return bool(self.told or self.remembered or self.images or self.context.strip())


# ---- the user's words in the third person ----------------------------------------------------------------------------

_IRREGULAR = {"am": "is", "'m": " is", "was": "was", "have": "has", "'ve": " has", "do": "does", "don't": "doesn't",
              "go": "goes", "'d": " would", "'ll": " will"}  # fmt: skip
_MODAL = {"will", "would", "can", "could", "should", "shall", "may", "might", "must", "did", "didn't", "had",
          "won't", "can't", "cannot", "wasn't"}  # fmt: skip
_ADVERBS = {"also", "just", "really", "still", "never", "always", "often", "usually", "sometimes", "recently",
            "already", "only", "now", "mostly", "rarely", "seldom"}  # fmt: skip
_PRONOUNS = {"my": "the user's", "mine": "the user's", "me": "the user", "myself": "the user"}


def _third_person_verb(verb: str) -> str:
    lower = verb.lower()
    if lower in _IRREGULAR:
        return _IRREGULAR[lower]
    if lower in _MODAL or lower.endswith("ed") or not lower.isalpha():
        return verb
    if re.search(r"(?:s|sh|ch|x|z|o)$", lower):
        return verb + "es"
    if re.search(r"[^aeiou]y$", lower):
        return verb[:-1] + "ies"
    return verb + "s"


def in_third_person(statement: str) -> str:
    """"My name is Ada and I keep bees." -> "The user's name is Ada and the user keeps bees.": the model reads facts
    about "the user" as facts about the person it answers, and first-person words as its own (measured: told "My
    name is Ada", asked "What is my name?", it gave itself a name)."""
    words = re.split(r"(\s+)", statement.strip())
    out: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        body, tail = re.match(r"^(.*?)([.,;:!?\"')]*)$", word).groups()
        lower = body.lower()
        if lower in ("i", "i'm", "i've", "i'd", "i'll"):
            out.append("the user" + (_IRREGULAR.get(lower[1:], "") if lower != "i" else "") + tail)
            verb = index + 2
            while lower == "i" and verb < len(words) and words[verb].lower() in _ADVERBS:
                verb += 2  # "I usually wake" -> "the user usually wakes"
            if lower == "i" and verb < len(words):
                verb_core, verb_tail = re.match(r"^(.*?)([.,;:!?\"')]*)$", words[verb]).groups()
                words[verb] = _third_person_verb(verb_core) + verb_tail
        elif lower in _PRONOUNS:
            out.append(_PRONOUNS[lower] + tail)
        else:
            out.append(word)
        index += 1
    said = "".join(out)
    return re.sub(r"(^|[.!?]\s+)the user", r"\1The user", said)


# ---- the note and the turn -------------------------------------------------------------------------------------------


def note_text(grounds: Grounds) -> str:
    """The facts as the system note reads them, one kind per paragraph."""
    parts = []
    about_user = [in_third_person(s) for s in (*grounds.remembered, *grounds.told)]
    if about_user:
        parts.append(ABOUT_USER + " ".join(about_user))
    for line in grounds.images:
        parts.append(_image_line(line))
    if grounds.context.strip():
        parts.append(TEXT + grounds.context.strip())
    return "\n".join(parts)


def _image_line(facts_note: str) -> str:
    """``[Image cat.jpg: Looks like tabby cat (90%).]`` -> ``The picture cat.jpg shows: tabby cat (90%).``: the
    percentages stay, and say how sure the classifier is; the lead words went (the layout was measured without)."""
    match = re.fullmatch(r"\[Image (.+?): (.*)\]", facts_note.strip(), re.DOTALL)
    if match is None:
        return facts_note
    name, seen = match.groups()
    seen = re.sub(r"^(?:Looks like|Probably|Not sure: perhaps) ", "", seen)
    return PICTURE.format(name=name, seen=seen)


def turn_messages(text: str, grounds: Grounds, layout: str = "system") -> list[dict]:
    """The messages a turn adds to the conversation: the note (when there are facts), then the user's message.
    ``layout`` "inline" is the layout before this module (notes before the question in the user's message), kept
    for ``tantra bench answers`` to compare against."""
    if layout == "inline":
        notes = [f'[Memory: the user said "{s}"]' for s in grounds.remembered] + list(grounds.images)
        if grounds.context.strip():
            notes.insert(0, grounds.context.strip())
        return [{"role": "user", "content": "\n".join(notes) + "\n\n" + text if notes else text}]
    if layout != "system":
        raise ValueError(f"no prompt layout {layout!r}")
    head = [{"role": NOTE_ROLE, "content": note_text(grounds)}] if grounds else []
    return head + [{"role": "user", "content": text}]


def told_before(messages: list[dict], question: str, limit: int = TOLD_AT_MOST) -> tuple[str, ...]:
    """The user's statements in ``messages`` (this conversation's turns), each once, in the order told; past
    ``limit``, those that share most words with ``question`` (then the latest) are kept."""
    told: list[str] = []
    for message in messages:
        if message["role"] == "user":
            told += [s for s in statements(message["content"]) if s not in told]
    if len(told) <= limit:
        return tuple(told)
    asked = set(re.findall(r"\w+", question.lower()))
    ranked = sorted(range(len(told)), key=lambda i: (len(asked & set(re.findall(r"\w+", told[i].lower()))), i))
    return tuple(told[i] for i in sorted(ranked[-limit:]))
