"""Text as a voice should read it: numbers, money, times, units, abbreviations and symbols spelled out, then cut
into sentences so speech can start after the first one.

Every backend gets words: espeak-ng (which Piper's phonemizer is) reads "$20" as "dollar twenty" and stops a
sentence after "Dr.", and Coqui's voices read digits poorly, so the spelling-out is done once, here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from core.language.reply_filter import clean_reply

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}  # fmt: skip


def number_words(n: int) -> str:
    """12345 -> "twelve thousand three hundred forty-five"."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return _ONES[n // 100] + " hundred" + (" " + number_words(n % 100) if n % 100 else "")
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            return number_words(n // value) + " " + name + (" " + number_words(rest) if rest else "")
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    """21 -> "twenty-first"."""
    words = number_words(n)
    head, sep, last = words.rpartition("-" if "-" in words.split()[-1] else " ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_words(n: int) -> str:
    """1999 -> "nineteen ninety-nine", 2005 -> "two thousand five", 1900 -> "nineteen hundred"."""
    if 2000 <= n < 2010 or n % 1000 == 0:
        return number_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return number_words(high) + " hundred"
    return number_words(high) + (" oh " + _ONES[low] if low < 10 else " " + number_words(low))


def decimal_words(text: str) -> str:
    """"3.14" -> "three point one four"; "1,250" -> "one thousand two hundred fifty"."""
    if text.startswith("-"):
        return "minus " + decimal_words(text[1:])
    whole, _, fraction = text.replace(",", "").partition(".")
    words = number_words(int(whole or "0"))
    return words + (" point " + " ".join(_ONES[int(d)] for d in fraction) if fraction else "")


_CURRENCIES = {"$": ("dollar", "cent"), "€": ("euro", "cent"), "£": ("pound", "penny")}
_UNITS = {
    "kg": "kilogram", "g": "gram", "mg": "milligram", "lb": "pound", "lbs": "pound", "oz": "ounce",
    "km": "kilometre", "m": "metre", "cm": "centimetre", "mm": "millimetre", "mi": "mile", "ft": "foot",
    "in": "inch", "l": "litre", "ml": "millilitre", "kb": "kilobyte", "mb": "megabyte", "gb": "gigabyte",
    "tb": "terabyte", "kbps": "kilobit per second", "mbps": "megabit per second", "hz": "hertz",
    "khz": "kilohertz", "mhz": "megahertz", "ghz": "gigahertz", "ms": "millisecond", "s": "second",
    "min": "minute", "h": "hour", "km/h": "kilometre per hour", "mph": "mile per hour", "kw": "kilowatt",
    "w": "watt", "v": "volt", "°c": "degree Celsius", "°f": "degree Fahrenheit",
}  # fmt: skip
_PLURALS = {"foot": "feet", "inch": "inches", "hertz": "hertz", "penny": "pence"}
_ABBREVIATIONS = {
    "Dr.": "Doctor", "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Prof.": "Professor", "St.": "Saint",
    "Jr.": "Junior", "Sr.": "Senior", "vs.": "versus", "etc.": "et cetera", "e.g.": "for example",
    "i.e.": "that is", "approx.": "approximately", "No.": "number", "Mt.": "Mount", "Ave.": "Avenue",
}  # fmt: skip
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number ",
            "°": " degrees ", "×": " times ", "/": " slash "}  # fmt: skip


def _plural(noun: str, amount: str) -> str:
    if amount in ("one", "minus one"):
        return noun
    words = noun.split(" ", 1)  # "kilometre per hour" -> "kilometres per hour"
    head = _PLURALS.get(words[0], words[0] + "s")
    return " ".join([head, *words[1:]])


def _money(match: re.Match) -> str:
    unit, cents_name = _CURRENCIES[match["currency"]]
    amount = match["amount"].replace(",", "")
    whole, _, cents = amount.partition(".")
    scale = f" {match['scale']}" if match["scale"] else ""
    if scale:  # "$2.5 million" -> "two point five million dollars"
        return f"{decimal_words(amount)}{scale} {unit}s"
    words = number_words(int(whole or "0"))
    spoken = f"{words} {_plural(unit, words)}"
    if cents and int(cents.ljust(2, "0")[:2]):
        cent_words = number_words(int(cents.ljust(2, "0")[:2]))
        spoken += f" and {cent_words} {_plural(cents_name, cent_words)}"
    return spoken


def _time(match: re.Match) -> str:
    hours, minutes = int(match["hours"]), int(match["minutes"])
    if minutes == 0:
        spoken = f"{number_words(hours)} o'clock"
    elif minutes < 10:
        spoken = f"{number_words(hours)} oh {number_words(minutes)}"
    else:
        spoken = f"{number_words(hours)} {number_words(minutes)}"
    raw = match["suffix"] or ""
    suffix = raw.replace(".", "").upper()
    # "p.m." at the end of a sentence carries the sentence's full stop too: keep it.
    return spoken + (" " + " ".join(suffix) if suffix else "") + ("." if raw.endswith(".") else "")


def _measure(match: re.Match) -> str:
    amount = decimal_words(match["amount"])
    unit = _UNITS[match["unit"].lower()]
    return f"{amount} {_plural(unit, amount)}"


def _plain_number(match: re.Match) -> str:
    text = match.group()
    digits = text.replace(",", "")
    if "." not in digits and "," not in text and len(digits) == 4 and 1100 <= int(digits) <= 2099:
        return year_words(int(digits))  # a four-digit number without a comma reads as a year
    return decimal_words(text)


_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_RULES: tuple[tuple[re.Pattern, object], ...] = (
    (re.compile(r"(?P<currency>[$€£])\s?(?P<amount>" + _NUMBER + r")(?:\s?(?P<scale>thousand|million|billion))?"),
     _money),
    (re.compile(r"\b(?P<hours>[01]?\d|2[0-3]):(?P<minutes>[0-5]\d)\b(?:\s?(?P<suffix>[ap]\.?m\.?))?", re.I), _time),
    (re.compile(r"(?P<amount>(?<![\w.])-?(?:" + _NUMBER + r"))\s?(?P<unit>" + "|".join(
        sorted((re.escape(u) for u in _UNITS), key=len, reverse=True)) + r")(?![\w/])", re.I), _measure),
    (re.compile(r"\b(?P<n>\d+)(?:st|nd|rd|th)\b"), lambda m: ordinal_words(int(m["n"]))),
    (re.compile(r"(?P<n>" + _NUMBER + r")%"), lambda m: decimal_words(m["n"]) + " percent"),
    (re.compile(r"\b\d+(?:\.\d+){2,}\b"), lambda m: " point ".join(number_words(int(p)) for p in m.group().split("."))),
    (re.compile(r"(?<![\w.])-(?=\d)"), lambda m: "minus "),
    (re.compile(_NUMBER), _plain_number),
)  # fmt: skip
_ABBREVIATION = re.compile("|".join(re.escape(a) for a in sorted(_ABBREVIATIONS, key=len, reverse=True)))
_URL = re.compile(r"https?://\S+|www\.\S+")
_SPEAKABLE = re.compile(r"[^\W_]")  # a letter or digit of any script

# Markdown a voice should not read: the text of a link or an image (not its address), a heading or a list item as a
# sentence of its own (not "number number Steps", "plus flour"), fences and rules not at all.
_CODE_FENCE = re.compile(r"^[ \t]*(?:```|~~~).*$", re.MULTILINE)  # with its language: "```python"
_RULE_LINE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*[-*+•][ \t]+", re.MULTILINE)
_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"\n]*\")?\)")
# Emoji (espeak-ng says "grinning face" for one), their joiners, skin tones, flags and variation selectors.
_EMOJI = re.compile(
    "[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u2300-\u23FF\u3030\u303D\u3297\u3299\uFE0E\uFE0F"
    "\u200D\u20E3\U000E0020-\U000E007F]+"
)
# Emoticons standing alone as words: ":)" ";-)" ":D" ":'(" "<3" "^_^" "xD", and the shrug.
_EMOTICON = re.compile(
    r"(?<!\S)(?:[:;=][-'^o]?[)(\][DPpOo/\\|*]+|<\/?3+|\^_*\^|[xX]D+|¯\\_\(ツ\)_/¯)(?=[\s.,!?]|$)"
)
_EMPHASIS = re.compile(r"(?<!\w)[*_~`]+(?=\w)|(?<=\w)[*_~`]+(?!\w)")  # markers on a word's edge, not snake_case
_TIMES = re.compile(r"(?<=\d)[ \t]*\*[ \t]*(?=\d)")  # "2 * 3": the asterisk multiplies


