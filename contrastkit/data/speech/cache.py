"""Where built datasets are cached, under what name, and how a cache file is written and checked.

* Folder: ``$CONTRASTKIT_CACHE`` if set, else ``$XDG_CACHE_HOME/contrastkit``, else ``~/.cache/contrastkit``.
* Name: ``<prefix>-<hash>.npz``, the hash a sha256 over the canonical JSON of every build parameter (and a
  format version), so a change of any parameter is a different file.
* Writing goes to a temporary file in the same folder, then ``os.replace``: a crash never leaves half a file
  under the final name.
* Reading uses ``allow_pickle=False`` and returns None, never raises, for a file that is missing,
  unreadable, truncated, lacks a key, or was written for other parameters (its stored ``params`` JSON must
  equal the expected one); the caller then rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cache_folder", "cache_path", "read_cache", "write_cache"]


def cache_folder() -> Path:
    """The user cache folder of contrastkit (not created here)."""
    if os.environ.get("CONTRASTKIT_CACHE"):
        return Path(os.environ["CONTRASTKIT_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "contrastkit"
    return Path.home() / ".cache" / "contrastkit"


def params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def cache_path(prefix: str, params: dict[str, Any], folder: Path | None = None) -> Path:
    """``folder / f"{prefix}-{sha256(params)[:16]}.npz"`` (``folder`` defaults to :func:`cache_folder`)."""
    digest = hashlib.sha256(params_json(params).encode()).hexdigest()[:16]
    return (cache_folder() if folder is None else Path(folder)) / f"{prefix}-{digest}.npz"


def write_cache(path: Path, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Store ``arrays`` and ``params`` at ``path`` atomically (uncompressed npz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, params=np.array(params_json(params)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_cache(path: Path, params: dict[str, Any], keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path`` under ``keys``, or None when the file is absent or not to be trusted."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["params"]) != params_json(params):
                return None
            return {key: data[key] for key in keys}
    except Exception:  # a damaged zip raises many kinds (BadZipFile, ValueError, OSError, EOFError, ...)
        return None
