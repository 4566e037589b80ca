"""A fingerprint of loaded data, stored in checkpoints: resume and evaluation notice data that changed since.

The fingerprint is the data's name, the sizes and shapes of both splits and a SHA-256 over the inputs
(uint8 images, float vectors or sequences) and int64 labels of both splits in order, so a file added to an
image folder, a relabelled image or another split all change it. Hashing runs at about a GB/s: well under a
second for data that fits in memory. Data with named fields (:mod:`contrastkit.data.containers`) adds each
further field, by name, to that hash and keeps one SHA-256 per field under ``"fields"``, so a change in any field
refuses a resume and the message names the field (single-input data keeps exactly the fingerprint it always
had). Streamed image files (:class:`~contrastkit.data.stream.ImageFiles`) are fingerprinted by their relative
names, sizes in bytes and labels instead (``"kind": "files"``); a run trained streamed and evaluated in memory
(or the other way round) can then only compare names and sizes.
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
            _hash_tensor(digest, tensor)
    fingerprint = {"name": data.name, "train": len(data.train), "test": len(data.test),
                   "shape": list(data.input_shape)}
    further = data.field_names[1:]
    if further or data.train.x_field != "x":
        fields: dict[str, str] = {}
        for name in data.field_names:
            one = hashlib.sha256(name.encode())
            for part in (data.train, data.test):
                if name in part.field_names:  # the empty test part of a trainer given only training data has x alone
                    _hash_tensor(one, part.field(name))
            fields[name] = one.hexdigest()
            if name != data.field_names[0]:
                digest.update(b"field " + name.encode() + b"\0" + one.digest())
        fingerprint["fields"] = fields
    return {**fingerprint, "sha256": digest.hexdigest()}


def _hash_tensor(digest: Any, tensor: Any) -> None:
    array = np.ascontiguousarray(tensor.cpu().numpy())
    digest.update(str((array.dtype.str, array.shape)).encode())
    if array.size:  # an empty split (e.g. a trainer given only training data) adds its shape alone
        digest.update(memoryview(array).cast("B"))


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
    saved_fields, current_fields = saved.get("fields") or {"x": None}, current.get("fields") or {"x": None}
    if list(saved_fields) != list(current_fields):
        parts.append(f"fields {', '.join(saved_fields)} then, {', '.join(current_fields)} now")
    else:
        changed = [name for name in saved_fields if saved_fields[name] != current_fields[name]]
        if changed:
            parts.append(f"field{'s' if len(changed) > 1 else ''} {', '.join(changed)} changed")
    what = "; ".join(parts) if parts else "same sizes, different contents"
    return f"the data differs from the data this run was trained on ({what})"
