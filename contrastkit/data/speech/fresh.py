"""Synthesise a list of utterances in a fresh child process, so that the audio depends on the list alone.

eSpeak NG carries state from one utterance to the next within a process (wave phase, pitch flutter; measured:
the same text twice in a row, with the noise generator re-seeded alike, gives different samples and lengths,
even after ``espeak_Terminate`` and a new ``espeak_Initialize``). A dataset built in the calling process would
then depend on whatever that process spoke before. :func:`synthesize_fresh` starts a new Python
(``sys.executable``) that loads :mod:`contrastkit.data.speech.espeak` by file path (no torch, well under a
second to start), speaks the requests in order, and hands the results back through an ``.npz`` file in a
temporary folder. The same list gives the same audio on every call, in any process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["synthesize_fresh"]

_ESPEAK = Path(__file__).with_name("espeak.py")
_CHILD = """\
import sys
sys.path[:] = [p for p in sys.path if p]  # not the working directory
import importlib.util
spec = importlib.util.spec_from_file_location("_contrastkit_speech_fresh", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
module.child_main(sys.argv[2:])
"""


def _load_espeak() -> ModuleType:
    name = "_contrastkit_speech_espeak"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _ESPEAK)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[name]


def child_main(argv: list[str]) -> None:
    """In the child: read requests (JSON list of ``synthesize`` keyword arguments), speak them, write an npz."""
    requests_path, out_path = argv
    espeak = _load_espeak()
    requests = json.loads(Path(requests_path).read_text(encoding="utf-8"))
    audio, lengths, names, starts, counts = [], [], [], [], []
    for kwargs in requests:
        result = espeak.synthesize(**kwargs)
        audio.append(result.samples)
        lengths.append(len(result.samples))
        names += [name for name, _ in result.phonemes]
        starts += [start for _, start in result.phonemes]
        counts.append(len(result.phonemes))
    np.savez(out_path, audio=np.concatenate(audio) if audio else np.zeros(0, np.int16),
             lengths=np.array(lengths, np.int64), names=np.array(names, dtype=str).astype("U8"),
             starts=np.array(starts, np.int64), counts=np.array(counts, np.int64))


def synthesize_fresh(requests: Sequence[dict[str, Any]]) -> list[tuple[np.ndarray, tuple[tuple[str, int], ...]]]:
    """Speak each request (keyword arguments of :func:`~contrastkit.data.speech.espeak.synthesize`) in a new
    process; returns (int16 samples at 22,050 Hz, ((phoneme, start ms), ...)) per request, in order.

    Raises:
        EspeakError: the child failed (its last lines of stderr are in the message).
    """
    from contrastkit.data.speech.espeak import EspeakError

    with tempfile.TemporaryDirectory(prefix="contrastkit-espeak-") as tmp:
        requests_path, out_path = Path(tmp) / "requests.json", Path(tmp) / "out.npz"
        requests_path.write_text(json.dumps(list(requests)), encoding="utf-8")
        done = subprocess.run([sys.executable, "-c", _CHILD, str(Path(__file__)), str(requests_path),
                               str(out_path)], capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out_path.exists():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise EspeakError(f"eSpeak NG synthesis in a child process failed (exit {done.returncode}): {tail}")
        with np.load(out_path, allow_pickle=False) as data:
            audio, lengths = data["audio"], data["lengths"]
            names, starts, counts = data["names"].tolist(), data["starts"].tolist(), data["counts"]
    results = []
    a_ends, p_ends = np.cumsum(lengths), np.cumsum(counts)
    for i in range(len(lengths)):
        a0, p0 = a_ends[i] - lengths[i], p_ends[i] - counts[i]
        results.append((audio[a0:a_ends[i]].copy(),
                        tuple(zip(names[p0:p_ends[i]], starts[p0:p_ends[i]], strict=True))))
    return results
