"""The questions of ``tantra bench answers``: 122 grounded questions in six categories, each with the answers it
accepts as a pattern (case-insensitive regular expression, searched in the reply).

Every third item of each category (the 1st, 4th, 7th, ...) is the tuning split: prompt layouts, system prompts and
sampling were chosen on those alone, and the report is on the rest. No item's words are in any prompt Tantra
writes.
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORIES = ("conversation", "image", "memory", "piped", "knowledge", "voice")


@dataclass(frozen=True)
class Item:
    id: str
    category: str
    question: str
    accept: str
    """A regular expression a right reply contains (case-insensitive)."""
    told: tuple[str, ...] = ()
    """Earlier user turns of the same conversation, each answered by the model: the fact first, then others."""
    remembered: str = ""
    """Told in an earlier conversation (then asked in a new one, in other words)."""
    image: str = ""
    """A picture of ``IMAGES`` that goes with the question."""
    label: str = ""
    """What the local describer must say for the image's facts to be right (a pattern)."""
    context: str = ""
    """Piped text the question is about."""
    tune: bool = False


FILLERS = (
    "How do I boil an egg?", "Give me one tip for sleeping better.", "What is the tallest mountain on Earth?",
    "Tell me a short fact about owls.", "Suggest a healthy snack.", "What does a thermometer measure?",
    "Why is the sky blue?",
)  # fmt: skip
"""The turns between a fact and its question (1, 3 or 8 turns back: 0, 2 or 7 of these)."""

_CONVERSATION = (  # (fact, question, accepted), 10 for each distance: 1, 3 and 8 turns back
    ("My name is Ada and I keep bees.", "What is my name?", r"\bAda\b"),
    ("I live in Rotterdam.", "Which city do I live in?", r"Rotterdam"),
    ("My favourite colour is green.", "What is my favourite colour?", r"green"),
    ("I have three cats.", "How many cats do I have?", r"\b(three|3)\b"),
    ("My brother Tomas is a dentist.", "What does my brother do for a living?", r"dentist"),
    ("I work as a nurse at a hospital.", "What is my job?", r"nurse"),
    ("My flight leaves at 7 am on Friday.", "What time does my flight leave?", r"\b(7|seven)\b"),
    ("I prefer tea to coffee.", "Which drink do I prefer?", r"\btea\b"),
    ("My daughter is called Mira.", "What is my daughter's name?", r"\bMira\b"),
    ("I was born in 1987.", "What year was I born?", r"1987"),
    ("My name is Jonas.", "Do you remember my name?", r"\bJonas\b"),
    ("I grew up in Nairobi.", "Where did I grow up?", r"Nairobi"),
    ("My car is a red Volvo.", "What colour is my car?", r"\bred\b"),
    ("I run 5 kilometres every morning.", "How far do I run each morning?", r"\b(5|five)\b"),
    ("My dog's name is Biscuit.", "What is my dog called?", r"Biscuit"),
    ("I'm allergic to peanuts.", "What am I allergic to?", r"peanut"),
    ("My wife works as an architect.", "What is my wife's job?", r"architect"),
    ("I'm planning a trip to Japan in April.", "Where am I travelling in April?", r"Japan"),
    ("My favourite food is lasagna.", "What food do I like best?", r"lasagn"),
    ("I have 2 sons.", "How many sons do I have?", r"\b(2|two)\b"),
    ("My name is Priya and I teach maths.", "What's my name?", r"\bPriya\b"),
    ("I live in a village called Hollin.", "What is the name of my village?", r"Hollin"),
    ("My birthday is on the 12th of March.", "When is my birthday?", r"(12|twelfth).*March|March.*(12|twelfth)"),
    ("I play the cello in an orchestra.", "Which instrument do I play?", r"cello"),
    ("My cat is named Pepper.", "What is my cat's name?", r"Pepper"),
    ("I'm vegetarian.", "Do I eat meat?", r"\bno\b|vegetarian|don't|do not"),
    ("My office is on the 14th floor.", "Which floor is my office on?", r"\b14|fourteen"),
    ("I cycle to work every day.", "How do I get to work?", r"cycl|bike|bicycle"),
    ("My mother lives in Seville.", "Where does my mother live?", r"Sevill"),
    ("I support the football club Ajax.", "Which football club do I support?", r"Ajax"),
)

