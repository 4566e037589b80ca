"""A ctypes binding to eSpeak NG as shipped by the pip package ``espeakng-loader`` (never a system library).

One call, :func:`synthesize`, speaks one text with one voice and returns int16 samples at 22,050 Hz together
with the phoneme events eSpeak reports (each phoneme's name and start in ms from the start of the audio).

Rules:

* The shared library and its ``espeak-ng-data`` folder come from ``espeakng_loader.get_library_path()`` /
  ``get_data_path()``; a missing package or a library that does not load raises :class:`EspeakError`.
* eSpeak is initialised once per process (``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data,
  PHONEME_EVENTS | DONT_EXIT)``) and is not thread-safe: every call holds one lock, so synthesis is serial.
* Synthesis is synchronous: ``espeak_Synth`` returns once the callback has received all audio.
* Randomness: eSpeak NG draws the noise of breathy voices and Klatt voices from its own generator, which
  ``espeak_Initialize`` seeds from the clock (``time(NULL)``); every call re-seeds it with ``noise_seed``
  (``espeak_ng_SetRandSeed``, and the C library's ``srand`` for older code paths), so that noise is fixed.
* History: eSpeak's output still depends on what the process spoke before (wave phase, pitch flutter and
  similar state carry over between utterances, even across ``espeak_Terminate`` / ``espeak_Initialize``).
  The same sequence of calls in a fresh process gives the same audio;
  :mod:`contrastkit.data.speech.fresh` relies on that.
* This module imports nothing from contrastkit (only the standard library, numpy and ``espeakng_loader``), so
  that a bare child process can load it by file path without importing torch.

``espeak_EVENT`` (speak_lib.h, API revision 12) on the C side::

    struct { int type; unsigned unique_identifier; int text_position; int length; int audio_position;
             int sample; void *user_data; union { int number; const char *name; char string[8]; } id; }

Phoneme events have type 7 and carry the phoneme mnemonic in ``id.string`` (8 bytes, zero-terminated unless
all 8 are used); an event list ends with type 0.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SAMPLE_RATE", "EspeakError", "Synthesis", "library_paths", "synthesize"]

SAMPLE_RATE = 22_050  # Hz, eSpeak NG's native rate

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() when the data is missing
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_EE_OK = 0
_EE_NOT_FOUND = 2
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded, initialised, or asked to speak."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of this text's audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Synthesis:
    """One spoken text: ``samples`` int16 (S,) at 22,050 Hz; ``phonemes`` ((name, start_ms), ...) in order.

    Names are eSpeak's mnemonics as reported, stress marks included (``"'aU"``, ``",oU"``); ``"_"`` and
    ``"_:"`` are pauses. Start times are ms from the first sample."""

    samples: np.ndarray
    phonemes: tuple[tuple[str, int], ...]


def library_paths() -> tuple[Path, Path]:
    """(the ``libespeak-ng`` shared library, the ``espeak-ng-data`` folder) of the ``espeakng_loader`` package."""
    try:
        import espeakng_loader
    except ImportError as exc:
        raise EspeakError("eSpeak NG: the Python package `espeakng-loader` is not installed "
                          "(pip install espeakng-loader)") from exc
    try:
        return Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())
    except Exception as exc:  # the package raises a bare RuntimeError when its data folder is missing
        raise EspeakError(f"eSpeak NG: espeakng-loader's files are incomplete: {exc}") from exc


class _Engine:
    """The initialised library, its callback and the buffers the callback fills (one per process)."""

    def __init__(self) -> None:
        lib_path, data_path = library_paths()
        try:
            lib = ctypes.CDLL(str(lib_path))
        except OSError as exc:
            raise EspeakError(f"eSpeak NG: cannot load '{lib_path}': {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(),
                                     _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if rate != SAMPLE_RATE:
            raise EspeakError(f"eSpeak NG: espeak_Initialize with data '{data_path}' returned {rate} "
                              f"(expected the sample rate {SAMPLE_RATE})")
        self.lib = lib
        self.chunks: list[np.ndarray] = []
        self.phonemes: list[tuple[str, int]] = []
        self.callback = _Callback(self._on_audio)  # kept referenced: the C side holds only a raw pointer
        lib.espeak_SetSynthCallback(self.callback)
        # what seeds the noise: espeak_ng_SetRandSeed (eSpeak NG 1.52 on) and the C library's srand
        self.seeders: list[Callable[[int], object]] = []
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            self.seeders.append(lambda seed: lib.espeak_ng_SetRandSeed(ctypes.c_long(seed)))
        libc_srand = None
        with contextlib.suppress(OSError, AttributeError):  # no C library to load: eSpeak's own seed only
            libc_srand = ctypes.CDLL(None).srand
        if libc_srand is not None:
            self.seeders.append(lambda seed: libc_srand(ctypes.c_uint(seed)))

    def _on_audio(self, wav: ctypes._Pointer, count: int, events: ctypes._Pointer) -> int:
        if wav and count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        if events:
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                event = events[i]
                if event.type == _EVENT_PHONEME:
                    name = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                    self.phonemes.append((name, int(event.audio_position)))
                i += 1
        return 0  # 0 = continue

    def speak(self, text: str, voice: str, params: dict[int, int], noise_seed: int) -> Synthesis:
        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise EspeakError(f"eSpeak NG: unknown voice {voice!r} (e.g. 'en', 'en-us', 'en+f3', 'en-gb-x-rp+m7')")
        for param, value in params.items():
            if lib.espeak_SetParameter(param, value, 0) != _EE_OK:
                raise EspeakError(f"eSpeak NG: espeak_SetParameter({param}, {value}) failed")
        for seed_with in self.seeders:
            seed_with(noise_seed)
        data = text.encode("utf-8") + b"\0"
        self.chunks, self.phonemes = [], []
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if status != _EE_OK:
            raise EspeakError(f"eSpeak NG: espeak_Synth failed with status {status} for {text[:40]!r}")
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)
        return Synthesis(samples.astype(np.int16, copy=False), tuple(self.phonemes))


_lock = threading.Lock()
_engine: _Engine | None = None


def _checked(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
        raise ValueError(f"synthesize: `{name}` must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def synthesize(text: str, voice: str = "en", *, rate: int = 175, pitch: int = 50, pitch_range: int = 50,
               volume: int = 100, word_gap: int = 0, noise_seed: int = 0) -> Synthesis:
    """Speak ``text`` with ``voice`` (``language[+variant]``, e.g. ``"en-us+f3"``) and return the audio.

    Args:
        rate: words per minute, 80..450 (175 is eSpeak's normal).
        pitch: base pitch 0..100 (50 normal), relative to the voice's own range.
        pitch_range: intonation range 0..100 (0 monotone, 50 normal).
        volume: amplitude 0..200 (100 normal; more may distort).
        word_gap: extra pause between words in units of 10 ms (at normal rate), 0..100.
        noise_seed: seed of eSpeak's noise generator for this call, 0..2**31-1 (breathy and Klatt voices).

    Raises:
        EspeakError: the library cannot load or initialise, the voice is unknown, or synthesis fails.
        ValueError: an empty text or a parameter out of range.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"synthesize: `text` must be a non-empty string, got {text!r}")
    if not isinstance(voice, str) or not voice or "\0" in voice:
        raise ValueError(f"synthesize: `voice` must be a voice name such as 'en+f3', got {voice!r}")
    params = {_PARAM_RATE: _checked("rate", rate, 80, 450), _PARAM_PITCH: _checked("pitch", pitch, 0, 100),
              _PARAM_RANGE: _checked("pitch_range", pitch_range, 0, 100),
              _PARAM_VOLUME: _checked("volume", volume, 0, 200), _PARAM_WORDGAP: _checked("word_gap", word_gap, 0, 100)}
    noise_seed = _checked("noise_seed", noise_seed, 0, 2**31 - 1)
    global _engine
    with _lock:
        if _engine is None:
            _engine = _Engine()
        return _engine.speak(text.replace("\0", " "), voice, params, noise_seed)
