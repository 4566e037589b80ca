"""Short English captions with digit words, drawn from a seed: the sentences of the ``speech-text`` dataset.

Every caption has 5 to 8 words and holds at least one of the ten digit words ``zero`` .. ``nine``
(:data:`DIGITS`); each template draws its one or two digits uniformly, so over many captions the ten digits are
about equally frequent. Names, nouns, adjectives and places (the word lists of
:mod:`contrastkit.data.speech.sentences`, plus a few streets and vehicles here) fill the other slots, so that a
few hundred captions differ in their content words, not only in their digits:

* ``Anna bought seven red apples.`` (a purchase)
* ``Ben has three cats and one dog.`` (two counts)
* ``The golden piano is in room four.`` (a room)
* ``Clara lives at number nine Mill Lane.`` (an address)
* ``Henry counted two turtles near the lake.`` (a count at a place)
* ``Rosa met Victor at six o'clock.`` (a time)
* ``Five hungry goats visited the market.`` (a number of things, first)
* ``The blue tram left platform zero.`` (a departure)

No template uses a word that sounds like a digit (``to``, ``too``, ``for``, ``won``, ``ate``), so a digit heard
is a digit written. Nothing here is shared with :func:`~contrastkit.data.speech.sentences.make_sentences` (whose
output the ``speech`` cache depends on); only its word lists are read.

:func:`make_captions` returns distinct captions, a function of (count, seed, exclude) only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from contrastkit.data.speech.sentences import ADJECTIVES, NAMES, NOUNS, PLACES, PREPOSITIONS, draw_distinct

__all__ = ["DIGITS", "make_captions", "plural"]

#: the ten digit words, index = value
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STREETS = ("Mill Lane", "Oak Street", "King Road", "Church Street", "Station Road", "Park Avenue", "High Street",
           "Bridge Street", "Rose Lane", "Hill Road", "Green Street", "Castle Road", "Market Street", "Elm Avenue")
VEHICLES = ("train", "bus", "tram", "coach", "ferry", "wagon", "truck", "rocket")
# verbs whose past tense sounds like no digit, for "<things> <verb> <place>"
PLACE_VERBS = ("visited", "left", "reached", "filled", "entered", "crossed", "passed", "found", "liked", "cleaned")
_SAME_PLURAL = frozenset({"sheep", "fish"})
_ES_PLURAL = frozenset({"potato", "tomato"})


def plural(phrase: str) -> str:
    """The English plural of a noun used here, or of a phrase ending in one (``cherry`` -> ``cherries``,
    ``sheep`` -> ``sheep``, ``young potato`` -> ``young potatoes``)."""
    head, _, noun = phrase.rpartition(" ")
    return f"{head} {_plural(noun)}" if head else _plural(noun)


def _plural(noun: str) -> str:
    if noun in _SAME_PLURAL:
        return noun
    if noun in _ES_PLURAL or noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


_Pick = Callable[[tuple[str, ...]], str]


def _counted(digit: str, noun: str) -> str:
    """``one cat`` / ``seven cats`` / ``zero cats``."""
    return f"{digit} {noun if digit == 'one' else plural(noun)}"


def _purchase(pick: _Pick) -> str:
    return f"{pick(NAMES)} bought {_counted(pick(DIGITS), pick(ADJECTIVES) + ' ' + pick(NOUNS))}."


def _other(pick: _Pick, options: tuple[str, ...], than: str) -> str:
    """A pick from ``options`` other than ``than`` (``Anna met Ben``, never ``Anna met Anna``)."""
    word = pick(options)
    while word == than:
        word = pick(options)
    return word


def _two_counts(pick: _Pick) -> str:
    name, noun = pick(NAMES), pick(NOUNS)
    return f"{name} has {_counted(pick(DIGITS), noun)} and {_counted(pick(DIGITS), _other(pick, NOUNS, noun))}."


def _room(pick: _Pick) -> str:
    return f"the {pick(ADJECTIVES)} {pick(NOUNS)} is in room {pick(DIGITS)}."


def _address(pick: _Pick) -> str:
    return f"{pick(NAMES)} lives at number {pick(DIGITS)} {pick(STREETS)}."


def _count_at(pick: _Pick) -> str:
    return f"{pick(NAMES)} counted {_counted(pick(DIGITS), pick(NOUNS))} {pick(PREPOSITIONS)} {pick(PLACES)}."


def _meeting(pick: _Pick) -> str:
    name = pick(NAMES)
    return f"{name} met {_other(pick, NAMES, name)} at {pick(DIGITS)} o'clock."


def _things_first(pick: _Pick) -> str:
    return f"{_counted(pick(DIGITS), pick(ADJECTIVES) + ' ' + pick(NOUNS))} {pick(PLACE_VERBS)} {pick(PLACES)}."


def _departure(pick: _Pick) -> str:
    return f"the {pick(ADJECTIVES)} {pick(VEHICLES)} left platform {pick(DIGITS)}."


_TEMPLATES = (_purchase, _two_counts, _room, _address, _count_at, _meeting, _things_first, _departure)


def make_captions(count: int, seed: int | list[int], exclude: Collection[str] = ()) -> list[str]:
    """``count`` distinct captions (none in ``exclude``), drawn from ``np.random.default_rng(seed)``.

    The grammar gives over 10**7 captions, so draws end quickly for the tens of thousands a dataset needs."""
    return draw_distinct(_TEMPLATES, count, seed, exclude, "make_captions")