_MEMORY = (  # (told in one conversation, asked in another in other words, accepted)
    ("My sister's name is Zorbalina and she lives in Lisbon.", "Where does my sister live?", r"Lisbon"),
    ("My dentist appointment is on Tuesday.", "Which day is my dentist appointment?", r"Tuesday"),
    ("My name is Kofi.", "Do you know what I'm called?", r"\bKofi\b"),
    ("I keep my spare key under the blue flowerpot.", "Where did I say my spare key is?", r"flower ?pot"),
    ("My son Leo is eight years old.", "How old is Leo?", r"\b(8|eight)\b"),
    ("I work at a bakery on Elm Street.", "Where is my workplace?", r"bakery|Elm"),
    ("My favourite band is Radiohead.", "Which band do I like most?", r"Radiohead"),
    ("I'm learning to speak Portuguese.", "Which language am I learning?", r"Portuguese"),
    ("My parking spot is number 42.", "What is my parking spot number?", r"\b42\b|forty-two"),
    ("My grandmother was born in Krakow.", "Where was my grandma born?", r"Krak[oó]w"),
    ("I usually wake up at 6:30.", "What time do I get up?", r"6[:.]30|six[- ]thirty"),
    ("My boss is called Ingrid.", "What's the name of my manager?", r"Ingrid"),
    ("I planted tomatoes in my garden last week.", "What did I plant in the garden?", r"tomato"),
    ("My phone is a Pixel 8.", "Which phone do I have?", r"Pixel"),
    ("My husband hates mushrooms.", "What food does my husband dislike?", r"mushroom"),
    ("I'm saving money for a trip to Peru.", "What am I saving money for?", r"Peru"),
    ("My best friend Sanjay lives in Toronto.", "In which city does Sanjay live?", r"Toronto"),
    ("I have a meeting with the bank on the 3rd of May.", "When is my meeting with the bank?", r"May"),
    ("My blood type is O negative.", "What's my blood type?", r"\bO\b.{0,3}neg|\bO-"),
    ("I named my boat Seagull.", "What is my boat called?", r"Seagull"),
)

IMAGES = {
    # scikit-image's bundled photographs (name -> file in skimage/data)
    "cat.png": "chelsea.png", "coffee.png": "coffee.png", "tripod.png": "camera.png",
    "moped.png": "motorcycle_left.png", "rocket.jpg": "rocket.jpg",
    # signs drawn by the benchmark, for the text reader (name -> the text on them)
    "opening.png": "OPEN 9 AM - 5 PM", "exit.png": "EXIT", "room.png": "ROOM 214", "sale.png": "SALE 50% OFF",
    "receipt.png": "TOTAL $12.40", "platform.png": "PLATFORM 7", "parking.png": "NO PARKING",
}  # fmt: skip

