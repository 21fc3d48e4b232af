"""Replies without role-play stage directions: "Lilac! *takes a sip of coffee*" says "Lilac!".

A small chat model often acts out its answers in ``*asterisks*`` or ``(parentheses)``. Those spans are dropped as
the reply streams, together with the space a removal leaves doubled. Text streams on at once: only an open ``*`` or
``(`` span that may still turn out to be a stage direction is held back (plus trailing spaces, which show nothing
and, after a removal, would be doubled), so the reader sees each word as soon as it is certain.

What is a stage direction (and what is not):
- ``*...*``: one asterisk on each side, at most ``LONGEST_ACTION`` characters, no line break, led by a verb of
  acting ("*smiles*", "*takes a sip of coffee*", "*Sighs*", "*adjusts glasses*"). Not ``**bold**``, not ``2 * 3``,
  not a bullet ``* item``, and not emphasis: "it is *not* safe" and "*the* answer" keep their words.
- ``(...)``: 1-4 lowercase words led by a verb of acting or one -ing word ("(smiling)", "(laughs)", "(chuckles
  softly)", "(pauses)"). Not "(90%)", "(in Lisbon)", "(see above)", "(UTC)", "f(x)".
The decision for each character depends only on the text before it and its own span, never on how the text was cut
into pieces, so a reply filtered token by token reads exactly as the whole reply filtered at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

LONGEST_ACTION = 100  # characters between the asterisks: "*takes a long sip of coffee and looks out the window*"
LONGEST_ASIDE = 40  # characters between the parentheses: "(chuckles softly to himself)"
MOST_ASIDE_WORDS = 4

# Verbs a role-playing model acts out on their own: one word is a whole stage direction ("*sighs*", "*sigh*").
EMOTES = frozenset("""
    smile grin beam smirk laugh chuckle giggle snicker snigger titter cackle chortle guffaw nod shrug sigh wink
    blink wave bow curtsy pause cough gasp gape blush frown pout cry sob weep whimper sniff sniffle yawn stretch hum
    whistle cheer clap applaud hug grimace wince cringe shiver tremble shudder squeal scoff snort groan moan grunt
    growl purr facepalm squint hesitate ponder inhale exhale gulp hiccup sneeze swoon salute bounce fidget glow
    sweat stammer stutter fist-pump
""".split())
# Verbs that lead a longer one: "*takes a sip of coffee*", "*wipes hands on forehead*", "(looks around)".
ACTIONS = EMOTES | frozenset("""
    take sip drink eat munch chew bite lick taste smell hand give offer hold grab pick put place set adjust wipe
    lean tilt shake roll raise lift lower look glance stare gaze peek peer point gesture tap pat scratch rub stroke
    tug pull push poke nudge walk step stride pace sit stand kneel crouch jump dance spin twirl turn rise open
    close write type scribble think clear cross fold toss throw pour stir cook bake whisper mutter murmur mumble
    shout yell scream call sing clink squeeze brush flip fix straighten smooth tuck run hop skip lie reach wrap
    rest plop flop collapse slump settle perk furrow narrow widen cover hide clutch grip snap flash
""".split())
# Words ending in -s or -ing that do not act: "*this is* key", "*always* check", "*nothing* works".
_NOT_ACTING = frozenset("""
    is was has does this his its as us yes less unless always thus plus perhaps sometimes across various towards
    afterwards besides hers ours yours theirs whereas news means needs lots thanks series species
    being during according including regarding concerning morning evening string spring bring ceiling building
    meaning pudding wedding ending setting heading beginning warning interesting amazing exciting boring
    following pending missing remaining existing loading encoding padding spelling rounding training learning
    programming computing processing testing debugging logging something nothing anything everything king ring
    wing sing thing ping swing sting
""".split())
_HEAD_PUNCTUATION = ",.;:!?…"


def _stems(word: str) -> set[str]:
    """The base forms ``word`` may be a form of: "smiles" -> smile, "pushes" -> push, "nodding" -> nod."""
    stems = {word}
    if word.endswith("ies"):
        stems.add(word[:-3] + "y")  # cries
    if word.endswith("es"):
        stems.add(word[:-2])  # pushes, touches
    if word.endswith("s") and not word.endswith("ss"):
        stems.add(word[:-1])
    if word.endswith("ing") and len(word) > 5:
        base = word[:-3]
        stems |= {base, base + "e"}  # laughing, smiling
        if base[-1] == base[-2]:
            stems.add(base[:-1])  # nodding, grinning
    return stems


def _inflected(word: str) -> bool:
    """-s or -ing: how a stage direction's verb is written ("smiles", "smiling"), unlike "look below"."""
    return (word.endswith("s") and not word.endswith(("ss", "us", "is"))) or (word.endswith("ing") and len(word) > 5)


def _acts(word: str, verbs: frozenset[str], bare: bool) -> bool:
    """Whether ``word`` is a form of one of ``verbs``; ``bare``: the base form itself counts ("*sigh*")."""
    if word in _NOT_ACTING or word.endswith("thing"):
        return False
    if bare and word in verbs:
        return True
    return _inflected(word) and bool((_stems(word) - {word}) & verbs)


