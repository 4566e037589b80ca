"""English sentences drawn from a seed: a small grammar over fixed word lists (no corpus, no download).

Each sentence follows one of a few templates (statements, questions, a counted purchase, a journey), filled
with words drawn uniformly from lists of names, nouns, adjectives, past-tense verbs, adverbs, places and
numbers; the lists hold several hundred words, so a few thousand sentences repeat few word sequences and no
sentence twice. :func:`make_sentences` returns distinct sentences, a function of (count, seed, exclude) only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np

__all__ = ["draw_distinct", "make_sentences"]

NAMES = ("Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Isabel", "Jack", "Kate", "Leo",
         "Maria", "Nathan", "Olivia", "Peter", "Rosa", "Samuel", "Tina", "Victor", "Walter", "Yvonne", "Zoe",
         "Oscar", "Lucy", "Martin", "Nora", "Paul", "Ruth", "Simon", "Helen", "George", "Alice", "Thomas")
NOUNS = ("apple", "basket", "bicycle", "blanket", "bottle", "bridge", "bucket", "butter", "candle", "carpet",
         "castle", "cat", "chair", "cherry", "chicken", "clock", "cloud", "coat", "cookie", "cup", "desk",
         "doctor", "dog", "door", "dragon", "drum", "engine", "farmer", "feather", "fence", "fish", "flower",
         "forest", "garden", "glass", "goat", "guitar", "hammer", "hat", "horse", "island", "jacket", "kettle",
         "key", "kitchen", "ladder", "lamp", "letter", "lemon", "lion", "map", "mirror", "monkey", "mountain",
         "needle", "ocean", "onion", "orange", "painter", "paper", "pencil", "piano", "pillow", "pocket",
         "potato", "rabbit", "river", "robot", "rocket", "sailor", "sandwich", "shadow", "sheep", "shoe",
         "soldier", "spoon", "student", "sugar", "table", "teacher", "ticket", "tiger", "tomato", "towel",
         "tower", "train", "tree", "truck", "turtle", "umbrella", "valley", "violin", "wagon", "wallet",
         "window", "winter", "wizard", "zebra", "button", "camera", "pepper", "puzzle", "saddle", "thimble")
ADJECTIVES = ("big", "small", "old", "young", "red", "green", "blue", "yellow", "bright", "dark", "heavy",
              "light", "quiet", "noisy", "happy", "sad", "clever", "silly", "gentle", "angry", "tiny", "huge",
              "warm", "cold", "wet", "dry", "soft", "hard", "clean", "dirty", "strange", "famous", "lazy",
              "busy", "shiny", "rusty", "broken", "purple", "golden", "wooden", "sleepy", "hungry", "brave",
              "curious", "polite", "careful", "funny", "ancient", "modern", "crooked")
VERBS = ("carried", "painted", "dropped", "found", "washed", "opened", "closed", "kicked", "pushed", "pulled",
         "followed", "visited", "watched", "cleaned", "fixed", "built", "sold", "bought", "borrowed", "hid",
         "chased", "caught", "lifted", "packed", "counted", "wrapped", "tested", "moved", "touched", "noticed",
         "admired", "ignored", "measured", "repaired", "collected", "described", "carved", "folded", "shook",
         "bent", "threw", "held", "saw", "heard", "brought", "stole", "traded", "weighed", "polished", "rolled")
ADVERBS = ("slowly", "quickly", "quietly", "loudly", "carefully", "happily", "gently", "suddenly", "badly",
           "proudly", "secretly", "nervously", "easily", "rarely", "eagerly", "calmly", "boldly", "softly",
           "early", "again", "yesterday", "today", "twice", "at noon", "at night", "in the morning",
           "after lunch", "before dinner", "last week", "on Sunday")
PLACES = ("the market", "the station", "the harbour", "the library", "the museum", "the beach", "the farm",
          "the village", "the school", "the bakery", "the hospital", "the park", "the airport", "the castle",
          "the garage", "the theatre", "the office", "the zoo", "the church", "the factory", "the lake",
          "the hotel", "the bank", "the island", "the kitchen", "the cellar", "the attic", "the shop")
PREPOSITIONS = ("near", "behind", "under", "beside", "inside", "above", "outside", "across", "beyond", "below")
NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
           "fifteen", "twenty", "thirty", "forty", "fifty", "a hundred", "a dozen")
TRANSPORT = ("by train", "by bus", "by bicycle", "on foot", "by boat", "by car", "on a horse", "by plane")

_Pick = Callable[[tuple[str, ...]], str]


def _noun_phrase(pick: _Pick) -> str:
    return f"the {pick(ADJECTIVES)} {pick(NOUNS)}"


def _statement(pick: _Pick) -> str:
    subject = pick(NAMES) if pick(("name", "noun")) == "name" else _noun_phrase(pick)
    return f"{subject} {pick(VERBS)} {_noun_phrase(pick)} {pick(PREPOSITIONS)} {pick(PLACES)}."


def _with_adverb(pick: _Pick) -> str:
    return f"{pick(NAMES)} {pick(VERBS)} {_noun_phrase(pick)} {pick(ADVERBS)}."


def _question(pick: _Pick) -> str:
    return f"did {pick(NAMES)} see who {pick(VERBS)} {_noun_phrase(pick)} {pick(ADVERBS)}?"


def _purchase(pick: _Pick) -> str:
    return f"{pick(NAMES)} bought {pick(NUMBERS)} {pick(ADJECTIVES)} {pick(NOUNS)}s at {pick(PLACES)}."


def _journey(pick: _Pick) -> str:
    return f"{pick(NAMES)} went to {pick(PLACES)} {pick(TRANSPORT)} with {_noun_phrase(pick)}."


_TEMPLATES = (_statement, _with_adverb, _question, _purchase, _journey)


def make_sentences(count: int, seed: int, exclude: Collection[str] = ()) -> list[str]:
    """``count`` distinct sentences (none in ``exclude``), drawn from ``np.random.default_rng(seed)``.

    Draws continue until ``count`` new sentences are found; the grammar can produce far more than a
    dataset needs (over 10**9), so this ends quickly."""
    return draw_distinct(_TEMPLATES, count, seed, exclude, "make_sentences")


def draw_distinct(templates: Sequence[Callable[[_Pick], str]], count: int, seed: int | list[int],
                  exclude: Collection[str], where: str) -> list[str]:
    """``count`` distinct texts (none in ``exclude``): each draw picks a template, then the template its words, all
    from ``np.random.default_rng(seed)``; the first letter is capitalised. ``where`` names the caller in errors."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"{where}: `count` must be an integer >= 0, got {count!r}")
    rng = np.random.default_rng(seed)

    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    seen = set(exclude)
    out: list[str] = []
    while len(out) < count:
        text = templates[int(rng.integers(len(templates)))](pick)
        text = text[0].upper() + text[1:]
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
