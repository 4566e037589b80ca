"""The short-caption grammar of ``speech-text``: digit words in every caption, balanced digits, distinct captions."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from contrastkit.data.speech.captions import DIGITS, make_captions, plural
from contrastkit.data.speech.sentences import ADJECTIVES, NAMES, NOUNS


def _words(caption: str) -> list[str]:
    return re.findall(r"[a-z']+", caption.lower())


def test_every_caption_is_short_and_holds_a_digit_word() -> None:
    captions = make_captions(3000, 0)
    assert len(set(captions)) == 3000
    for caption in captions:
        words = _words(caption)
        assert 5 <= len(words) <= 7, caption
        assert any(w in DIGITS for w in words), caption
        assert caption[0].isupper() and caption.endswith(".")
        # no word that sounds like a digit but is not one
        assert not {"to", "too", "for", "won", "ate"} & set(words), caption


def test_the_ten_digits_are_about_equally_frequent() -> None:
    counts = Counter(w for c in make_captions(5000, 1) for w in _words(c) if w in DIGITS)
    total = sum(counts.values())
    assert set(counts) == set(DIGITS) and total >= 5000
    assert all(0.085 < counts[d] / total < 0.115 for d in DIGITS), counts


def test_counted_nouns_agree_with_their_number() -> None:
    singular, plurals = set(NOUNS), {plural(n) for n in NOUNS}
    seen = 0
    for caption in make_captions(2000, 2):
        match = re.fullmatch(r"(\w+) bought (\w+) (\w+) (\w+)\.", caption)
        if match:
            name, digit, adjective, noun = match.groups()
            assert name in NAMES and digit in DIGITS and adjective in ADJECTIVES
            assert noun in (singular if digit == "one" else plurals), caption
            seen += 1
    assert seen > 100


def test_plural_forms() -> None:
    assert [plural(n) for n in ("cat", "cherry", "key", "sheep", "fish", "potato", "glass", "sandwich", "box",
                                "young potato", "red cherry")] == \
        ["cats", "cherries", "keys", "sheep", "fish", "potatoes", "glasses", "sandwiches", "boxes", "young potatoes",
         "red cherries"]


def test_deterministic_distinct_and_excluding() -> None:
    assert make_captions(50, 3) == make_captions(50, 3) != make_captions(50, 4)
    assert make_captions(20, [3, 1]) == make_captions(40, [3, 1])[:20]  # a longer list extends a shorter one
    held_out = make_captions(200, [0, 1])
    training = make_captions(3000, [0, 2], exclude=held_out)
    assert len(set(training)) == 3000 and not set(training) & set(held_out)
    # two names or two nouns of one caption differ
    assert not any(re.fullmatch(r"(\w+) met \1 at .*", c) for c in training)
    with pytest.raises(ValueError, match="`count` must be an integer >= 0, got -1"):
        make_captions(-1, 0)