def is_stage_direction(content: str, parenthesised: bool = False) -> bool:
    """Whether ``content``, what stood between ``*...*`` (or, ``parenthesised``, between ``(...)``), acts."""
    words = content.split()
    if not words:
        return False
    head = words[0].rstrip(_HEAD_PUNCTUATION)
    word = head.lower()
    if not word.replace("-", "").isalpha():
        return False
    if parenthesised:
        if len(words) > MOST_ASIDE_WORDS:
            return False
        if _acts(word, ACTIONS, bare=len(words) == 1 and word in EMOTES):
            return True
        return len(words) == 1 and word.endswith("ing") and len(word) > 5 and word not in _NOT_ACTING
    if len(words) == 1:  # "*smiles*" acts; "*really*", "*takes*" ("it *takes* time") are emphasis
        return _acts(word, EMOTES, bare=True)
    if _acts(word, ACTIONS, bare=False):
        return True
    # An unlisted verb in the third person or -ing, lowercase as a model writes actions: "*fumbles with keys*".
    return head == word and _inflected(word) and word not in _NOT_ACTING and not word.endswith("thing")


class StageDirectionFilter:
    """Feed it a reply piece by piece; it gives back the text to show now, stage directions left out."""

    def __init__(self) -> None:
        self._span = ""  # an open "*..." or "(..." that may still be a stage direction
        self._spaces = ""  # spaces read but not yet given back: a removal may leave them doubled
        self._last = ""  # the last two characters given back ("" before the first)
        self._previous = ""  # the last character read
        self._removed = False  # a stage direction was dropped since the last character given back

    def feed(self, text: str) -> str:
        out: list[str] = []
        self._read(text, out)
        return "".join(out)

    def finish(self) -> str:
        """What is left at the end of the reply: an unclosed span is text after all."""
        out: list[str] = []
        while self._span:
            span, self._span = self._span, ""
            self._give(span[0], out)
            self._previous = span[0]
            self._read(span[1:], out)
        if not self._removed:
            out.append(self._spaces)
        self._spaces, self._removed = "", False
        return "".join(out)

    def _read(self, text: str, out: list[str]) -> None:
        queue = deque(text)
        while queue:
            c = queue.popleft()
            if self._span:
                rejected = self._extend(c, out)
                if rejected is not None:  # not a stage direction: its first character is text; read the rest again
                    self._give(rejected[0], out)
                    self._previous = rejected[0]
                    queue.extendleft(reversed(rejected[1:]))
                    continue
            elif c in "*(" and not self._previous.isalnum() and self._previous != "*":
                self._span = c
            else:
                self._give(c, out)
            self._previous = c

    def _extend(self, c: str, out: list[str]) -> str | None:
        """Add ``c`` to the open span; returns the span and ``c`` when they turned out not to be one."""
        span = self._span
        if span[0] == "*":
            if c == "*":
                if len(span) == 1 or span[-1].isspace():  # "**bold**", or "*a *" (emphasis closes on a word)
                    return self._reject(c)
                self._close(span + c, out)
                return None
            if c == "\n" or len(span) > LONGEST_ACTION or (len(span) == 1 and c.isspace()):  # "* item", "2 * 3"
                return self._reject(c)
        else:
            if c == ")":
                self._close(span + c, out)
                return None
            word_character = "a" <= c <= "z" or (len(span) > 1 and c in " '-")
            if not word_character or len(span) > LONGEST_ASIDE or span.count(" ") >= MOST_ASIDE_WORDS:
                return self._reject(c)
        self._span += c
        return None

    def _reject(self, c: str) -> str:
        span, self._span = self._span + c, ""
        return span

    def _close(self, whole: str, out: list[str]) -> None:
        """The span ``whole`` ("*smiles*", "(see above)") is complete: dropped if it acts, else text."""
        self._span = ""
        if is_stage_direction(whole[1:-1], parenthesised=whole[0] == "("):
            self._removed = True
        else:  # emphasis or an aside that stays: nothing in it can open another span
            for character in whole:
                self._give(character, out)

    def _give(self, c: str, out: list[str]) -> None:
        """``c`` is text: give it back, with the spaces before it (one, when a removal stood between them)."""
        if c in " \t":
            self._spaces += c
            return
        if self._removed:
            self._removed = False
            line_start = self._last[-1:] in ("", "\n")
            if c in "\n.,;:!?…)" or line_start:  # "fine *smiles*." -> "fine."
                self._spaces = ""
                if c == "\n" and line_start:  # the line held only a stage direction: it goes, and if it was a
                    self._removed = self._last in ("", "\n\n")  # paragraph, so do the blank lines after it
                    return
            elif self._spaces:
                self._spaces = " "
        out.append(self._spaces + c)
        self._spaces, self._last = "", (self._last + c)[-2:]


def without_stage_directions(pieces: Iterable[str]) -> Iterator[str]:
    """``pieces`` of a streamed reply, passed on as they come, without role-play stage directions. Closing the
    result closes ``pieces`` too (Ctrl-C during a reply stops the model at once)."""
    reply = StageDirectionFilter()
    try:
        for piece in pieces:
            text = reply.feed(piece)
            if text:
                yield text
        rest = reply.finish()
        if rest:
            yield rest
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def clean_reply(text: str) -> str:
    """``text`` without role-play stage directions: what ``without_stage_directions`` gives for it, joined."""
    return "".join(without_stage_directions([text]))
