"""Synthetic speakers: an eSpeak English accent, a voice variant and a base pitch, pitch range and rate.

:func:`make_speakers` draws ``n`` speakers from a seed. Each is a distinct (accent, variant) pair; while
there are unused variants, each speaker gets a variant of its own (there are 37, so with up to 37 speakers
no two share a voice timbre; the accent, one of 8 English ones, then varies too). On top, each speaker has
its own base pitch (eSpeak 0..100 scale, drawn in 25..75), pitch range (30..80) and rate (140..200 words
per minute). :meth:`Speaker.utterance_params` jitters these per utterance, as a person never says two
sentences alike: pitch +-8, range +-10, rate +-10 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ACCENTS", "VARIANTS", "Speaker", "make_speakers"]

#: English accents of eSpeak NG (language names)
ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-us-nyc")
#: human-sounding voice variants (the robotic, whispering and joke ones are left out), 14 female, 23 male
VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Annie", "Alicia", "Andrea", "aunty", "belinda", "grandma", "linda",
            "steph", "anika",
            "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "croak", "Andy", "Denis", "Diogo", "Henrique",
            "Lee", "antonio", "grandpa", "john", "michel", "miguel", "paul", "sandro", "travis", "klatt3")


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: ``voice`` is ``accent+variant``; pitch and range on eSpeak's 0..100 scale."""

    voice: str
    pitch: int
    pitch_range: int
    rate: int  # words per minute

    @property
    def name(self) -> str:
        return f"{self.voice} pitch {self.pitch} range {self.pitch_range} rate {self.rate}"

    def utterance_params(self, rng: np.random.Generator) -> dict[str, int]:
        """This speaker's voice for one utterance: base values jittered, as keyword arguments of ``synthesize``."""
        return {"pitch": int(np.clip(self.pitch + rng.integers(-8, 9), 0, 100)),
                "pitch_range": int(np.clip(self.pitch_range + rng.integers(-10, 11), 0, 100)),
                "rate": int(np.clip(round(self.rate * rng.uniform(0.9, 1.1)), 80, 450))}


def make_speakers(n: int, seed: int) -> list[Speaker]:
    """``n`` distinct speakers (at most ``len(ACCENTS) * len(VARIANTS)``), a function of (n, seed)."""
    limit = len(ACCENTS) * len(VARIANTS)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"make_speakers: `n` must be an integer in [1, {limit}], got {n!r}")
    rng = np.random.default_rng(seed)
    pairs = [(a, v) for v in VARIANTS for a in ACCENTS]
    order = [pairs[i] for i in np.argsort(rng.random(len(pairs)), kind="stable")]
    chosen: list[tuple[str, str]] = []
    used: set[str] = set()
    for accent, variant in order:  # first pass: a variant of its own for each speaker
        if len(chosen) < n and variant not in used:
            chosen.append((accent, variant))
            used.add(variant)
    chosen += [pair for pair in order if pair not in chosen][: n - len(chosen)]
    return [Speaker(f"{accent}+{variant}", int(rng.integers(25, 76)), int(rng.integers(30, 81)),
                    int(rng.integers(140, 201))) for accent, variant in chosen]
