"""The closed world a tiny speech LM can learn: small-number arithmetic and a few fact templates.

Everything is spelled in lower-case words (no digits, no punctuation) so that text tokens, TTS input
and ASR transcripts all share one surface form. Each fact is an `Item` with a `key` naming the
combination (``plus:7:4``, ``capital:france``), which is what the corpus holds out across splits;
the wording of the question (its template) is not part of the key.
"""
from __future__ import annotations

from dataclasses import dataclass

NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
MAX_NUMBER = len(NUMBER_WORDS) - 1

COLORS = {
    "a banana": "yellow", "the sky": "blue", "grass": "green", "snow": "white", "coal": "black",
    "a tomato": "red", "an orange": "orange", "a lemon": "yellow", "a carrot": "orange",
    "a strawberry": "red", "a frog": "green", "milk": "white", "the sea": "blue", "a crow": "black",
    "a plum": "purple", "chocolate": "brown", "a pumpkin": "orange", "a leaf": "green",
}
ANIMAL_SOUNDS = {
    "a cow": "moo", "a dog": "woof", "a cat": "meow", "a sheep": "baa", "a pig": "oink",
    "a duck": "quack", "a horse": "neigh", "a snake": "hiss", "a lion": "roar", "an owl": "hoot",
    "a bee": "buzz", "a mouse": "squeak", "a hen": "cluck", "a crow": "caw",
}
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
CAPITALS = {
    "france": "paris", "germany": "berlin", "italy": "rome", "spain": "madrid", "japan": "tokyo",
    "china": "beijing", "russia": "moscow", "egypt": "cairo", "canada": "ottawa",
    "england": "london", "ireland": "dublin", "greece": "athens", "portugal": "lisbon",
    "norway": "oslo", "sweden": "stockholm", "poland": "warsaw", "austria": "vienna",
    "kenya": "nairobi", "peru": "lima", "cuba": "havana",
}

# Question wordings per topic; the answer sentence is the same for every wording.
QUESTION_TEMPLATES = {
    "plus": ("what is {a} plus {b}", "how much is {a} plus {b}"),
    "minus": ("what is {a} minus {b}", "how much is {a} minus {b}"),
    "times": ("what is {a} times {b}", "how much is {a} times {b}"),
    "color": ("what color is {x}", "tell me the color of {x}"),
    "sound": ("what does {x} say", "what sound does {x} make"),
    "day_after": ("what day comes after {x}", "which day is after {x}"),
    "day_before": ("what day comes before {x}", "which day is before {x}"),
    "capital": ("what is the capital of {x}", "which city is the capital of {x}"),
}
TOPICS = tuple(QUESTION_TEMPLATES)
COUNT_TEMPLATES = ("count from {a} to {b}", "count down from {a} to {b}")
COUNT_LENGTHS = range(3, 10)  # numbers said per count
ARITHMETIC_TOPICS = ("plus", "minus", "times")


@dataclass(frozen=True)
class Item:
    """One fact of the world; `questions` holds every wording, `answer` the single answer sentence."""

    key: str
    topic: str
    questions: tuple[str, ...]
    answer: str


def _arithmetic() -> list[Item]:
    items = []
    for a in range(MAX_NUMBER + 1):
        for b in range(MAX_NUMBER + 1):
            for op, result in (("plus", a + b), ("minus", a - b), ("times", a * b)):
                if not 0 <= result <= MAX_NUMBER:
                    continue
                if op == "times" and not (1 <= a <= 10 and 1 <= b <= 10):
                    continue
                wa, wb = NUMBER_WORDS[a], NUMBER_WORDS[b]
                questions = tuple(t.format(a=wa, b=wb) for t in QUESTION_TEMPLATES[op])
                answer = f"{wa} {op} {wb} is {NUMBER_WORDS[result]}"
                items.append(Item(f"{op}:{a}:{b}", op, questions, answer))
    return items


def _facts() -> list[Item]:
    items = []

    def add(topic: str, name: str, subject: str, answer: str) -> None:
        questions = tuple(t.format(x=subject) for t in QUESTION_TEMPLATES[topic])
        items.append(Item(f"{topic}:{name.replace(' ', '_')}", topic, questions, answer))

    for thing, color in COLORS.items():
        add("color", thing.split()[-1], thing, f"{thing} is {color}")
    for animal, sound in ANIMAL_SOUNDS.items():
        add("sound", animal.split()[-1], animal, f"{animal} says {sound}")
    for i, day in enumerate(DAYS):
        add("day_after", day, day, f"the day after {day} is {DAYS[(i + 1) % 7]}")
        add("day_before", day, day, f"the day before {day} is {DAYS[(i - 1) % 7]}")
    for country, city in CAPITALS.items():
        add("capital", country, country, f"the capital of {country} is {city}")
    return items


def build_world() -> list[Item]:
    """All items, in a fixed order (arithmetic first, then facts), independent of any seed."""
    return _arithmetic() + _facts()


def counting_runs() -> list[tuple[str, str]]:
    """Every (request, answer) that counts up or down through 3-9 consecutive numbers of the world, e.g.
    ("count down from seven to three", "seven six five four three"). They state no sum or difference, so
    they hold out nothing, and they teach the numbers' order, which an unseen sum needs (reports/counting_experiment.md:
    in text-only runs the seed, not counting, decided held-out accuracy)."""
    runs = []
    for a in range(MAX_NUMBER + 1):
        for b in range(MAX_NUMBER + 1):
            if abs(b - a) + 1 not in COUNT_LENGTHS:
                continue
            down = b < a
            words = NUMBER_WORDS[a:b + 1] if not down else NUMBER_WORDS[b:a + 1][::-1]
            request = COUNT_TEMPLATES[down].format(a=NUMBER_WORDS[a], b=NUMBER_WORDS[b])
            runs.append((request, " ".join(words)))
    return runs


def chat_lines(items: list[Item]) -> list[str]:
    """Plain statements about the world (the answers), e.g. for a text LM or the sphinx domain LM."""
    return [item.answer for item in items]
