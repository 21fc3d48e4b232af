"""``tantra bench answers``: its items and its scoring (fast), and the real model answering grounded questions at the
defaults (slow)."""

from __future__ import annotations

import re

import pytest

from core.language.grounding import ABOUT_USER, DEFAULT_SYSTEM, PICTURE, TEXT, VOICE_SYSTEM
from tantra_benchmarks.answer_items import CATEGORIES, FILLERS, items, turns_back
from tantra_benchmarks.answers import STAGE_DIRECTION, summary


def test_the_items_cover_every_category_with_a_split_for_tuning():
    all_items = items()
    assert len(all_items) >= 100 and len({i.id for i in all_items}) == len(all_items)
    for category in CATEGORIES:
        chosen = [i for i in all_items if i.category == category]
        assert len(chosen) >= 12 and 0 < sum(i.tune for i in chosen) < len(chosen) / 2
    assert sorted({turns_back(i) for i in all_items if i.category == "conversation"}) == [1, 3, 8]
    for item in all_items:
        re.compile(item.accept)
        assert bool(item.image) == bool(item.label) == (item.category == "image")


def test_no_item_is_in_the_prompts_tantra_writes():
    """Tuned on some items, reported on the rest: none of their words may have leaked into the prompts."""
    prompts = " ".join([DEFAULT_SYSTEM, VOICE_SYSTEM, ABOUT_USER, PICTURE, TEXT]).lower()
    for item in items():
        said = " ".join([item.question, item.remembered, item.context, *item.told])
        names = re.findall(r"(?<=[a-z,] )[A-Z][a-z]+|\d+", said)  # names and numbers: what an answer turns on
        assert not [name for name in names if re.search(rf"\b{name.lower()}\b", prompts)], item.id
        assert item.question.lower() not in prompts
    assert not any(filler.lower() in prompts for filler in FILLERS)


def test_the_summary_scores_by_category_distance_and_label():
    rows = [
        {"category": "conversation", "right": True, "turns_back": 1, "prompt_tokens": 50, "first_token_seconds": 0.1,
         "stage_direction": False, "sentences": 1},
        {"category": "conversation", "right": False, "turns_back": 8, "prompt_tokens": 150, "first_token_seconds": 0.3,
         "stage_direction": True, "sentences": 2},
        {"category": "image", "right": True, "label_right": True, "prompt_tokens": 70, "first_token_seconds": 0.2,
         "stage_direction": False, "sentences": 1},
        {"category": "image", "right": False, "label_right": False, "prompt_tokens": 70, "first_token_seconds": 0.2,
         "stage_direction": False, "sentences": 1},
    ]  # fmt: skip
    result = summary(rows)
    assert result["accuracy"]["conversation"] == 0.5 and result["accuracy"]["image_label_right"] == 1.0
    assert result["accuracy"]["conversation_1_turns_back"] == 1.0 and result["accuracy"]["memory"] is None
    assert result["accuracy"]["all"] == 0.5 and result["prompt_tokens_mean"] == 85.0
    assert result["stage_directions"] == 1 and result["first_token_seconds_p50"] == 0.2


@pytest.mark.parametrize("reply", ["Lilac! *takes a sip of coffee*", "(smiling) Sure.", "*wipes hands on forehead*"])
def test_stage_directions_are_counted(reply):
    assert STAGE_DIRECTION.search(reply)
    assert not STAGE_DIRECTION.search("The answer is 2 * 3 (in Lisbon).")
    assert not STAGE_DIRECTION.search("1. **Choose the right type**: green tea or black tea")  # Markdown's bold


# ---- the real model, at the defaults ---------------------------------------------------------------------------------


TOLD_NAMES = (
    ("My name is Ada and I keep bees.", "How do I boil an egg?", "What is my name?", "Ada"),
    ("My name is Omar and I teach music.", "What is the capital of France?", "What is my name?", "Omar"),
    ("I'm Lena, and I live in Oslo.", "How do plants grow?", "What is my name?", "Lena"),
    ("My name is Tom. I have two cats.", "Why is the sky blue?", "Do you remember my name?", "Tom"),
    ("Call me Priya. I work as a nurse.", "How do I make tea?", "What's my name?", "Priya"),
    ("My dog is called Rex.", "What is a good breakfast?", "What is my dog called?", "Rex"),
)  # (told, a question between, the question, the word the answer needs)