_IMAGE = (  # (image, question, accepted, what the describer must say)
    ("cat.png", "What animal is in this picture?", r"\bcat|kitten|tabby", r"cat|tabby|Mau"),
    ("coffee.png", "What drink is shown in this picture?", r"espresso|coffee", r"espresso|coffee"),
    ("tripod.png", "What object is in this photo?", r"tripod", r"tripod"),
    ("opening.png", "What time does it open?", r"\b9\b|nine", r"9 ?AM"),
    ("cat.png", "Is this a dog or a cat?", r"\bcat", r"cat|tabby|Mau"),
    ("moped.png", "What vehicle is in the picture?", r"moped|scooter|motor", r"moped|scooter"),
    ("exit.png", "What does the sign say?", r"exit", r"EXIT"),
    ("coffee.png", "What is in the cup?", r"espresso|coffee", r"espresso|coffee"),
    ("room.png", "Which room number is on the sign?", r"214", r"214"),
    ("rocket.jpg", "What is shown in this image?", r"missile|rocket", r"missile|rocket"),
    ("sale.png", "How big is the discount?", r"50", r"50"),
    ("cat.png", "Describe the picture in a few words.", r"\bcat|tabby|kitten", r"cat|tabby|Mau"),
    ("receipt.png", "What is the total on the receipt?", r"12[.,]40", r"12[.,]40"),
    ("tripod.png", "Name the thing in the picture.", r"tripod", r"tripod"),
    ("platform.png", "Which platform number is written here?", r"\b7\b|seven", r"\b7\b"),
    ("coffee.png", "Is there a drink in this image?", r"yes|espresso|coffee", r"espresso|coffee"),
    ("parking.png", "What does the sign forbid?", r"park", r"PARKING"),
    ("moped.png", "What kind of vehicle is this?", r"moped|scooter|motor", r"moped|scooter"),
    ("opening.png", "When does it close?", r"\b5\b|five", r"5 ?PM"),
    ("rocket.jpg", "What is the object in this picture?", r"missile|rocket", r"missile|rocket"),
)

_LIBRARY = ("The town of Weldon opened a new library on Saturday. It has 40,000 books and a children's room. The "
            "mayor, Ruth Okafor, cut the ribbon.")  # fmt: skip
_FROG = ("Scientists in Chile found a new species of frog in the Andes. The frog is bright orange and only 2 "
         "centimetres long.")  # fmt: skip
_PIPED = (  # (piped text, question, accepted)
    ("The team meeting moved to Thursday at 3 pm in room 12.", "When is the meeting?", r"Thursday"),
    ("The team meeting moved to Thursday at 3 pm in room 12.", "Which room is the meeting in?", r"\b12\b|twelve"),
    ("Shopping list: eggs, flour, apples, milk.", "Is milk on the list?", r"\byes\b|milk is"),
    ("Shopping list: eggs, flour, apples, milk.", "What fruit is on the list?", r"apple"),
    ("Dear Sam, the package will arrive on Monday. Please sign for it at the front desk. Regards, Lena",
     "Who wrote the message?", r"Lena"),
    ("Dear Sam, the package will arrive on Monday. Please sign for it at the front desk. Regards, Lena",
     "When will the package arrive?", r"Monday"),
    (_LIBRARY, "How many books does the new library have?", r"40,?000|forty thousand"),
    (_LIBRARY, "Who cut the ribbon?", r"Okafor|Ruth"),
    ("Recipe: mix 200 g of flour with 2 eggs and a cup of milk, then bake for 25 minutes.",
     "How long does it bake?", r"25|twenty-five"),
    ("Recipe: mix 200 g of flour with 2 eggs and a cup of milk, then bake for 25 minutes.",
     "How many eggs are needed?", r"\b(2|two)\b"),
    ("Train 418 to Leeds departs from platform 4 at 10:15.", "Which platform does the train leave from?",
     r"\b(4|four)\b"),
    ("Train 418 to Leeds departs from platform 4 at 10:15.", "Where is train 418 going?", r"Leeds"),
    ("Password reset: your temporary code is 7391. It expires in 10 minutes.", "What is the code?", r"7391"),
    ("To-do: call the plumber, pay the electricity bill, buy a birthday card for Nora.",
     "Whose birthday card do I need?", r"Nora"),
    ("To-do: call the plumber, pay the electricity bill, buy a birthday card for Nora.", "Who do I need to call?",
     r"plumber"),
    (_FROG, "What colour is the frog?", r"orange"),
    (_FROG, "Where was the frog found?", r"Chile|Andes"),
    ("Weather today: sunny in the morning, rain after 4 pm, high of 18 degrees.", "Will it rain today?",
     r"\byes\b|rain"),
    ("Weather today: sunny in the morning, rain after 4 pm, high of 18 degrees.", "What is the highest temperature?",
     r"\b18\b|eighteen"),
    ("Invoice 2291: 3 hours of consulting at 80 euros per hour, total 240 euros, due by June 30.",
     "What is the total of the invoice?", r"240"),
)  # fmt: skip

