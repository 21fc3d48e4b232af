"""The exchanges of ``tantra bench memory``: a generated corpus of everyday chat with facts told in it.

``corpus(count)`` gives ``count`` exchanges in conversations of 1-8 (the same ones for the same seed): about one in
eight tells a fact about the user or a friend (``Fact``, each with a later question about it in other words), the
rest are filler from templates (capitals, sums, conversions, reminders, how-tos, small talk), each reply with a short
tail. ``UNRELATED`` are questions about nothing said, for recall to find nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SEED = 0

NAMES = tuple("""Ada Bilal Chiara Dmitri Elif Farah Gustavo Hana Ingrid Jamal Kenji Leila Mateo Nadia Oskar Priya
    Quentin Rosa Sven Tamar Ugo Vera Wen Ximena Yusuf Zofia Amara Bruno Camille Dario Esme Felix Greta Hugo Isla Jonas
    Kavya Lars Mina Nico Olga Pablo Rania Stefan Tomas Uma Viktor Willa Yara Zane Aiko Boris Clara Dev Emil Fiona
    Goran Helga Ivo Julia""".split())
CITIES = tuple("""Lisbon Nairobi Osaka Toronto Krakow Valparaiso Tbilisi Hanoi Marseille Leeds Bergen Cordoba
    Adelaide Porto Accra Lyon Gdansk Pune Tallinn Bilbao""".split())
JOBS = ("nurse", "carpenter", "software engineer", "pharmacist", "teacher", "architect", "baker", "pilot", "vet",
        "accountant", "plumber", "translator", "physiotherapist", "journalist", "electrician", "chef")  # fmt: skip
CAPITALS = (("France", "Paris"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"),
            ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Chile", "Santiago"), ("Vietnam", "Hanoi"),
            ("Poland", "Warsaw"), ("Ghana", "Accra"), ("Portugal", "Lisbon"), ("Australia", "Canberra"),
            ("Turkey", "Ankara"), ("Morocco", "Rabat"), ("Argentina", "Buenos Aires"))  # fmt: skip
TASKS = ("call the bank", "water the plants", "renew my passport", "book a dentist appointment", "pay the rent",
         "buy milk and eggs", "send the invoice", "pick up the dry cleaning", "back up my laptop",
         "return the library books", "email my landlord", "take the bins out", "order new contact lenses")  # fmt: skip
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "tomorrow", "next week")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # fmt: skip
HOWTO = (("boil an egg", "Put the egg in boiling water for about 7 minutes, then cool it in cold water."),
         ("remove a coffee stain", "Blot it, rinse with cold water, then rub in a little washing-up liquid."),
         ("fall asleep faster", "Keep a regular bedtime, avoid screens for an hour before, and keep the room cool."),
         ("make a cup of tea", "Pour boiling water over the tea bag and let it steep for three to five minutes."),
         ("unclog a sink", "Try a plunger first; then baking soda and vinegar, followed by hot water."),
         ("start running", "Begin with short runs and walking breaks, three times a week, and build up slowly."),
         ("write a cover letter", "Say which job you want, why you fit it, and end with what you would bring."),
         ("save money on groceries", "Plan meals for the week, make a list, and buy store brands."))  # fmt: skip
SMALL_TALK = (("Good morning!", "Good morning! How can I help you today?"),
              ("Tell me a joke.", "Why did the scarecrow win an award? Because he was outstanding in his field."),
              ("Thanks, that was helpful.", "You're welcome! Happy to help."),
              ("I'm feeling a bit tired today.", "Sorry to hear that. A short walk or a glass of water can help."),
              ("What's a good name for a cat?", "How about Miso, Pepper or Luna?"),
              ("Can you recommend a film for tonight?", "If you like mysteries, try Knives Out; it is light and fun."),
              ("Say something encouraging.", "You have got this: one small step at a time."))  # fmt: skip
TAILS = ("", "", "", " Let me know if you need anything else.", " Is there anything else I can help with?",
         " I hope that helps.", " Anything else?")  # fmt: skip


@dataclass(frozen=True)
class Fact:
    prompt: str
    reply: str
    question: str
    """A later question about it, worded differently."""


def _user_facts(rng: random.Random) -> list[Fact]:
    """Facts a person tells about themselves, each once."""
    name, city, job, number = (lambda: rng.choice(NAMES)), (lambda: rng.choice(CITIES)), (lambda: rng.choice(JOBS)), \
        (lambda: rng.randint(1000, 9999))  # fmt: skip
    facts = []
    for relative in ("sister", "brother", "mother", "father", "partner", "best friend", "boss", "neighbour",
                     "dentist", "landlord"):  # fmt: skip
        who = name()
        facts.append(Fact(f"My {relative}'s name is {who}.", f"Got it, your {relative} is called {who}.",
                          f"What is my {relative} called?"))  # fmt: skip
    for thing in ("locker code", "bike lock combination", "office door code", "gym membership number",
                  "library card PIN", "apartment buzzer code"):  # fmt: skip
        value = number()
        facts.append(Fact(f"My {thing} is {value}, please remember it.", f"Noted: your {thing} is {value}.",
                          f"What was my {thing} again?"))  # fmt: skip
    place, home, work = city(), city(), job()
    level, flight, day, month = rng.randint(1, 6), f"{rng.choice('BLTKU')}{rng.choice('AXZ')}{rng.randint(100, 999)}", \
        rng.randint(1, 28), rng.choice(MONTHS)  # fmt: skip
    facts += [
        Fact(f"I was born in {place}.", f"{place} is a lovely place to be from.", "Where was I born?"),
        Fact(f"I moved to {home} last year.", f"How are you finding life in {home}?", "Which city do I live in now?"),
        Fact(f"I work as a {work}.", f"Being a {work} must keep you busy.", "What is my job?"),
        Fact(f"I parked on level {level} of the station car park.", f"Level {level}, got it.",
             "Where did I leave the car?"),
        Fact(f"My flight home is {flight} on {DAYS[rng.randint(0, 6)]}.", f"Flight {flight}, noted. Safe travels!",
             "What's my flight number?"),
        Fact(f"My birthday is on the {day} of {month}.", f"I'll remember: the {day} of {month}.",
             "When is my birthday?"),
        Fact(f"I'm allergic to {rng.choice(('peanuts', 'shellfish', 'penicillin', 'cats', 'pollen'))}.",
             "Thanks for telling me; I'll keep that in mind.", "What am I allergic to?"),
        Fact(f"My dog is called {name()}.", "What a good name for a dog!", "What's my dog's name?"),
        Fact(f"My favourite colour is {rng.choice(('teal', 'mustard yellow', 'burgundy', 'olive green'))}.",
             "Nice choice.", "What is my favourite colour?"),
        Fact(f"I'm learning {rng.choice(('Portuguese', 'Japanese', 'Swahili', 'Polish', 'Turkish'))} at evening "
             "classes.", "That's great, good luck with it!", "Which language am I learning?"),
    ]  # fmt: skip
    return facts


def _friend_facts(rng: random.Random) -> list[Fact]:
    """Facts about other people, one name each."""
    names = rng.sample(NAMES, len(NAMES))
    facts = []
    for index, who in enumerate(names):
        if index % 3 == 0:
            job, city = rng.choice(JOBS), rng.choice(CITIES)
            facts.append(Fact(f"My friend {who} works as a {job} in {city}.", f"So {who} is a {job} in {city}.",
                              f"What does {who} do for a living?"))  # fmt: skip
        elif index % 3 == 1:
            day, month = rng.randint(1, 28), rng.choice(MONTHS)
            facts.append(Fact(f"{who}'s birthday is on {month} {day}.", f"{month} {day} for {who}, noted.",
                              f"When is {who}'s birthday?"))  # fmt: skip
        else:
            food = rng.choice(("mushrooms", "coriander", "olives", "blue cheese", "aubergine"))
            facts.append(Fact(f"{who} is coming to dinner on Saturday but hates {food}.",
                              f"Then leave the {food} out of Saturday's dinner for {who}.",
                              f"What food should I avoid when cooking for {who}?"))  # fmt: skip
    return facts


def _filler(rng: random.Random) -> tuple[str, str]:
    """One exchange of everyday chat, from templates that repeat with other values."""
    kind = rng.randrange(7)
    if kind == 0:
        country, capital = rng.choice(CAPITALS)
        return f"What is the capital of {country}?", f"The capital of {country} is {capital}."
    if kind == 1:
        a, b = rng.randint(3, 99), rng.randint(3, 99)
        return f"What's {a} times {b}?", f"{a} times {b} is {a * b}."
    if kind == 2:
        miles = rng.randint(2, 400)
        return f"How many kilometres is {miles} miles?", f"{miles} miles is about {miles * 1.609:.1f} kilometres."
    if kind == 3:
        task, day = rng.choice(TASKS), rng.choice(DAYS)
        return f"Remind me to {task} {'on ' if day[0].isupper() else ''}{day}.", f"Okay: {task}, {day}."
    if kind == 4:
        task, reply = rng.choice(HOWTO)
        return f"How do I {task}?", reply
    if kind == 5:
        who, hour = rng.choice(NAMES), rng.randint(8, 17)
        return f"I have a meeting with {who} at {hour}:00 on {rng.choice(DAYS[:5])}.", f"Noted, {who} at {hour}:00."
    return rng.choice(SMALL_TALK)


UNRELATED = ("Write a haiku about autumn leaves.", "How far away is the moon?", "What is photosynthesis?",
             "Give me a recipe for pancakes.", "Why is the sky blue?", "Who painted the Mona Lisa?",
             "What's the difference between weather and climate?", "How do vaccines work?",
             "Suggest a name for a sailing boat.", "What is the boiling point of water in Fahrenheit?",
             "Explain what a black hole is.", "How many bones are in the human body?",
             "What rhymes with orange?", "Tell me about the Roman Empire.", "What is a prime number?")  # fmt: skip


@dataclass(frozen=True)
class Corpus:
    conversations: list[list[tuple[str, str]]]
    facts: list[tuple[int, Fact]]
    """Each fact with its place among the exchanges (0-based, in the order they are logged)."""


def corpus(count: int, seed: int = SEED) -> Corpus:
    """``count`` exchanges in conversations of 1-8, a fact told in about one of eight; the same for the same seed."""
    rng = random.Random(seed)
    facts = _user_facts(rng) + _friend_facts(rng)
    facts = facts[: max(1, min(len(facts), count // 8))]
    places = sorted(rng.sample(range(count), len(facts)))
    told = dict(zip(places, rng.sample(facts, len(facts))))
    exchanges = []
    for index in range(count):
        prompt, reply = (told[index].prompt, told[index].reply) if index in told else _filler(rng)
        exchanges.append((prompt, reply + rng.choice(TAILS)))
    conversations, start = [], 0
    while start < count:
        size = rng.randint(1, 8)
        conversations.append(exchanges[start : start + size])
        start += size
    return Corpus(conversations, sorted(told.items()))
