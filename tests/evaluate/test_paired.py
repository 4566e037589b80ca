"""The paired evaluation through the capability (contrastkit.evaluate.paired via evaluation_extras and
evaluate_method): a two-tower method -- known only through paired_fields and embed -- gets `retrieval`,
`zero_shot_acc` / `zero_shot` and the same under `baselines.random_init`, a note for each part it skips, and
`similarity.png`. Hand-set embeddings give the answers; a small linear / bag-of-bytes method is checked against the
slow loop of test_paired_retrieval."""

import torch

from contrastkit.data import load
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.text import decode_texts, encode_texts
from contrastkit.evaluate import paired
from contrastkit.evaluate.extras import _add_with_baselines, evaluation_extras
from contrastkit.evaluate.method import evaluate_method
from contrastkit.methods.base import EvalContext, EvalExtras
from contrastkit.report import format_table
from tests.evaluate.test_paired_retrieval import _loop_recall
from tests.evaluate.two_tower_fake import HandSet, LinearAndBagOfBytes, paired_splits

CPU = torch.device("cpu")
E = torch.eye(3)
TEXTS = {"one": [1, 0, 0], "two": [0, 1, 0], "three": [0, 0, 1], "low": [1, 0, 0], "high": [0, 1, 0]}
COLLAPSED = {text: [1, 1, 1] for text in TEXTS}  # every text at one point: the "random init" of the text tower


def _data(labels=None, class_names=()) -> DatasetSplits:
    """Test pairs (e0, one), (e1, two), (e2, three), (e1, two): the last repeats the second, so 3 distinct items
    each way. Train: 6 pairs of the same kind."""
    test = (torch.stack([E[0], E[1], E[2], E[1]]), ["one", "two", "three", "two"])
    train = (E.repeat(2, 1), ["one", "two", "three"] * 2)
    return paired_splits(train, test, labels, class_names)


def _recalls(direction: dict) -> tuple[float, float, float]:
    return direction["r1"], direction["r5"], direction["r10"]


def test_unlabelled_pairs_give_retrieval_for_the_trained_and_the_random_towers():
    metrics, _ = evaluate_method(HandSet(TEXTS), _data(), random_method=HandSet(COLLAPSED), device=CPU)
    retrieval = metrics["retrieval"]
    assert (retrieval["a"], retrieval["b"], retrieval["pairs"]) == ("x", "text", 4)
    assert _recalls(retrieval["a_to_b"]) == (1.0, 1.0, 1.0) and _recalls(retrieval["b_to_a"]) == (1.0, 1.0, 1.0)
    assert (retrieval["a_to_b"]["queries"], retrieval["a_to_b"]["candidates"]) == (3, 3)  # distinct items
    assert retrieval["a_to_b"]["chance"] == {"r1": 1 / 3, "r5": 1.0, "r10": 1.0}
    # collapsed text tower: every candidate ties, the one that occurs first wins: query i's partner ranks i
    random_init = metrics["baselines"]["random_init"]["retrieval"]
    assert _recalls(random_init["a_to_b"]) == (1 / 3, 1.0, 1.0)
    assert _recalls(random_init["b_to_a"]) == (1 / 3, 1.0, 1.0)
    assert "results" in metrics and "linear_acc" not in metrics  # no labels: no kNN / probe, and no crash
    assert any("no labels" in note for note in metrics["notes"])
    assert any(note.startswith("zero-shot classification skipped: pairs's test split has no labels")
               for note in metrics["notes"])
    assert "zero_shot_acc" not in metrics


def test_labelled_pairs_keep_knn_and_probe_and_add_zero_shot_with_lowest_class_on_ties():
    labels = ([0, 1, 1, 0, 1, 0], [0, 1, 1, 0])
    metrics, _ = evaluate_method(HandSet(TEXTS), _data(labels, ("low", "high")), random_method=HandSet(COLLAPSED),
                                 device=CPU)
    assert "linear_acc" in metrics and "knn_acc" in metrics and "retrieval" in metrics
    # e0 -> low (label 0: right), e1 -> high (1: right), e2 ties low and high -> low (label 1: wrong),
    # e1 -> high (label 0: wrong)
    assert metrics["zero_shot_acc"] == 0.5
    assert metrics["zero_shot"]["set"] == "pairs"
    assert (metrics["zero_shot"]["chance"], metrics["zero_shot"]["classes"], metrics["zero_shot"]["items"]) == \
        (0.5, 2, 4)
    assert (metrics["zero_shot"]["field"], metrics["zero_shot"]["text_field"]) == ("x", "text")
    # collapsed: every class ties, all take "low": labels 0 at positions 0 and 3
    assert metrics["baselines"]["random_init"]["zero_shot_acc"] == 0.5
    assert metrics["baselines"]["random_init"]["zero_shot"]["by_set"]["pairs"]["acc"] == 0.5


