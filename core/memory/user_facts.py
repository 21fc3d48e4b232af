"""The facts a person tells: the sentences of their message that state something, in their own words.

Memory keeps these and nothing else. A question ("where does my sister live?") or a request ("remind me to call
Ada") tells nothing that is true, and a greeting tells nothing at all; kept, they are recalled for the next
question like them and crowd out the answer. The model's reply is never a fact either: a wrong guess ("your
sister lives in Ava") recalled as something said would be repeated with confidence. Only what the user said is
kept, verbatim (whitespace normalised), so a recalled fact is never a paraphrase that drifted.

The test is by form, in plain Python (no model: it runs on every exchange, in microseconds): split into sentences,
drop questions (a "?", a question word or an inverted auxiliary at the start), requests (an imperative verb,
"please", "can you"), greetings and thanks, and image notes; cut a question or request joined to a statement
("My code is 4821, please remember it." keeps "My code is 4821"); unwrap "remember that ...", "FYI, ...".
"""

from __future__ import annotations

import re

MAX_CHARACTERS = 300
"""Of one statement: a fact fits in a sentence; a longer one is cut at a word (a recalled note stays short)."""
MAX_STATEMENTS = 8
"""Of one message: past eight, a message is more likely a pasted page than what the user tells of themselves."""
SCANNED_CHARACTERS = 20_000
"""Of one message: statements are looked for this far, so a pasted megabyte costs no more than a page."""

# ---- words -----------------------------------------------------------------------------------------------------------

QUESTION_WORDS = frozenset("what where when who whom whose why how which".split())
UNSPELT = {"whats": "what's", "wheres": "where's", "whos": "who's", "hows": "how's", "whens": "when's",
           "whys": "why's", "dont": "don't", "cant": "can't", "doesnt": "doesn't", "didnt": "didn't", "im": "i'm",
           "ive": "i've", "isnt": "isn't", "wont": "won't"}  # fmt: skip
"""Contractions typed without their apostrophe."""
AUXILIARIES = frozenset("""am is are was were do does did can could will would shall should may might must have has had
    isn't aren't wasn't weren't don't doesn't didn't can't cannot couldn't won't wouldn't shouldn't haven't hasn't
    hadn't mustn't""".split())  # fmt: skip
SUBJECTS = frozenset("""i you he she it we they there this that these those my your his her its our their me us them
    i'm i've i'll i'd you're you've you'll you'd he's he'll he'd she's she'll she'd it's it'll we're we've we'll
    we'd they're they've they'll they'd there's that's someone somebody anyone anybody everyone
    everybody""".split())  # fmt: skip
"""Words that begin a clause's subject: after an auxiliary they make a question ("do you ..."), after a question
word an embedded clause ("where I live it rains")."""
REQUEST_VERBS = frozenset("""tell give write describe explain list show make create generate translate summarise
    summarize remind help find search look name suggest recommend compose draft calculate compute convert define
    compare say repeat read play set stop continue go let let's imagine pretend act answer check fix rewrite spell count
    sing draw plan book call send open add remove delete turn start put take try think consider forget remember note
    keep please kindly teach quiz ask guess sum multiply divide solve correct proofread paraphrase analyse analyze
    review edit simplify expand shorten improve format sort classify recite speak stay wait hold cancel save record
    """.split())  # fmt: skip
"""Verbs that begin a request addressed to the assistant ("Tell me a joke.", "Write a poem")."""
OBJECTS = frozenset("me us it that this them something anything".split())
"""After a request verb in the middle of a statement: "..., please remember it", "... and tell me a joke"."""
WORK_VERBS = frozenset("""translate summarise summarize describe explain rewrite correct fix proofread paraphrase
    analyse analyze check read repeat say spell write list format convert shorten expand improve edit review simplify
    classify answer sort""".split())  # fmt: skip
"""Requests whose object follows a colon: what comes after is material to work on, not what the user tells."""
SUBORDINATORS = frozenset("if unless suppose supposing imagine assuming whether when whenever while since because "
                          "although though before after once until".split())  # fmt: skip
