"""`contrastkit search RUN --query TEXT` (contrastkit.search): the held-out items nearest to typed text, shown by
their transcripts, and the texts nearest to one item, on hand-set embeddings whose answers are known; the one-line
errors; the command on a run folder."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from contrastkit.methods.base import Batch, Method
from contrastkit.run import Run
from contrastkit.search import format_search, search_method
from tests.evaluate.two_tower_fake import HandSet, paired_splits

E = torch.eye(3)
# held-out pairs: (e0, one), (e1, two), (e2, two), (e2, deux): "two" is spoken twice, e2 has two transcripts
TEST = (torch.stack([E[0], E[1], E[2], E[2]]), ["one", "two", "two", "deux"])
TABLE = {"one": [1, 0, 0], "two": [0, 1, 0], "deux": [0, 0.6, 0.8], "first": [0.8, 0.6, 0], "nothing": [0, 0, 0.001]}


def _split():
    return paired_splits((E, ["one", "two", "deux"]), TEST).test


def _hits(hits):
    return [(h.index, round(h.similarity, 6), h.text, h.partner) for h in hits]


def test_the_items_nearest_to_the_query_and_the_texts_nearest_to_the_first_hit():
    result = search_method(HandSet(TABLE), _split(), "first", top=5, data_name="pairs")
    # "first" = (0.8, 0.6, 0): e0 0.8, e1 0.6, e2 0; distinct items only (3), each by its first pair's text
    assert _hits(result.items) == [(0, 0.8, "one", False), (1, 0.6, "two", False), (2, 0.0, "two", False)]
    assert (result.item, result.item_text, result.distinct_items, result.distinct_texts) == (0, "one", 3, 3)
    # e0 against the distinct texts: one 1.0 (its own), then two and deux tie at 0: two occurs first
    assert _hits(result.texts) == [(0, 1.0, "one", True), (1, 0.0, "two", False), (3, 0.0, "deux", False)]


def test_item_chooses_the_other_direction_s_item_and_marks_all_its_transcripts():
    result = search_method(HandSet(TABLE), _split(), "first", top=3, item=3)
    assert (result.item, result.item_text) == (3, "deux")
    # e2: deux 0.8 (its own), then one and two at 0 (one occurs first); two is its other transcript
    assert _hits(result.texts) == [(3, 0.8, "deux", True), (0, 0.0, "one", False), (1, 0.0, "two", True)]


def test_top_cuts_both_lists():
    result = search_method(HandSet(TABLE), _split(), "nothing", top=1)
    assert [h.index for h in result.items] == [2] and result.item == 2  # the first hit is e2 (index 2)
    assert [(h.index, h.partner) for h in result.texts] == [(3, True)]


def test_the_printed_answer():
    text = format_search(search_method(HandSet(TABLE), _split(), "first", top=2, data_name="pairs"))
    assert text == ("held-out x of pairs nearest to 'first' (3 distinct items; each shown by its text):\n"
                    "  1. +0.800  #0  'one'\n"
                    "  2. +0.600  #1  'two'\n"
                    "\n"
                    "held-out text nearest to x #0 ('one'; 3 distinct texts, * its own):\n"
                    "  1. +1.000  #0  * 'one'\n"
                    "  2. +0.000  #1    'two'")


class _OneInput(Method):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Identity()

    def forward(self, batch: Batch, group=None):
        raise NotImplementedError


@pytest.mark.parametrize(("method", "query", "options", "message"), [
    (HandSet(TABLE), "   ", {}, r"the query is empty \(--query '   '\); type some words"),
    (HandSet(TABLE), "first", {"item": 4}, r"--item must be a held-out index in \[0, 4\), got 4"),
    (HandSet(TABLE), "first", {"item": -1}, r"--item must be a held-out index in \[0, 4\), got -1"),
    (HandSet(TABLE), "first", {"top": 0}, "--top must be a positive integer, got 0"),
    (_OneInput(), "first", {}, "_OneInput is not a two-tower method .no paired_fields.; search needs clip / siglip"),
    (HandSet(TABLE, fields=("x", "other")), "first", {}, "has no field 'other'"),
])
def test_bad_searches_are_one_line_errors(method, query, options, message):
    with pytest.raises(ValueError, match=message):
        search_method(method, _split(), query, **options)


def test_a_pair_without_text_cannot_be_searched():
    from contrastkit.data.containers import ArrayDataset

    split = ArrayDataset.from_fields({"x": E, "z": E})
    with pytest.raises(ValueError, match=r"neither of the run's paired fields \('x', 'z'\) is text"):
        search_method(HandSet({}, fields=("x", "z"), text_field="none"), split, "first")


def _main(capsys, *args: str) -> tuple[int, str, str]:
    from contrastkit.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_searches_a_run(tmp_path, capsys, monkeypatch):
    import contrastkit.report

    (tmp_path / "checkpoint.pt").write_bytes(b"")
    data = paired_splits((E, ["one", "two", "deux"]), TEST)
    run = Run(SimpleNamespace(method="clip", data="pairs"), torch.device("cpu"), data, HandSet(TABLE), None, {})
    loaded = []

    def load_run(run_dir, device, data):  # what eval's loader returns: the run, its random init, checkpoint, notes
        loaded.append((Path(run_dir), device, data))
        return run, None, {}, []

    monkeypatch.setattr(contrastkit.report, "_load_run", load_run)
    code, out, err = _main(capsys, "search", str(tmp_path), "--query", "first", "--top", "2", "--item", "3")
    assert (code, err) == (0, "")
    assert loaded == [(tmp_path, "auto", None)]
    assert out.splitlines() == ["held-out x of pairs nearest to 'first' (3 distinct items; each shown by its text):",
                                "  1. +0.800  #0  'one'", "  2. +0.600  #1  'two'", "",
                                "held-out text nearest to x #3 ('deux'; 3 distinct texts, * its own):",
                                "  1. +0.800  #3  * 'deux'", "  2. +0.000  #0    'one'"]


def test_the_command_refuses_a_missing_folder_and_an_empty_query(tmp_path, capsys):
    code, _, err = _main(capsys, "search", str(tmp_path / "nope"), "--query", "seven")
    assert code == 2
    assert err == f"contrastkit search: error: no run folder {tmp_path / 'nope'} (give the --out folder of " \
                  f"`contrastkit train`)\n"
    code, _, err = _main(capsys, "search", str(tmp_path), "--query", "")
    assert code == 2 and err == "contrastkit search: error: the query is empty (--query ''); type some words, " \
                                "e.g. --query \"seven\"\n"
    code, _, err = _main(capsys, "search", str(tmp_path), "--query", "seven")
    assert code == 2 and err.startswith(f"contrastkit search: error: {tmp_path} holds no checkpoint.pt") \
        and err.count("\n") == 1


def test_the_command_refuses_a_run_of_one_input(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "clusters.npz", x=rng.normal(size=(40, 4)).astype(np.float32), y=np.repeat(np.arange(2), 20))
    code, _, err = _main(capsys, "train", "--data", str(tmp_path / "clusters.npz"), "--out", str(tmp_path / "run"),
                         "--batch-size", "16", "--epochs", "1", "--no-progress")
    assert code == 0, err
    code, _, err = _main(capsys, "search", str(tmp_path / "run"), "--query", "seven")
    assert code == 2
    assert err == f"contrastkit search: error: {tmp_path / 'run'} is a simclr run, not a two-tower run; search needs " \
                  f"clip / siglip (a method with paired_fields)\n"
