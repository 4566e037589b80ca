"""A fingerprint of loaded data, stored in checkpoints: resume and evaluation notice data that changed since.

The fingerprint is the data's name, the sizes and shapes of both splits and a SHA-256 over the inputs
(uint8 images, float vectors or sequences) and int64 labels of both splits in order, so a file added to an
image folder, a relabelled image or another split all change it. Hashing runs at about a GB/s: well under a
second for data that fits in memory. Streamed image files (:class:`~contrastkit.data.stream.ImageFiles`) are
fingerprinted by their relative names, sizes in bytes and labels instead (``"kind": "files"``); a run trained
streamed and evaluated in memory (or the other way round) can then only compare names and sizes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from contrastkit.data.containers import DatasetSplits

__all__ = ["data_fingerprint", "describe_change"]


def data_fingerprint(data: DatasetSplits) -> dict[str, Any]:
    """``{"name", "train", "test", "shape", "sha256"}`` of ``data`` (plain values, safe in a checkpoint)."""
    digest = hashlib.sha256()
    if data.streamed:  # files on disk: their names, sizes in bytes and labels (decoding them all would take long)
        for part in (data.train, data.test):
            part.fingerprint_into(digest)
        return {"name": data.name, "train": len(data.train), "test": len(data.test),
                "shape": list(data.input_shape), "sha256": digest.hexdigest(), "kind": "files"}
    for part in (data.train, data.test):
        for tensor in (part.x, part.labels, *(() if part.frame_labels is None else (part.frame_labels,))):
            array = np.ascontiguousarray(tensor.cpu().numpy())
            digest.update(str((array.dtype.str, array.shape)).encode())
            if array.size:  # an empty split (e.g. a trainer given only training data) adds its shape alone
                digest.update(memoryview(array).cast("B"))
    return {"name": data.name, "train": len(data.train), "test": len(data.test),
            "shape": list(data.input_shape), "sha256": digest.hexdigest()}


def describe_change(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """``None`` if the fingerprints match, else a sentence saying what changed."""
    if saved.get("sha256") == current.get("sha256"):
        return None
    if saved.get("kind") != current.get("kind") and all(saved.get(k) == current.get(k)
                                                         for k in ("name", "train", "test", "shape")):
        return None  # one side streamed from the files, the other decoded them: only the sizes can be compared
    parts = []
    for key, label in (("train", "train images"), ("test", "test images"), ("shape", "image shape")):
        if saved.get(key) != current.get(key):
            parts.append(f"{label} {saved.get(key)} then, {current.get(key)} now")
    what = "; ".join(parts) if parts else "same sizes, different contents"
    return f"the data differs from the data this run was trained on ({what})"