"""A clause they begin is not a fact alone ("If I move to Oslo, what should I pack?" keeps nothing)."""
FILLER_WORDS = frozenset("""hi hello hey hiya howdy yo there tantra thanks thank thx ty you very much so a lot ok okay
    k yes no yeah yep yup nope sure cool great nice good fine morning afternoon evening night day bye goodbye cheers
    alright right well oh ah ahh uh um hmm wow lol haha hahaha sorry please welcome again all everyone indeed awesome
    perfect excellent lovely brilliant amazing wonderful that this it is was that's it's got understood noted makes
    sense sounds see you later soon take care never mind i agree exactly true absolutely definitely of course
    interesting funny helpful useful neat fair enough same too me done""".split())  # fmt: skip
"""A sentence of these words alone is a greeting, thanks or assent ("Hi there!", "Thanks, that was helpful.")."""
INTERJECTIONS = frozenset("""hi hello hey hiya thanks thank ok okay yes yeah yep no nope well oh ah so sure alright
    right great cool um uh hmm also anyway look listen""".split())  # fmt: skip
"""Leading words cut from a statement when a comma or "!" ends them ("Yes, I have two kids." keeps the kids)."""
ABBREVIATIONS = frozenset("""mr mrs ms dr prof st jr sr vs etc approx dept est inc ltd co corp mt ft fig vol rev gen col
    lt sgt capt e.g i.e a.m p.m u.s u.k""".split())  # fmt: skip
"""A full stop after these does not end a sentence ("Dr. Patel", "3 p.m. on Friday"); not "no" ("No. I live here.")."""

# ---- patterns --------------------------------------------------------------------------------------------------------

_IMAGE_NOTE = re.compile(r"\[Image [^\]\n]*\]")
_CODE = re.compile(r"```.*?(?:```|\Z)", re.S)
_BULLET = re.compile(r"^\s*(?:[-*•·]+|\d{1,3}[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)|;(?=\s|$)")
_WORD = re.compile(r"[\w']+(?:[.'][\w']+)*")
_NOTE_LEAD = re.compile(
    r"^(?:(?P<ask>(?:i\s+want|i(?:'d|\s+would)\s+like|i\s+need)\s+you\s+to|(?:can|could|would|will)\s+you)\s+)?"
    r"(?:please\s+)?(?:remember|note|don't\s+forget|do\s+not\s+forget|keep\s+in\s+mind|bear\s+in\s+mind)"
    r"(?:\s+(?:that|this))?(?:\s*[:,\-–—]\s*|\s+)"
    r"|^(?:fyi|btw|by\s+the\s+way|for\s+the\s+record|just\s+so\s+you\s+know|for\s+your\s+information|update"
    r"|oh\s+and|also|and)(?:\s*[:,\-–—]\s*|\s+)",
    re.I,
)
"""A lead-in that hands over a statement: "Remember this: my cat is called Pumpernickel." keeps what follows."""
_INTERJECTION = re.compile(
    r"^([\w']+)(?:\s+(?:you|there|tantra|again|all|everyone|so\s+much|a\s+lot))?\s*[,!.\-–—]+\s+", re.I)
_CLAUSE = re.compile(r"\s*[,;:–—]\s*|\s+(?=(?:and|but|so|or|then)\s|(?:can|could|would|will)\s+you\b|please\b)",
                     re.I)  # fmt: skip
"""Where a clause may begin: a comma or dash, a conjunction, "can you", "please" (voice has no commas)."""
_LINK = re.compile(r"^(?:and|but|so|or|then|also)\s+", re.I)
_INDIRECT = re.compile(
    r"^(?:i|we)(?:\s+(?:want|need|would\s+like|wanna)|'d\s+like)\s+to\s+know\b"
    r"|^(?:i|we)(?:'m|'re|\s+am|\s+are|\s+was|\s+were)?\s+(?:wonder|wondering|curious)\b"
    r"|^(?:i|we)(?:\s+(?:want|need|would\s+like)|'d\s+like)\s+you\s+to\b"
    r"|^(?:i|we)\s+need\s+(?:some\s+|your\s+)?help\b",
    re.I,
)
"""Questions and requests worded as statements: "I wonder where my keys are", "I want you to write a poem"."""
_REACTION = re.compile(r"^(?:that|this|it)(?:'s|\s+is|\s+was)\s+(?:(?:so|very|really|pretty|quite|super|not)\s+)?"
                       r"[\w']+[.!]*$", re.I)  # fmt: skip