def _markdown_to_speech(text: str) -> str:
    text = _CODE_FENCE.sub("", text)
    text = _RULE_LINE.sub("", text)  # before bullets: "* * *" is no list item
    text = _HEADING.sub(lambda m: f"\n\n{m[1]}\n\n", text)
    text = _BULLET.sub("\n", text)  # with the line break before it, a paragraph break: sentences() splits there
    return _LINK.sub(lambda m: m[1], text)


def normalize(text: str) -> str:
    """The words a voice should say for ``text``: no stage directions ("*smiles*"), Markdown, emoji or emoticons."""
    text = _markdown_to_speech(clean_reply(text))
    text = _EMOJI.sub(" ", _EMOTICON.sub(" ", text))  # before "<3" could read as "three"
    text = _TIMES.sub(" × ", text)
    text = _URL.sub(" a link ", text)
    text = _ABBREVIATION.sub(lambda m: _ABBREVIATIONS[m.group()], text)
    for pattern, spoken in _RULES:
        text = pattern.sub(spoken, text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = _EMPHASIS.sub("", text)  # "**Bold**," -> "Bold,"
    text = re.sub(r"[*_`#>|~^\[\]{}<]+", " ", text)  # Markdown and code punctuation is not read aloud
    return re.sub(r"[ \t]+", " ", text).strip()


def has_words(text: str) -> bool:
    return bool(_SPEAKABLE.search(text))


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n\s*\n+|\n(?=\s*(?:[-*•]|\d+\.)\s)")


def sentences(text: str, longest: int = 400) -> Iterator[str]:
    """The sentences of ``text`` (already normalized), each short enough to synthesize at once: a sentence
    longer than ``longest`` characters is cut at its commas or, failing those, its spaces."""
    for sentence in _SENTENCE_END.split(text):
        sentence = " ".join(sentence.split())
        if not has_words(sentence):
            continue
        while len(sentence) > longest:
            cut = max(sentence.rfind(", ", 0, longest), sentence.rfind("; ", 0, longest))
            cut = cut + 1 if cut > longest // 4 else sentence.rfind(" ", 0, longest)
            cut = cut if cut > 0 else longest
            yield sentence[:cut].strip()
            sentence = sentence[cut:].strip()
        if has_words(sentence):
            yield sentence