def _companion(x: torch.Tensor, labels: list[int], field: str = "x") -> DatasetSplits:
    part = ArrayDataset.from_fields({field: x, "text": encode_texts(["low"] * len(x))},
                                    torch.tensor(labels, dtype=torch.int64))
    return DatasetSplits("words", part, part, 2, class_names=("low", "high"))


def test_a_companion_set_is_scored_zero_shot_first_loaded_with_the_run_seed(monkeypatch):
    asked = []

    def fake_load(name, seed):
        asked.append((name, seed))
        return _companion(torch.stack([E[0], E[1], E[1]]), [0, 1, 0])

    monkeypatch.setattr(load, "ZERO_SHOT_COMPANIONS", {"pairs": "words"})
    monkeypatch.setattr(paired, "_load_companion", fake_load)
    data = _data(([0, 1, 1, 0, 1, 0], [0, 1, 1, 0]), ("low", "high"))
    extras = evaluation_extras(HandSet(TEXTS), EvalContext(data, CPU, seed=7))
    assert asked == [("words", 7)]
    assert extras.metrics["zero_shot_acc"] == 2 / 3  # e0 -> low, e1 -> high, e1 -> high (label low)
    assert extras.metrics["zero_shot"]["set"] == "words"
    assert {name: one["acc"] for name, one in extras.metrics["zero_shot"]["by_set"].items()} == \
        {"words": 2 / 3, "pairs": 0.5}


def test_a_companion_without_the_item_field_is_skipped_with_a_note(monkeypatch):
    monkeypatch.setattr(load, "ZERO_SHOT_COMPANIONS", {"pairs": "words"})
    monkeypatch.setattr(paired, "_load_companion", lambda name, seed: _companion(E, [0, 1, 0], field="audio"))
    extras = evaluation_extras(HandSet(TEXTS), EvalContext(_data(), CPU))
    assert "zero_shot_acc" not in extras.metrics
    assert "zero-shot classification on words skipped: it has no field 'x' (its fields: audio, text)" in extras.notes


def test_pairs_without_a_text_field_get_retrieval_and_a_note_for_zero_shot():
    part = ArrayDataset.from_fields({"x": E, "z": E.flip(0)})
    data = DatasetSplits("vectors", part, part, 0)
    extras = evaluation_extras(HandSet({}, fields=("x", "z"), text_field="none"), EvalContext(data, CPU))
    # z_i = e_{2-i}: x_i's partner z_i is e_{2-i}, nearest to x_{2-i}: only the middle pair is a hit at 1
    assert _recalls(extras.metrics["retrieval"]["a_to_b"]) == (1 / 3, 1.0, 1.0)
    assert "zero-shot classification skipped: neither paired field ('x', 'z') is text, so no tower embeds class " \
           "names" in extras.notes


def test_no_test_split_skips_retrieval_with_a_note():
    empty = (torch.zeros(0, 3), [])
    data = paired_splits((E, ["one", "two", "three"]), empty)
    metrics, _ = evaluate_method(HandSet(TEXTS), data, device=CPU, random_method=HandSet(COLLAPSED))
    assert "retrieval" not in metrics and "baselines" not in metrics  # nothing scored: no empty random_init
    assert "cross-modal retrieval and the similarity plot skipped: the test split holds 0 pair(s); at least 2 are " \
           "needed" in metrics["notes"]


