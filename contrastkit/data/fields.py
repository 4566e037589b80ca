"""Which named fields to read from an array file, and the modality of each: :func:`parse_fields`.

``load_dataset(path, fields=...)`` takes the fields of a sample, the default field first:

* ``None`` (the default): the one field ``x``, single-input data as always;
* ``"image,caption"`` or ``["image", "caption"]``: these fields, each of the modality its array shows
  (:func:`~contrastkit.data.modality.infer_modality`);
* ``"x=images,caption=text"`` or ``{"x": "images", "caption": "text"}``: with the modality of each (``auto`` where
  left out). Text held as integers (bytes (N, L) or token ids) is never guessed: name it ``text``.

``modality`` (the single-input setting) applies to the default field where ``fields`` gives it none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from contrastkit.data.containers import check_field_name
from contrastkit.data.modality import check_modality

__all__ = ["parse_fields"]


def _pairs(fields: object, where: str) -> list[tuple[str, str]]:
    if isinstance(fields, str):
        pairs = []
        for part in fields.split(","):
            name, _, modality = part.partition("=")
            pairs.append((name.strip(), modality.strip() or "auto"))
        return pairs
    if isinstance(fields, Mapping):
        return [(name, modality) for name, modality in fields.items()]
    if isinstance(fields, Sequence) and all(isinstance(name, str) for name in fields):
        return [(name, "auto") for name in fields]
    raise TypeError(f"{where}: `fields` must be a str ('image,caption' or 'x=images,caption=text'), a sequence of "
                    f"names or a mapping of names to modalities, got {fields!r}")


def parse_fields(fields: object, modality: str = "auto", where: str = "load_dataset") -> dict[str, str]:
    """``{field name: modality}`` in order, the default field first (see the module docstring)."""
    check_modality(modality, where)
    if fields is None:
        return {"x": modality}
    pairs = _pairs(fields, where)
    if not pairs:
        raise ValueError(f"{where}: `fields` names no field")
    out: dict[str, str] = {}
    for name, kind in pairs:
        check_field_name(name, f"{where}: `fields`")
        if not isinstance(kind, str):
            raise TypeError(f"{where}: `fields`: the modality of {name!r} must be a str, got {kind!r}")
        check_modality(kind, f"{where}: `fields` ({name!r})")
        if name in out:
            raise ValueError(f"{where}: `fields` names {name!r} twice")
        out[name] = kind
    first = next(iter(out))
    if modality != "auto":
        if out[first] not in ("auto", modality):
            raise ValueError(f"{where}: `modality` {modality!r} and `fields` ({first}={out[first]}) disagree on the "
                             f"default field's modality; give it once")
        out[first] = modality
    return out