"""A verdict on the last reply ("That's great!", "It was fine."): about the conversation, not the user."""


def statements(text: str) -> list[str]:
    """The sentences of ``text`` (a user's message) that tell something, in order, verbatim with whitespace
    normalised: at most ``MAX_STATEMENTS``, each at most ``MAX_CHARACTERS``, none twice."""
    found: list[str] = []
    seen: set[str] = set()
    for sentence in _sentences(_plain(text[:SCANNED_CHARACTERS])):
        statement, rest_is_material = _statement(sentence)
        if statement is not None:
            key = " ".join(_words(statement))
            if key not in seen:
                seen.add(key)
                found.append(_shortened(statement))
        if rest_is_material or len(found) == MAX_STATEMENTS:
            break
    return found


# ---- splitting -------------------------------------------------------------------------------------------------------


def _plain(text: str) -> str:
    """The message without what the user did not say in their own words: image notes, code blocks, quoted lines."""
    text = _CODE.sub("\n", _IMAGE_NOTE.sub(" ", text))
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def _lines(text: str) -> list[str]:
    """Lines as the user meant them: a list item or a capital begins a new one; a lower-case word after a line
    break continues a wrapped sentence."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            lines.append("")
            continue
        item = _BULLET.match(line)
        line = line[item.end() :] if item else line
        if lines and lines[-1] and not item and line[0].islower():
            lines[-1] += " " + line
        else:
            lines.append(line)
    return [line for line in lines if line]


def _sentences(text: str) -> list[str]:
    sentences = []
    for line in _lines(text):
        start = 0
        for end in _SENTENCE_END.finditer(line):
            if end.group() == "." and _abbreviated(line[start : end.start()]):
                continue
            sentences.append(line[start : end.end()])
            start = end.end()
        sentences.append(line[start:])
    return [" ".join(s.split()) for s in sentences if s.strip()]


def _abbreviated(before: str) -> bool:
    """Whether a full stop after ``before`` ends an abbreviation or an initial rather than a sentence."""
    last = before.rsplit(None, 1)[-1].lstrip("(\"'").lower() if before.strip() else ""
    return last in ABBREVIATIONS or (len(last) == 1 and last.isalpha() and last != "i")


def _words(text: str) -> list[str]:
    words = (w.lower() for w in _WORD.findall(text.replace("’", "'")))
    return [UNSPELT.get(w, w) for w in words]


def _shortened(statement: str) -> str:
    if len(statement) <= MAX_CHARACTERS:
        return statement
    cut = statement[: MAX_CHARACTERS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


# ---- judging ---------------------------------------------------------------------------------------------------------


def _statement(sentence: str) -> tuple[str | None, bool]:
    """The statement ``sentence`` makes (all of it, or its head before a question or request), or None; and whether
    the rest of the message is material for a request ("Translate this:" and what follows)."""
    sentence = _without_interjection(sentence)
    lead = _NOTE_LEAD.match(sentence)
    if lead and lead.end() < len(sentence):  # "remember that X": X is told, whatever the request around it
        told = sentence[lead.end() :].strip()
        if lead.group("ask"):  # "Can you remember that my sister is Ada?": the "?" is the request's
            told = told.rstrip("?").rstrip()
        if not _words(told) or _words(told)[0] == "to":  # "Remember to buy milk" is a reminder, not a fact
            return None, False
        return _statement(told)
    kind = _kind(sentence)
    if kind == "statement":
        head = _asking_tail(sentence, strict=True)
        return (sentence if head is None else _told(head)), False
    if kind == "question":
        head = _asking_tail(sentence, strict=False)
        return (None if head is None else _told(head)), False
    return None, kind == "request" and ":" in sentence and _words(sentence)[0] in WORK_VERBS


def _without_interjection(sentence: str) -> str:
    """"Hi, my name is Ada." -> "my name is Ada." (only when punctuation ends the interjection, so "No one knows"
    and "Well water is safe" stay whole)."""
    while True:
        lead = _INTERJECTION.match(sentence)
        if lead is None or lead.group(1).lower() not in INTERJECTIONS:
            return sentence
        sentence = sentence[lead.end() :]


def _kind(sentence: str) -> str:
    """"statement", "question", "request" or "filler" (greetings, thanks, single words, verdicts on a reply)."""
    words = _words(sentence)
    if not words or not any(c.isalpha() for c in sentence):
        return "filler"
    first, second = (words + [""])[:2]
    if _ends_asking(sentence) or _asks(first, second):
        return "question"
    if _requests(words):
        return "request"
    if all(w in FILLER_WORDS for w in words) or _REACTION.match(sentence) or _exclaims(first, second):
        return "filler"
    if len(words) == 1 or (len(words) == 2 and first not in SUBJECTS):
        return "filler"  # "Ada." or "Sounds good." says nothing out of its conversation; "I'm Ada." does
    return "statement"


def _ends_asking(sentence: str) -> bool:
    return sentence.rstrip("\"'”’)] ").endswith("?")


def _asks(first: str, second: str) -> bool:
    """Whether a sentence that begins with these words asks, though it may lack its "?" (spoken, or typed fast)."""
    base = first.split("'")[0]
    if base in QUESTION_WORDS:
        embedded = second in SUBJECTS and first == base  # "Where I live it rains a lot."
        return not (embedded or _exclaims(first, second))
    # An inverted auxiliary: "Do you know Paris", "Is my sister in Lisbon" (not "Will is my brother").
    return first in AUXILIARIES and (second in SUBJECTS or second in ("the", "a", "an", "any", "anything", "not"))


def _exclaims(first: str, second: str) -> bool:
    return first in ("what", "how") and second in ("a", "an")  # "What a day!"


def _requests(words: list[str]) -> bool:
    """Whether words that begin a sentence ask the assistant to do something."""
    first, second = (words + [""])[:2]
    if first in REQUEST_VERBS:
        return second not in AUXILIARIES  # "Call is at 3 pm." is not a request
    return (first == "don't" and second not in SUBJECTS) or bool(_INDIRECT.match(" ".join(words)))


def _asking_tail(sentence: str, strict: bool) -> str | None:
    """The part of ``sentence`` before a question or request joined to it ("I'm Ada, what's my name?"), or None
    when there is no such join. ``strict`` (the sentence reads as a statement) takes only a join that cannot be a
    relative clause: "My sister, who is a nurse, lives in Lisbon." is one statement."""
    asks = _ends_asking(sentence)
    for boundary in _CLAUSE.finditer(sentence):
        head, tail = sentence[: boundary.start()].strip(), _words(_LINK.sub("", sentence[boundary.end() :].strip()))
        if head and tail and (_starts_asking(tail, strict) or (asks and not strict and len(tail) <= 3)):
            return head  # "..., right?", "..., isn't it?" are short tags
    return None


def _starts_asking(words: list[str], strict: bool) -> bool:
    first, second, third = (words + ["", ""])[:3]
    if first in ("please", "kindly") or (first in REQUEST_VERBS and second in OBJECTS):
        return True  # "..., please remember it", "... and tell me a joke"
    if first in AUXILIARIES and second in ("you", "u"):
        return True  # "..., can you remember that?"
    if not strict:
        return _asks(first, second) or _requests(words)
    base = first.split("'")[0]  # who, which, whose: a relative clause as often as a question
    return base in ("what", "how", "why", "where", "when") and (
        first != base or (second in AUXILIARIES and third in SUBJECTS | {"yours"}))  # fmt: skip


def _told(head: str) -> str | None:
    """``head`` if it tells something alone ("If I move to Oslo" does not)."""
    words = _words(head)
    return head if words and words[0] not in SUBORDINATORS and _kind(head) == "statement" else None
