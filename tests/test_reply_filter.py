"""Role-play stage directions left out of replies: what goes, what stays, and streaming that does not depend on how
the reply is cut into tokens. Pure text: fast."""

from __future__ import annotations

import random

import pytest

from core.language.reply_filter import StageDirectionFilter, clean_reply, is_stage_direction, without_stage_directions


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        ("Your name is... Lilac! *takes a sip of coffee*", "Your name is... Lilac!"),
        ("*wipes hands on forehead*", ""),
        ("*smiles* Sure, here it is.", "Sure, here it is."),
        ("Hello! *smiles* How are you?", "Hello! How are you?"),
        ("I'm fine *smiles*.", "I'm fine."),
        ("Hi *waves*, friend", "Hi, friend"),
        ("*Sighs* Fine.", "Fine."),
        ("*sigh* Fine.", "Fine."),
        ("*adjusts glasses* The answer is 4.", "The answer is 4."),  # an action led by a listed verb
        ("*fumbles with the keys* Found it.", "Found it."),  # an unlisted verb, as actions are written
        ("*laughing nervously* Oh no.", "Oh no."),
        ("Done. *nods* *grins*", "Done."),
        ("(smiling) Sure!", "Sure!"),
        ("Sure (smiling) thing.", "Sure thing."),
        ("(laughs) Okay.", "Okay."),
        ("Well (chuckles softly) maybe.", "Well maybe."),
        ("Hmm (pauses) no.", "Hmm no."),
        ("(sighs) Again?", "Again?"),
        ("Got it (winks).", "Got it."),
        ("(sigh) Fine.", "Fine."),
        ("Nice (thinking) idea.", "Nice idea."),  # a single -ing word
        ("Text\n*smiles*\nMore", "Text\nMore"),  # a line that held only a stage direction goes
        ("A\n\n*smiles*\n\nB", "A\n\nB"),
        ("A\n*smiles*\n\nB", "A\n\nB"),
        ("*smiles*\n\nHello", "Hello"),
        ("Sure *smiles*\nNext line", "Sure\nNext line"),
        ("(as I said *smiles*)", "(as I said)"),
        ("Tabs\t*smiles*\tstay single", "Tabs stay single"),
    ],
)  # fmt: skip
def test_stage_directions_go_with_the_space_they_leave(reply, shown):
    assert clean_reply(reply) == shown


@pytest.mark.parametrize(
    "reply",
    [
        "It is *not* safe.",  # emphasis keeps its words
        "*Really* good, and *the* answer, *really*.",
        "It *matters* a lot.",
        "This *is not* what I meant.",
        "You *always* check, *nothing* else.",
        "It *takes* time.",  # a verb of acting alone is emphasis unless it is an emote
        "**bold** and ***both*** and __under__",
        "2 * 3 * 4 = 24, and 2*3*4 too, and a * b",
        "* item one\n* item two\n  * nested item",
        "Use the *Homo sapiens* name.",
        "(90%)", "(in Lisbon)", "(see above)", "(UTC)", "f(x) = (x + 1)", "(look below)", "(optional)",
        "(loading)", "(nothing)", "(the other one)", "(Smiling)", "(a b c d e)", "(one day, maybe)",
        "*takes a sip",  # unclosed at the end: text
        "Oops *smiles\nacross lines*",  # a stage direction never spans lines
        "*" + "takes " * 20 + "*",  # too long for one
        "(" + "laughing " * 6 + ")",
        "A :) face and :( and (:",
        "",
        "   ",
        "trailing spaces stay when nothing was removed   ",
    ],
)  # fmt: skip
def test_text_that_only_looks_like_a_stage_direction_stays(reply):
    assert clean_reply(reply) == reply


def test_an_aside_inside_emphasis_and_emphasis_next_to_a_stage_direction():
    assert clean_reply("Mixed *really* (chuckles) no, just (see note).") == "Mixed *really* no, just (see note)."
    assert clean_reply("*really* *smiles* yes") == "*really* yes"


