"""eSpeak NG's English phoneme mnemonics folded onto 39 ARPAbet phones plus silence, and per-frame labels.

The inventory :data:`PHONES` is the CMU / TIMIT-39 set (``AA AE AH ... ZH``, the usual phone-recognition
classes) and ``sil``, 40 names in sorted order; a phone id is a position in it. The folding rules:

* stress and syllable marks (``'``, ``,``, ``%``, ``=``) are dropped: ``'aU`` -> ``aU`` -> ``AW``;
* every pause (``_``, ``_:``, ``_!``, ...) is ``sil``, as is audio before the first phoneme and after the end;
* accent variants fold onto one phone: the flap ``t#``, ``t2``, dental ``t[`` and the glottal stop ``?`` are
  ``T``; the schwas ``@ @2 @5 @- a#`` and ``V`` are ``AH``; ``3 3:`` are ``ER``; syllabic ``@L`` / ``n-`` are
  ``L`` / ``N``; the glide ``;`` (piano, Leo) is ``Y``; centring diphthongs keep their first vowel
  (``i@`` -> ``IH``, ``e@`` -> ``EH``, ``U@`` -> ``UH``, ``A@`` -> ``AA``, ``O@ o@`` -> ``AO``);
* a mnemonic not in the table (none in the eight English accents the builder uses) has no label: ``-1``.

A phone lasts from its event's start to the next event's start; frame ``f`` (10 ms) takes the phone at its
centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PHONES", "SILENCE", "frame_labels", "phone_of"]

SILENCE = "sil"

_TABLE = {
    # consonants
    "p": "P", "b": "B", "t": "T", "t#": "T", "t2": "T", "t[": "T", "?": "T", "d": "D", "d#": "D", "k": "K",
    "g": "G", "f": "F", "v": "V", "T": "TH", "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH",
    "tS": "CH", "dZ": "JH", "m": "M", "n": "N", "n-": "N", "N": "NG", "l": "L", "@L": "L", "r": "R", "r-": "R",
    "w": "W", "j": "Y", ";": "Y",
    # vowels
    "@": "AH", "@2": "AH", "@5": "AH", "@-": "AH", "a#": "AH", "V": "AH", "VR": "AH", "3": "ER", "3:": "ER",
    "a": "AE", "aa": "AE", "A:": "AA", "A@": "AA", "0": "AA", "O:": "AO", "O@": "AO", "O2": "AO", "o@": "AO",
    "OI": "OY", "I": "IH", "I2": "IH", "I#": "IH", "IR": "IH", "i@": "IH", "i@3": "IH", "i": "IY", "i:": "IY",
    "E": "EH", "e@": "EH", "eI": "EY", "aI": "AY", "aI2": "AY", "aI3": "AY", "aI@": "AY", "aU": "AW",
    "oU": "OW", "U": "UH", "U@": "UH", "u:": "UW",
}

#: the 40 frame classes, sorted: 39 ARPAbet phones and "sil"
PHONES: tuple[str, ...] = tuple(sorted({*_TABLE.values(), SILENCE}))
_INDEX = {name: i for i, name in enumerate(PHONES)}


def phone_of(mnemonic: str) -> str | None:
    """The inventory phone of an eSpeak mnemonic (``"'aU"`` -> ``"AW"``, ``"_:"`` -> ``"sil"``), or None."""
    bare = mnemonic.lstrip("',%=")
    if bare.startswith("_"):
        return SILENCE
    return _TABLE.get(bare)


def frame_labels(phonemes: Sequence[tuple[str, float]], num_frames: int, *, offset_ms: float = 0.0,
                 end_ms: float | None = None, frame_ms: float = 10.0) -> np.ndarray:
    """(num_frames,) int64 phone ids of frames that start ``offset_ms`` into the audio.

    ``phonemes`` are (mnemonic, start ms) in time order; frame ``f`` covers ``offset_ms + f * frame_ms`` to the
    next frame and takes the phone sounding at its centre: ``sil`` before the first phoneme and at or after
    ``end_ms`` (the audio's end; padding), ``-1`` for a mnemonic outside the table."""
    centres = offset_ms + (np.arange(num_frames) + 0.5) * frame_ms
    starts = np.array([start for _, start in phonemes], dtype=np.float64)
    ids = np.array([_INDEX.get(phone_of(name) or "", -1) for name, _ in phonemes] + [_INDEX[SILENCE]],
                   dtype=np.int64)  # last entry: before the first phoneme
    which = np.searchsorted(starts, centres, side="right") - 1  # -1 = before the first phoneme
    labels = ids[which]
    if end_ms is not None:
        labels[centres >= end_ms] = _INDEX[SILENCE]
    return labels