_KNOWLEDGE = (
    ("What is the capital of France?", r"Paris"), ("What is the capital of Japan?", r"Tokyo"),
    ("Which is the largest planet in the solar system?", r"Jupiter"), ("How many legs does a spider have?",
    r"\b(8|eight)\b"), ("At what temperature in Celsius does water freeze?", r"\b0\b|zero"),
    ("What colour are ripe bananas?", r"yellow"), ("What is a baby cat called?", r"kitten"),
    ("How many days are in a week?", r"\b(7|seven)\b"), ("What do bees make?", r"honey"),
    ("Which animal says moo?", r"\bcows?\b"), ("How many continents are there?", r"\b(7|seven)\b"),
    ("What is the tallest animal?", r"giraffe"), ("What language is spoken in Brazil?", r"Portuguese"),
    ("Which gas do plants take in from the air?", r"carbon dioxide|CO2"),
    ("At what temperature in Celsius does water boil?", r"\b100\b|hundred"),
    ("What is the largest ocean?", r"Pacific"), ("Who wrote Romeo and Juliet?", r"Shakespeare"),
    ("How many hours are in a day?", r"\b24\b|twenty-four"), ("What is H2O?", r"water"),
    ("What is the chemical symbol for gold?", r"\bAu\b"),
)  # fmt: skip

_VOICE = (
    ("Hey, what's the capital of Italy?", r"Rome"), ("Quick question. How many legs does a dog have?",
    r"\b(4|four)\b"), ("What do you call a baby dog?", r"pupp"), ("Um, which planet is closest to the sun?",
    r"Mercury"), ("I'm Dana. Can you say my name back to me?", r"\bDana\b"),
    ("What colour is the sky on a clear day?", r"blue"), ("How many minutes are in an hour?", r"\b60\b|sixty"),
    ("Tell me, what's frozen water called?", r"\bice\b"), ("My son is called Arlo. What's my son's name?",
    r"\bArlo\b"), ("Which animal is known as the king of the jungle?", r"\blions?\b"),
    ("What's the opposite of hot?", r"cold"), ("Which red fruit is ketchup made from?", r"tomato"),
)  # fmt: skip


def _numbered(category: str, rows) -> list[Item]:
    return [Item(id=f"{category}-{index + 1:02d}", category=category, tune=index % 3 == 0, **row)
            for index, row in enumerate(rows)]  # fmt: skip


def items() -> list[Item]:
    distances = [0] * 10 + [2] * 10 + [7] * 10  # fillers between the fact and its question: 1, 3, 8 turns back
    conversation = [{"told": (fact, *FILLERS[:between]), "question": question, "accept": accept}
                    for (fact, question, accept), between in zip(_CONVERSATION, distances)]  # fmt: skip
    return [
        *_numbered("conversation", conversation),
        *_numbered("image", [{"image": i, "question": q, "accept": a, "label": lb} for i, q, a, lb in _IMAGE]),
        *_numbered("memory", [{"remembered": r, "question": q, "accept": a} for r, q, a in _MEMORY]),
        *_numbered("piped", [{"context": c, "question": q, "accept": a} for c, q, a in _PIPED]),
        *_numbered("knowledge", [{"question": q, "accept": a} for q, a in _KNOWLEDGE]),
        *_numbered("voice", [{"question": q, "accept": a} for q, a in _VOICE]),
    ]


def turns_back(item: Item) -> int:
    """How many turns before the question its fact was told (conversation items)."""
    return len(item.told)
