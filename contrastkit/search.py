"""``contrastkit search RUN --query "some words"``: play with a two-tower run (CLIP, SigLIP) by typing text.

The run is loaded as ``contrastkit eval`` loads it (its data split and its trained method), and its held-out split
(the test split) is embedded with both towers (:meth:`~contrastkit.methods.base.Method.embed`). The typed text is
encoded as UTF-8 and embedded by the text tower (:class:`~contrastkit.evaluate.paired.PairFields`: the paired field
whose modality is text), and two lists are printed:

1. the held-out items of the other field nearest to the typed text (highest cosine similarity), each shown by its
   transcript -- the text it is paired with -- with its similarity and its index in the held-out split;
2. the other direction: for one held-out item (``--item N``; by default the first hit of the first list), the
   held-out texts nearest to it, its own transcript marked with ``*``.

Items and texts are the distinct ones (:func:`~contrastkit.evaluate.retrieval.distinct_items`: one sentence spoken
by three voices is one text), each shown by the index of its first occurrence; equal similarities go to the item
that occurs first, as in the evaluation's retrieval.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from contrastkit.data.containers import SampleSet
from contrastkit.data.text import decode_texts, encode_texts
from contrastkit.evaluate.paired import PairFields, pair_fields, shared_embeddings
from contrastkit.evaluate.retrieval import distinct_items
from contrastkit.methods.base import Method, as_method

__all__ = ["Hit", "SearchResult", "format_search", "search_method", "search_run"]

#: characters of a text shown in one line of the answer (longer texts end in "...")
SHOWN_CHARACTERS = 100


@dataclass(frozen=True)
class Hit:
    """One answer: a held-out item (or text) by its index in the held-out split, its similarity, its text."""

    index: int  # position of its first occurrence in the held-out split
    similarity: float  # cosine similarity to the query
    text: str  # the text itself, or the item's transcript (the text of its first pair)
    partner: bool = False  # (texts of an item) the text is one of the item's own transcripts


@dataclass(frozen=True)
class SearchResult:
    """Both directions of one search (module docstring)."""

    query: str
    data: str  # the data set's name
    text_field: str
    item_field: str
    items: list[Hit]  # the nearest held-out items of item_field to the query, best first
    item: int  # the held-out index of the item of the other direction
    item_text: str  # its transcript
    texts: list[Hit]  # the nearest held-out texts to that item, best first
    distinct_items: int  # candidates of each list
    distinct_texts: int


def _check_query(query: object) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"the query is empty (--query {query!r}); type some words, e.g. --query \"seven\"")
    return query


def _nearest(query: Tensor, candidates: Tensor, first: Tensor, top: int) -> list[tuple[int, int, float]]:
    """(candidate, split index, similarity) of the ``top`` candidates (M, D) nearest to ``query`` (D,), best first;
    equal similarities in candidate order (the order of first occurrence)."""
    scores = candidates @ query  # (M,) cosine: both are unit rows
    order = torch.sort(scores, descending=True, stable=True).indices[:top]
    return [(int(c), int(first[c]), float(scores[c])) for c in order]


def search_method(method: Method, split: SampleSet, query: str, top: int = 5, item: int | None = None,
                  device: torch.device | None = None, data_name: str = "the data") -> SearchResult:
    """Search the held-out ``split`` (a test split holding both of ``method``'s paired fields) with the typed
    ``query`` (module docstring). ``item``: the held-out index of the item whose nearest texts are listed (default:
    the query's first hit)."""
    method = as_method(method)
    query = _check_query(query)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"--top must be a positive integer, got {top!r}")
    if method.paired_fields is None:
        raise ValueError(f"{type(method).__name__} is not a two-tower method (no paired_fields); search needs "
                         f"clip / siglip")
    fields = _text_and_items(method, split, data_name)
    assert fields.text is not None and fields.items is not None
    n = len(split)
    if n == 0:
        raise ValueError(f"the held-out split of {data_name} is empty: nothing to search")
    if item is not None and (isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < n):
        raise ValueError(f"--item must be a held-out index in [0, {n}), got {item!r}")
    texts = split.field_inputs(fields.text)  # (N, L) uint8
    items = split.field_inputs(fields.items)  # (N, ...)
    texts_first, text_of_pair = distinct_items(texts)  # (M_t,), (N,)
    items_first, item_of_pair = distinct_items(items)  # (M_i,), (N,)
    transcripts = decode_texts(texts)  # the text of each held-out pair
    text_emb = shared_embeddings(method, fields.text, texts[texts_first], device)  # (M_t, D)
    item_emb = shared_embeddings(method, fields.items, items[items_first], device)  # (M_i, D)
    typed = shared_embeddings(method, fields.text, encode_texts([query], what="the query", where="search"), device)[0]
    hits = [Hit(index, similarity, transcripts[index])
            for _, index, similarity in _nearest(typed, item_emb, items_first, top)]
    chosen = hits[0].index if item is None else item
    own = item_of_pair[chosen]  # its distinct item
    partners = set(text_of_pair[item_of_pair == own].tolist())  # the distinct texts it is paired with
    answers = [Hit(index, similarity, transcripts[index], partner=c in partners)
               for c, index, similarity in _nearest(item_emb[own], text_emb, texts_first, top)]
    return SearchResult(query, data_name, fields.text, fields.items, hits, chosen, transcripts[chosen], answers,
                        int(items_first.shape[0]), int(texts_first.shape[0]))


def _text_and_items(method: Method, split: SampleSet, data_name: str) -> PairFields:
    """The text field and the item field of ``method`` on ``split``; a pair without UTF-8 text is a ValueError."""

    fields = pair_fields(method, split, data_name)
    if fields.text is None:
        raise ValueError(f"neither of the run's paired fields ({fields.a!r}, {fields.b!r}) is text; search "
                         f"needs a text tower to embed the typed words")
    if split.field_inputs(fields.text).dtype != torch.uint8:
        raise ValueError(f"field {fields.text!r} holds token ids; search needs UTF-8 text (uint8 bytes) to "
                         f"encode the typed words")
    return fields


def search_run(run_dir: str | Path, query: str, top: int = 5, item: int | None = None, device: str = "auto",
               data: str | None = None) -> SearchResult:
    """Load the run in ``run_dir`` as ``contrastkit eval`` does and search its held-out split (:func:`search_method`).
    ``data`` locates the run's data if it moved. One-line errors: an empty query, no run folder, a run that is not a
    two-tower one."""
    from contrastkit.report import _load_run
    from contrastkit.runfolder import CHECKPOINT_NAME

    query = _check_query(query)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder {run_dir} (give the --out folder of `contrastkit train`)")
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise FileNotFoundError(f"{run_dir} holds no {CHECKPOINT_NAME}; is it a run folder of `contrastkit "
                                f"train`?")
    run, _, _, _ = _load_run(run_dir, device, data)
    method = as_method(run.method)
    if method.paired_fields is None:
        raise ValueError(f"{run_dir} is a {run.config.method} run, not a two-tower run; search needs clip / "
                         f"siglip (a method with paired_fields)")
    return search_method(method, run.data.test, query, top, item, run.device, data_name=run.config.data)


def _shown(text: str) -> str:
    text = " ".join(text.split())  # one line
    return repr(text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 3] + "...")


def format_search(result: SearchResult) -> str:
    """The two lists of a search as the command prints them."""
    width = len(str(max([h.index for h in result.items + result.texts] + [result.item])))
    lines = [f"held-out {result.item_field} of {result.data} nearest to {_shown(result.query)} "
             f"({result.distinct_items} distinct items; each shown by its {result.text_field}):"]
    lines += [f"  {rank}. {hit.similarity:+.3f}  #{str(hit.index).ljust(width)}  {_shown(hit.text)}"
              for rank, hit in enumerate(result.items, 1)]
    lines.append("")
    lines.append(f"held-out {result.text_field} nearest to {result.item_field} #{result.item} "
                 f"({_shown(result.item_text)}; {result.distinct_texts} distinct texts, * its own):")
    lines += [f"  {rank}. {hit.similarity:+.3f}  #{str(hit.index).ljust(width)}  {'*' if hit.partner else ' '} "
              f"{_shown(hit.text)}" for rank, hit in enumerate(result.texts, 1)]
    return "\n".join(lines)