def test_the_learned_shape_towers_match_the_loop():
    g = torch.Generator().manual_seed(3)
    words = ["a cat", "the dog", "seven birds", "one", "two fish", "a cat sat"]
    picks = torch.randint(0, len(words), (30,), generator=g).tolist()
    texts = [words[i] for i in picks]
    x = torch.randn(30, 5, generator=g)
    x[7] = x[3]  # one audio repeated (a duplicate item)
    data = paired_splits((x[:10], texts[:10]), (x, texts))
    method = LinearAndBagOfBytes(5)
    metrics, _ = evaluate_method(method, data, device=CPU, random_method=LinearAndBagOfBytes(5, seed=1))
    with torch.no_grad():
        embedding = {("x", tuple(row.tolist())): method.embed("x", row[None])[0].tolist() for row in x}
        embedding.update({("t", t): method.embed("text", encode_texts([t]))[0].tolist() for t in words})
    want = _loop_recall([("x", tuple(row.tolist())) for row in x], [("t", t) for t in texts], embedding)
    for direction in ("a_to_b", "b_to_a"):
        recall, queries, candidates, _ = want[direction]
        got = metrics["retrieval"][direction]
        assert _recalls(got) == tuple(recall[k] for k in ("r1", "r5", "r10"))
        assert (got["queries"], got["candidates"]) == (queries, candidates)
    assert metrics["retrieval"]["a_to_b"]["queries"] == 29 and metrics["retrieval"]["b_to_a"]["queries"] == \
        len(set(texts))
    assert "retrieval" in metrics["baselines"]["random_init"]


def test_the_similarity_plot_shows_distinct_pairs_on_its_diagonal(tmp_path, monkeypatch):
    from contrastkit.evaluate import plots

    drawn = []
    monkeypatch.setattr(plots, "plot_similarity_matrix", lambda s, path, a, b, title: drawn.append((s, a, b)))
    extras = evaluation_extras(HandSet(TEXTS), EvalContext(_data(), CPU, scores=False, plot_dir=tmp_path))
    assert extras.metrics == {} and extras.plots == [tmp_path / "similarity.png"]
    (matrix, a, b), = drawn
    assert (a, b) == ("x", "text")
    assert torch.equal(matrix, torch.eye(3, dtype=torch.float64))  # pair 3 repeats pair 1: left out


def test_the_similarity_plot_is_written(tmp_path):
    extras = evaluation_extras(HandSet(TEXTS), EvalContext(_data(), CPU, scores=False, plot_dir=tmp_path,
                                                           title="clip on pairs"))
    assert extras.plots == [tmp_path / "similarity.png"] and (tmp_path / "similarity.png").stat().st_size > 1000


def test_plotted_pairs_take_the_first_pairs_of_unseen_items():
    pairs = paired.HeldOutPairs.of(_data().test, "x", "text")
    assert paired.plotted_pairs(pairs).tolist() == [0, 1, 2]
    assert paired.plotted_pairs(pairs, limit=2).tolist() == [0, 1]
    assert decode_texts(pairs.b) == ["one", "two", "three"]


def test_baselines_of_two_extras_merge_by_feature_set():
    extras = EvalExtras(metrics={"baselines": {"random_init": {"speaker_acc": 0.1}, "mfcc": {"speaker_acc": 0.2}}})
    _add_with_baselines(extras, EvalExtras(metrics={"retrieval": {}, "baselines": {"random_init": {"retrieval": 1}}}),
                        "paired")
    assert extras.metrics["baselines"] == {"random_init": {"speaker_acc": 0.1, "retrieval": 1},
                                           "mfcc": {"speaker_acc": 0.2}}
    try:
        _add_with_baselines(extras, EvalExtras(metrics={"baselines": {"mfcc": {"speaker_acc": 0.3}}}), "again")
    except ValueError as exc:
        assert "again returned baselines.mfcc metric(s) ['speaker_acc']" in str(exc)
    else:
        raise AssertionError("a baseline metric given twice must be refused")


def test_the_table_shows_retrieval_and_zero_shot_of_an_unlabelled_run(monkeypatch):
    monkeypatch.setattr(load, "ZERO_SHOT_COMPANIONS", {"pairs": "words"})
    monkeypatch.setattr(paired, "_load_companion", lambda name, seed: _companion(torch.stack([E[0], E[1]]), [0, 1]))
    metrics, _ = evaluate_method(HandSet(TEXTS), _data(), random_method=HandSet(COLLAPSED), device=CPU)
    table = format_table({"method": "clip", "encoder": "linear", "data": "pairs", **metrics})
    assert "cross-modal retrieval on the 4 held-out pairs (3 distinct x, 3 distinct text)" in table
    assert "\nx -> text              100.0 %  100.0 %  100.0 %\n" in table
    assert "\nrandom init text -> x  33.3 %   100.0 %  100.0 %\n" in table
    assert "\nchance x -> text       33.3 %   100.0 %  100.0 %\n" in table
    assert "zero-shot accuracy on words (2 classes, 2 items): trained 100.0 %, random init 50.0 %, chance 50.0 %" \
        in table
