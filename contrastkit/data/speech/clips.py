"""Utterances -> fixed-length 16 kHz clips, synthesised and rendered in fresh child processes, a few at once.

Used by the paired datasets (:mod:`contrastkit.data.speech.pairs`). One utterance is rendered as follows:

1. **Speak** with eSpeak NG (:func:`contrastkit.data.speech.espeak.synthesize`), int16 at 22,050 Hz.
2. **Resample** to 16,000 Hz (``scipy.signal.resample_poly(x, 320, 441)``) and **trim** to the first and last
   10 ms frame within 40 dB of the loudest frame (as the ``speech`` dataset does).
3. **Fit** the trimmed speech into ``clip_samples``: it starts at sample 0 and is padded with zeros at the end;
   speech longer than the clip is cut at the end (the returned length tells how long it was).
4. **Channel**: the random filter of :func:`contrastkit.data.speech.channel.channel_filter` over the whole clip,
   then Gaussian noise coloured by a random one-pole low-pass (pole 0..0.9) at an SNR drawn uniformly from
   ``snr_db`` (default 10..30 dB), then a gain that sets the clip's peak to 0.05..0.9 (log-uniform). Unlike
   :func:`~contrastkit.data.speech.channel.degrade`, the SNR is measured against the *speech* part only, not
   against the clip with its padding: a short word (``"seven"`` alone, 0.5 s of a 3 s clip) then gets the same
   noise relative to its voice as a long sentence, so isolated digits and sentences are equally clean.
5. **Store** as int16 (``round(32767 * y)``).

Every random draw of steps 3-4 comes from ``np.random.default_rng(seed)`` with the utterance's own ``seed``.

**Chunks and processes.** eSpeak's audio depends on what its process spoke before
(:mod:`contrastkit.data.speech.fresh`), so the requests are cut into fixed chunks of :data:`CHUNK` consecutive
utterances, and each chunk is spoken from the start in a fresh child process. An utterance's audio is then a
function of its chunk's earlier requests only, never of how many children run at once: ``processes`` changes the
build time, not one sample. The child loads :mod:`~contrastkit.data.speech.espeak` and
:mod:`~contrastkit.data.speech.channel` by file path, so it imports numpy and scipy but never torch. This module
itself imports nothing from contrastkit, for the same reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["CHUNK", "SAMPLE_RATE", "SNR_DB", "default_processes", "render_clip", "synthesize_clips"]

SAMPLE_RATE = 16_000
HOP = 160  # samples per 10 ms frame (the trimming grid)
TRIM_DB = 40.0
SNR_DB = (10.0, 30.0)
VOLUME = 60  # eSpeak amplitude (no clipping, as the `speech` dataset)
#: utterances per child process; part of the data's definition (each chunk is spoken from a fresh start)
CHUNK = 1000
_HERE = Path(__file__).parent
_CHILD = """\
import sys
sys.path[:] = [p for p in sys.path if p]  # not the working directory
import importlib.util
spec = importlib.util.spec_from_file_location("_contrastkit_speech_clips", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
module.child_main(sys.argv[2:])
"""


def _sibling(name: str) -> ModuleType:
    """The module ``<name>.py`` of this folder, loaded by file path (no package import, so no torch)."""
    key = f"_contrastkit_speech_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, _HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[key]


def _trim(x: np.ndarray) -> tuple[int, int]:
    """(first, end) 10 ms frames of ``x`` within ``TRIM_DB`` of its loudest frame; (0, 0) for silence."""
    frames = len(x) // HOP
    energy = (x[: frames * HOP].reshape(frames, HOP) ** 2).mean(1) if frames else np.zeros(0)
    active = np.flatnonzero(energy > energy.max(initial=0.0) * 10 ** (-TRIM_DB / 10))
    return (int(active[0]), int(active[-1]) + 1) if len(active) else (0, 0)


def render_clip(samples: np.ndarray, clip_samples: int, rng: np.random.Generator,
                snr_db: tuple[float, float] = SNR_DB) -> tuple[np.ndarray, int]:
    """eSpeak's int16 (S,) at 22,050 Hz -> (int16 (clip_samples,) at 16 kHz, length of the trimmed speech in
    samples); the speech was cut at the end when that length exceeds ``clip_samples``. Steps in the module doc."""
    from scipy import signal

    x = signal.resample_poly(samples.astype(np.float64) / 32768.0, 320, 441)
    first, end = _trim(x)
    speech = x[first * HOP: end * HOP]
    kept = min(len(speech), clip_samples)
    clip = np.zeros(clip_samples)
    clip[:kept] = speech[:kept]
    y = signal.sosfilt(_sibling("channel").channel_filter(rng, SAMPLE_RATE), clip)
    power = float(np.mean(y[:kept] ** 2)) if kept else 0.0
    pole = rng.uniform(0.0, 0.9)
    noise = signal.lfilter([1.0 - pole], [1.0, -pole], rng.standard_normal(clip_samples))
    noise *= np.sqrt((power + 1e-12) / (np.mean(noise**2) + 1e-12) / 10 ** (rng.uniform(*snr_db) / 10))
    y = y + noise
    y *= float(np.exp(rng.uniform(np.log(0.05), np.log(0.9)))) / (np.abs(y).max() + 1e-12)
    return np.round(np.clip(y, -1.0, 1.0) * 32767).astype(np.int16), len(speech)


def child_main(argv: list[str]) -> None:
    """In the child: read the job (JSON: clip_samples, snr_db, requests), speak and render, write an npz."""
    job_path, out_path = argv
    espeak = _sibling("espeak")
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    clips, lengths = [], []
    for request in job["requests"]:
        spoken = espeak.synthesize(**request["speak"])
        clip, length = render_clip(spoken.samples, job["clip_samples"], np.random.default_rng(request["seed"]),
                                   tuple(job["snr_db"]))
        clips.append(clip)
        lengths.append(length)
    np.savez(out_path, clips=np.stack(clips), lengths=np.array(lengths, np.int64))


def _run_chunk(requests: list[dict[str, Any]], clip_samples: int, snr_db: tuple[float, float]
               ) -> tuple[np.ndarray, np.ndarray]:
    from contrastkit.data.speech.espeak import EspeakError

    with tempfile.TemporaryDirectory(prefix="contrastkit-clips-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.npz"
        job_path.write_text(json.dumps({"clip_samples": clip_samples, "snr_db": list(snr_db), "requests": requests}),
                            encoding="utf-8")
        done = subprocess.run([sys.executable, "-c", _CHILD, str(Path(__file__)), str(job_path), str(out_path)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out_path.exists():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise EspeakError(f"eSpeak NG synthesis in a child process failed (exit {done.returncode}): {tail}")
        with np.load(out_path, allow_pickle=False) as data:
            return data["clips"], data["lengths"]


def default_processes() -> int:
    """Child processes run at once by default: 2, or 1 on a one-core machine."""
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def synthesize_clips(requests: Sequence[dict[str, Any]], clip_samples: int, *, snr_db: tuple[float, float] = SNR_DB,
                     processes: int | None = None, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Speak and render every request; returns (int16 (N, clip_samples) clips, int64 (N,) speech lengths).

    Each request is ``{"speak": <keyword arguments of espeak.synthesize>, "seed": <int or list of ints>}``;
    ``seed`` seeds the utterance's channel. Requests are spoken in chunks of ``chunk`` consecutive ones, each in
    a fresh child; ``processes`` children run at once (None: :func:`default_processes`). The result depends on
    the requests, ``clip_samples``, ``snr_db`` and ``chunk``, never on ``processes``.

    Raises:
        EspeakError: a child failed (its last lines of stderr are in the message).
    """
    requests = list(requests)
    if not requests:
        return np.zeros((0, clip_samples), np.int16), np.zeros(0, np.int64)
    clips = np.empty((len(requests), clip_samples), np.int16)  # filled chunk by chunk: no second copy
    lengths = np.empty(len(requests), np.int64)

    def run(start: int) -> None:
        clips[start:start + chunk], lengths[start:start + chunk] = \
            _run_chunk(requests[start:start + chunk], clip_samples, snr_db)

    starts = range(0, len(requests), chunk)
    workers = default_processes() if processes is None else processes
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(starts)))) as pool:  # each thread waits on a child
        list(pool.map(run, starts))  # list(): re-raises a child's error here
    return clips, lengths
