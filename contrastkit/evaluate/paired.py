"""The evaluation of a two-tower method (one that declares ``paired_fields``: CLIP, SigLIP) on paired data.

What :func:`paired_extras` adds to ``contrastkit eval`` (through :func:`~contrastkit.evaluate.extras.
evaluation_extras`), for the trained towers and, under ``baselines.random_init``, the same towers at their seeded
initialisation:

* ``retrieval`` -- cross-modal retrieval on the held-out pairs (the test split), Recall@1/5/10 in both directions
  among the distinct held-out items (:func:`~contrastkit.evaluate.retrieval.cross_modal_recall`: items told apart
  by their stored content, any true partner in the top K is a hit, ties to the item that occurs first), with the
  number of queries and candidates and the chance level of each direction;
* ``zero_shot_acc`` and ``zero_shot`` -- zero-shot classification, where a set with class names exists and one of
  the two fields is text: each class name (e.g. ``"seven"``) is encoded as UTF-8 and embedded by the text tower,
  and each item of the other field takes the class of highest cosine similarity (ties: the lower class index).
  The sets: the companion set named for the run's data in ``ZERO_SHOT_COMPANIONS`` (``speech-text`` ->
  ``spoken-digits``: its test split, loaded with the run's seed, fields matched by name), then the run's own test
  split when it has labels and class names. ``zero_shot_acc`` is the first set's accuracy; ``zero_shot.by_set``
  holds each set's;
* ``similarity.png`` -- the held-out similarity matrix of the first :data:`PLOTTED_PAIRS` pairs whose items occur
  in no earlier plotted pair, so that the diagonal holds the true pairs and only they are pairs.

The text field is the one of the two whose modality is text (both text: the first, ``a``, is the query side);
the other is the *item* field. A part that cannot be computed (no test split, no text tower, no class names,
token-id text) is skipped with a note saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.data.containers import DatasetSplits, SampleSet
from contrastkit.evaluate.features import embed_inputs
from contrastkit.evaluate.retrieval import cross_modal_recall, distinct_items
from contrastkit.methods.base import EvalContext, EvalExtras, Method

__all__ = ["PLOTTED_PAIRS", "HeldOutPairs", "PairFields", "ZeroShotSet", "format_paired", "pair_fields",
           "paired_extras", "plotted_pairs", "retrieval_metrics", "shared_embeddings", "zero_shot_accuracy",
           "zero_shot_companions", "zero_shot_metrics", "zero_shot_sets"]

#: pairs shown in the held-out similarity matrix (``similarity.png``)
PLOTTED_PAIRS = 50
#: how retrieval breaks ties, as ``metrics.json`` says it
TIES = "equal similarity: the candidate that occurs first in the test split ranks higher"


@dataclass(frozen=True)
class PairFields:
    """The two fields of a two-tower method, and which of them its text tower reads."""

    a: str
    b: str
    text: str | None  # the field of the text tower (None: neither field is text)
    items: str | None  # the other field (None when text is None)


def pair_fields(method: Method, data: DatasetSplits | SampleSet, data_name: str) -> PairFields:
    """``method.paired_fields`` on ``data`` (the splits, or one split) named ``data_name``; a field the data does not
    hold is a ValueError naming both."""
    assert method.paired_fields is not None
    a, b = method.paired_fields
    missing = [f for f in (a, b) if f not in data.field_names]
    if missing:
        raise ValueError(f"{type(method).__name__} pairs the fields {a!r} and {b!r}, but {data_name!r} has no "
                         f"field {', '.join(map(repr, missing))} (its fields: {', '.join(data.field_names)})")
    text = {f: data.field_modality(f) == "text" for f in (a, b)}
    if text[a]:
        return PairFields(a, b, a, b)
    if text[b]:
        return PairFields(a, b, b, a)
    return PairFields(a, b, None, None)


def shared_embeddings(method: Method, field: str, x: Tensor, device: torch.device | None = None) -> Tensor:
    """``method.embed(field, .)`` of stored inputs ``x`` (N, ...) in eval mode without gradient, 512 at a time
    (:func:`~contrastkit.evaluate.features.embed_inputs`), as (N, D) float64 unit rows on the CPU."""
    out = embed_inputs(method, x, features=lambda inputs: method.embed(field, inputs), device=device)
    return F.normalize(out.double(), dim=1)


@dataclass(frozen=True)
class HeldOutPairs:
    """The distinct items of the two fields of a split's pairs (:func:`~contrastkit.evaluate.retrieval.
    distinct_items`): pair i joins item ``a_of_pair[i]`` of ``a`` with item ``b_of_pair[i]`` of ``b``."""

    a: Tensor  # (M_a, ...) the distinct items of field a, stored form
    b: Tensor  # (M_b, ...)
    a_first: Tensor  # (M_a,) the split position of each a item's first pair
    b_first: Tensor  # (M_b,)
    a_of_pair: Tensor  # (N,) the a item of each pair
    b_of_pair: Tensor  # (N,)

    @classmethod
    def of(cls, split: SampleSet, a: str, b: str) -> HeldOutPairs:
        x_a, x_b = split.field_inputs(a), split.field_inputs(b)
        if not isinstance(x_a, Tensor) or not isinstance(x_b, Tensor):
            raise ValueError("paired evaluation needs the pairs in memory; these are streamed from disk")
        a_first, a_of_pair = distinct_items(x_a)
        b_first, b_of_pair = distinct_items(x_b)
        return cls(x_a[a_first], x_b[b_first], a_first, b_first, a_of_pair, b_of_pair)

    def __len__(self) -> int:
        return int(self.a_of_pair.shape[0])


def retrieval_metrics(method: Method, pairs: HeldOutPairs, fields: PairFields,
                      device: torch.device | None = None) -> dict[str, Any]:
    """``metrics.json``'s ``retrieval`` of ``method`` on ``pairs``: the field names, the number of pairs, Recall@K
    both ways with their queries, candidates and chance (:func:`~contrastkit.evaluate.retrieval.cross_modal_recall`)
    and how ties are broken."""
    a = shared_embeddings(method, fields.a, pairs.a, device)  # (M_a, D)
    b = shared_embeddings(method, fields.b, pairs.b, device)  # (M_b, D)
    return {"a": fields.a, "b": fields.b, **cross_modal_recall(a, b, pairs.a_of_pair, pairs.b_of_pair), "ties": TIES}


def zero_shot_accuracy(items: Tensor, classes: Tensor, labels: Tensor) -> float:
    """The share of ``items`` (N, D) whose class of highest cosine similarity among ``classes`` (C, D) is their
    label (N,); ties go to the lower class index."""
    scores = F.normalize(items.double(), dim=1) @ F.normalize(classes.double(), dim=1).T  # (N, C)
    predicted = scores.argmax(1)  # (N,) the first of tied maxima
    return float((predicted == labels.cpu()).double().mean())


@dataclass(frozen=True)
class ZeroShotSet:
    """A labelled set to classify zero-shot: the items of the run's item field and the names of their classes."""

    name: str  # the data set's name, e.g. "spoken-digits"
    items: Tensor  # (N, ...) stored inputs of the item field
    labels: Tensor  # (N,) int64 class indices into class_names
    class_names: tuple[str, ...]


def zero_shot_companions() -> dict[str, str]:
    """Data name -> the name of its companion labelled set for zero-shot classification (``ZERO_SHOT_COMPANIONS``
    of :mod:`contrastkit.data.load`; none when it declares none)."""
    from contrastkit.data import load

    return dict(getattr(load, "ZERO_SHOT_COMPANIONS", None) or {})


def _load_companion(name: str, seed: int) -> DatasetSplits:
    from contrastkit.data.load import load_dataset

    return load_dataset(name, seed=seed)


def zero_shot_sets(data: DatasetSplits, fields: PairFields, seed: int, notes: list[str]) -> list[ZeroShotSet]:
    """The sets to classify zero-shot (module docstring), the companion first; why a set is not used goes to
    ``notes``."""
    if fields.text is None:
        notes.append(f"zero-shot classification skipped: neither paired field ({fields.a!r}, {fields.b!r}) is text, "
                     f"so no tower embeds class names")
        return []
    if data.train.field_inputs(fields.text).dtype != torch.uint8:
        notes.append(f"zero-shot classification skipped: field {fields.text!r} holds token ids, and class names "
                     f"can be encoded only as UTF-8 bytes")
        return []
    sets = []
    companion_name = zero_shot_companions().get(data.name)
    if companion_name is not None:
        companion = _companion_set(companion_name, fields, seed, notes)
        if companion is not None:
            sets.append(companion)
    if data.has_labels and data.class_names and len(data.test):
        sets.append(ZeroShotSet(data.name, data.test.field_inputs(fields.items), data.test.labels,
                                tuple(data.class_names)))
    elif companion_name is None:
        why = "no labels" if not data.has_labels else "no class names" if not data.class_names else "no test split"
        notes.append(f"zero-shot classification skipped: {data.name}'s test split has {why}, and no companion set "
                     f"is named for it (ZERO_SHOT_COMPANIONS)")
    return sets


def _companion_set(name: str, fields: PairFields, seed: int, notes: list[str]) -> ZeroShotSet | None:
    try:
        companion = _load_companion(name, seed)
    except (OSError, ValueError) as exc:
        notes.append(f"zero-shot classification on {name} skipped: it could not be loaded ({exc})")
        return None
    assert fields.items is not None
    if fields.items not in companion.field_names:
        notes.append(f"zero-shot classification on {name} skipped: it has no field {fields.items!r} (its fields: "
                     f"{', '.join(companion.field_names)})")
        return None
    if not companion.has_labels or not companion.class_names or not len(companion.test):
        notes.append(f"zero-shot classification on {name} skipped: its test split needs labels and class names")
        return None
    return ZeroShotSet(name, companion.test.field_inputs(fields.items), companion.test.labels,
                       tuple(companion.class_names))


def zero_shot_metrics(method: Method, sets: Sequence[ZeroShotSet], fields: PairFields,
                      device: torch.device | None = None) -> dict[str, Any]:
    """``zero_shot_acc`` (the first set's) and ``zero_shot`` (the first set's name, chance, sizes and fields, and
    ``by_set``: each set's accuracy, chance, classes and items) of ``method``; empty without sets."""
    from contrastkit.data.text import encode_texts

    if not sets:
        return {}
    assert fields.text is not None and fields.items is not None
    by_set = {}
    for one in sets:
        names = encode_texts(list(one.class_names), what=f"the class names of {one.name}", where="zero-shot")
        classes = shared_embeddings(method, fields.text, names, device)  # (C, D)
        items = shared_embeddings(method, fields.items, one.items, device)  # (N, D)
        by_set[one.name] = {"acc": zero_shot_accuracy(items, classes, one.labels), "chance": 1 / len(one.class_names),
                            "classes": len(one.class_names), "items": len(one.labels)}
    first = sets[0].name
    return {"zero_shot_acc": by_set[first]["acc"],
            "zero_shot": {"set": first, "chance": by_set[first]["chance"], "classes": by_set[first]["classes"],
                          "items": by_set[first]["items"], "field": fields.items, "text_field": fields.text,
                          "by_set": by_set}}


def plotted_pairs(pairs: HeldOutPairs, limit: int = PLOTTED_PAIRS) -> Tensor:
    """The split positions (n,) of the first ``limit`` pairs whose a item and b item occur in no earlier chosen
    pair: in their similarity matrix only the diagonal joins true pairs."""
    chosen: list[int] = []
    seen_a: set[int] = set()
    seen_b: set[int] = set()
    for i, (a, b) in enumerate(zip(pairs.a_of_pair.tolist(), pairs.b_of_pair.tolist(), strict=True)):
        if a not in seen_a and b not in seen_b:
            chosen.append(i)
            seen_a.add(a)
            seen_b.add(b)
            if len(chosen) == limit:
                break
    return torch.tensor(chosen, dtype=torch.int64)


def paired_extras(method: Method, context: EvalContext) -> EvalExtras:
    """The extras of a two-tower method for ``context`` (module docstring): metrics when it asks for scores (the
    random initialisation under ``baselines.random_init`` when it brings one), ``similarity.png`` when it names a
    plot folder."""
    data = context.data
    fields = pair_fields(method, data, data.name)
    extras = EvalExtras()
    pairs = None
    if data.streamed:
        extras.notes.append("cross-modal retrieval skipped: the data is streamed from disk")
    elif len(data.test) < 2:
        extras.notes.append(f"cross-modal retrieval and the similarity plot skipped: the test split holds "
                            f"{len(data.test)} pair(s); at least 2 are needed")
    else:
        pairs = HeldOutPairs.of(data.test, fields.a, fields.b)
    if context.scores:
        sets = zero_shot_sets(data, fields, context.seed, extras.notes)
        scored = [("trained", method)]
        if context.random_method is not None:
            scored.append(("random_init", context.random_method))
        results: dict[str, dict[str, Any]] = {}
        for name, which in scored:
            result = results[name] = {}
            if pairs is not None:
                result["retrieval"] = retrieval_metrics(which, pairs, fields, context.device)
            result.update(zero_shot_metrics(which, sets, fields, context.device))
        extras.metrics.update(results.pop("trained"))
        if results.get("random_init"):
            extras.metrics["baselines"] = results
    if context.plot_dir is not None and pairs is not None:
        from contrastkit.evaluate.plots import plot_similarity_matrix

        chosen = plotted_pairs(pairs)  # (n,) split positions
        a = shared_embeddings(method, fields.a, pairs.a[pairs.a_of_pair[chosen]], context.device)  # (n, D)
        b = shared_embeddings(method, fields.b, pairs.b[pairs.b_of_pair[chosen]], context.device)  # (n, D)
        path = context.plot_dir / "similarity.png"
        title = f"{context.title}\nheld-out similarity of {len(chosen)} pairs (diagonal: true pairs)"
        plot_similarity_matrix(a @ b.T, path, fields.a, fields.b, title=title)
        extras.plots.append(path)
    return extras


def format_paired(metrics: dict[str, Any]) -> str:
    """The retrieval and zero-shot lines of the evaluation table (empty when ``metrics`` has neither)."""
    lines = []
    random_init = metrics.get("baselines", {}).get("random_init", {})
    retrieval = metrics.get("retrieval")
    if retrieval is not None:
        a, b = retrieval["a"], retrieval["b"]
        rows = [(f"{a} -> {b}", retrieval["a_to_b"]), (f"{b} -> {a}", retrieval["b_to_a"])]
        if "retrieval" in random_init:
            base = random_init["retrieval"]
            rows += [(f"random init {a} -> {b}", base["a_to_b"]), (f"random init {b} -> {a}", base["b_to_a"])]
        rows += [(f"chance {a} -> {b}", retrieval["a_to_b"]["chance"]),
                 (f"chance {b} -> {a}", retrieval["b_to_a"]["chance"])]
        width = max(len(name) for name, _ in rows)
        lines.append(f"cross-modal retrieval on the {retrieval['pairs']} held-out pairs "
                     f"({retrieval['a_to_b']['queries']} distinct {a}, {retrieval['b_to_a']['queries']} distinct {b})")
        lines.append(f"{'direction'.ljust(width)}  R@1      R@5      R@10")
        lines += [f"{name.ljust(width)}  " + "  ".join(_pct(values[k]).ljust(7) for k in ("r1", "r5", "r10")).rstrip()
                  for name, values in rows]
    zero_shot = metrics.get("zero_shot")
    if zero_shot is not None:
        for name, one in zero_shot["by_set"].items():
            base = random_init.get("zero_shot", {}).get("by_set", {}).get(name)
            lines.append(f"zero-shot accuracy on {name} ({one['classes']} classes, {one['items']} items): trained "
                         f"{_pct(one['acc'])}" + (f", random init {_pct(base['acc'])}" if base else "")
                         + f", chance {_pct(one['chance'])}")
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"