@pytest.fixture(scope="module")
def model(settings):
    from config.model_config import MODEL_CONFIG
    from core.model_loader import ModelLoader

    loader = ModelLoader(MODEL_CONFIG, settings)
    return loader, loader.load_spikingbrain()


def _chat(loaded, journal=None, system=DEFAULT_SYSTEM):
    from core.language.chat_session import ChatSession
    from core.language.conversation import SamplingOptions
    from core.memory.journal import Journal

    options = SamplingOptions(max_tokens=48)  # the defaults, shorter
    return ChatSession.of(loaded, options, system, journal=journal or Journal())


@pytest.mark.slow
def test_the_model_answers_from_what_it_was_told_shown_and_given(model, tmp_path):
    import skimage.data
    from PIL import Image

    from core.language.chat_images import image_record
    from core.vision.describer import ImageDescriber

    loader, loaded = model
    # A fact told two turns back, in six short chats: one greedy reply of a 135M spiking model turns on rounding
    # that differs between CPUs (AVX-512 or AVX2 kernels in torch), so the rate is what is checked. The
    # conversation category of ``tantra bench answers`` measures 65% (20% before issue 20).
    chats, named = [], []
    for told, between, question, name in TOLD_NAMES:
        chats.append(chat := _chat(loaded))
        "".join(chat.ask(told))
        "".join(chat.ask(between))
        named.append(name in "".join(chat.ask(question)))
    assert sum(named) >= 3, [c.conversation.messages[-1]["content"] for c in chats]

    piped = _chat(loaded)
    reply = "".join(piped.ask("When is the meeting?", context="The team meeting moved to Thursday at 3 pm in room 12."))
    assert "Thursday" in reply

    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "chelsea.png")
    seeing = _chat(loaded)
    seeing.pending_images.append(image_record(ImageDescriber(loader, ocr=False), tmp_path / "chelsea.png"))
    assert re.search(r"\bcat", "".join(seeing.ask("What animal is in this picture?")), re.I)
    assert not any(STAGE_DIRECTION.search(m["content"]) for c in (*chats, piped, seeing)
                   for m in c.conversation.messages if m["role"] == "assistant")  # fmt: skip


@pytest.mark.slow
def test_the_model_answers_from_memory_and_not_from_its_own_guesses(model, tmp_path):
    """The failure of issue 20: the user's words are recalled in another conversation; the model's earlier wrong
    answer is not."""
    from core.memory.chat_log import ChatLog
    from core.memory.episodes import EpisodicMemory
    from core.memory.journal import Journal
    from core.memory.log_db import open_database

    loader, loaded = model
    embedder = loader.load_embedder()
    database = open_database(tmp_path / "tantra.db")
    journal = Journal(ChatLog(database), EpisodicMemory(database, lambda: embedder))
    told = _chat(loaded, journal)
    "".join(told.ask("My sister's name is Zorbalina and she lives in Lisbon."))
    journal.new_conversation()
    asked = _chat(loaded, journal)
    reply = "".join(asked.ask("Where does my sister live?"))
    assert "Lisbon" in reply
    assert [fact for r in journal.recalled for fact in r.facts] == [
        "My sister's name is Zorbalina and she lives in Lisbon."]
    journal.new_conversation()
    again = _chat(loaded, journal)
    "".join(again.ask("Where does my sister live?"))  # the reply before is not a fact: only the user's words come back
    assert [fact for r in journal.recalled for fact in r.facts] == [
        "My sister's name is Zorbalina and she lives in Lisbon."]


@pytest.mark.parametrize(("flags", "said"), [
    (["answers", "--split", "everything"], "--split 'everything': choose report, tune, all"),
    (["answers", "--config", "later"], "--config 'later': choose before, after"),
    (["answers", "--category", "jokes"],
     "--category 'jokes': choose conversation, image, memory, piped, knowledge, voice"),
    (["answers", "--model", "no-such-model"], "unknown language model 'no-such-model'"),
    (["voice", "-m", "no-such-model"], "unknown language model 'no-such-model'"),
])  # fmt: skip
def test_a_bad_choice_is_one_line_before_anything_loads(flags, said):
    from tests.conftest import run_tantra

    run = run_tantra("bench", *flags, timeout=60)
    assert run.returncode != 0 and said in run.stderr.decode() and "Traceback" not in run.stderr.decode()
    assert run.stdout == b""