@pytest.mark.parametrize(
    ("content", "parenthesised", "acts"),
    [
        ("smiles", False, True), ("Smiles", False, True), ("smiling", False, True), ("nodding", False, True),
        ("grinning widely", False, True), ("cries", False, True), ("pushes the door", False, True),
        ("lies down", False, True), ("smiles.", False, True), ("really", False, False), ("takes", False, False),
        ("this is", False, False), ("nothing else", False, False), ("The Hobbit", False, False),
        ("90%", True, False), ("3", False, False), ("", False, False), ("chuckles softly", True, True),
        ("looks around the room", True, True), ("looks around the big room", True, False),
        ("see above", True, False), ("pending", True, False), ("thinking", True, True), ("look", True, False),
    ],
)  # fmt: skip
def test_what_acts(content, parenthesised, acts):
    assert is_stage_direction(content, parenthesised) is acts


CORPUS = [
    "Your name is... Lilac! *takes a sip of coffee* It suits you (smiling). **Bold** claims: 2 * 3 * 4 = 24.",
    "* first\n* second *smiles*\n\n*waves*\n\n(laughs) Then (in Lisbon) at 10:30 (UTC), 50 (90%) f(x).",
    "It is *not* safe *sighs*. *Really*. (chuckles softly) Fine *takes a sip",
    "Hi *waves*, friend. *nods* *grins*\n*smiles*\nEnd (see above) (pauses) ok *a *b* c* **x** ***y***",
    "  leading spaces *smiles*   then   more\t\t*nods*\tand (winks)  tail  ",
]


def _split(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(0, 12))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]


@pytest.mark.parametrize("text", CORPUS)
def test_streamed_one_character_at_a_time_or_cut_anywhere_reads_the_same(text):
    whole = clean_reply(text)
    assert "".join(without_stage_directions(text)) == whole  # a str is an iterable of one-character pieces
    rng = random.Random(text)
    for _ in range(300):
        pieces = _split(text, rng)
        assert "".join(without_stage_directions(pieces)) == whole, pieces


def test_random_texts_stream_the_same_however_they_are_cut():
    rng = random.Random(7)
    alphabet = ["*", "**", "(", ")", " ", "  ", "\n", "\t", ".", ",", "!", "a", "b", "2", "smiles", "laughs",
                "takes a sip", "not", "Hi", "(smiling)", "*waves*", "thinking", "%", "x"]  # fmt: skip
    for _ in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
        whole = clean_reply(text)
        assert "".join(without_stage_directions(text)) == whole, text
        if text:
            assert "".join(without_stage_directions(_split(text, rng))) == whole, text


def test_text_without_asterisks_or_parentheses_passes_unchanged():
    rng = random.Random(3)
    for _ in range(500):
        text = "".join(rng.choice("ab c.,!?\n\t1%:)") for _ in range(rng.randint(0, 40)))
        assert clean_reply(text) == text


def test_text_streams_on_at_once_and_only_an_open_span_waits():
    reply = StageDirectionFilter()
    assert reply.feed("Sure") == "Sure"
    assert reply.feed(", here") == ", here"
    assert reply.feed(" it is. ") == " it is."  # the space after shows nothing: it waits for the next word
    assert reply.feed("*smi") == ""  # may still be a stage direction
    assert reply.feed("les*") == ""
    assert reply.feed(" Enjoy") == " Enjoy"  # one space, not two
    assert reply.feed(" (9") == " (9"  # "(9" is no stage direction: out at once
    assert reply.feed("0%) and *re") == "0%) and"
    assert reply.feed("ally* good") == " *really* good"
    assert reply.feed(" *unfinished") == ""
    assert reply.finish() == " *unfinished"  # an unclosed asterisk is text after all


def test_pieces_are_passed_on_as_they_come():
    pieces = ["Hel", "lo", " *", "waves", "*", " there", "!"]
    assert list(without_stage_directions(pieces)) == ["Hel", "lo", " there", "!"]


def test_closing_the_filtered_stream_closes_the_reply():
    closed = []

    def reply():
        try:
            yield "One "
            yield "two "
            yield "three"
        finally:
            closed.append(True)

    stream = without_stage_directions(reply())
    assert next(stream) == "One"
    stream.close()  # Ctrl-C in the REPL
    assert closed == [True]
