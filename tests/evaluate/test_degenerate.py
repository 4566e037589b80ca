"""Degenerate features (all one point, no direction, NaN, too few, extreme scales): skipped maps with a reason, and
notes beside the scores -- never a native crash, a warning or a NaN."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from contrastkit.evaluate import embed_2d, evaluate_features
from contrastkit.evaluate.degenerate import DegenerateFeaturesError, is_collapsed, map_problem
from contrastkit.evaluate.maps import map_trustworthiness


def _clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """30 points in 3 tight, far-apart clusters of 6-D space, and their labels."""
    labels = np.repeat(np.arange(3), 10)
    return np.eye(3, 6)[labels] * 8 + np.random.default_rng(seed).normal(scale=0.3, size=(30, 6)), labels


# t-SNE died natively (a segmentation fault, exit 139) on these inputs, so they run in a process of their own
_NATIVE_CRASH_CASES = """
import json
import numpy as np
from contrastkit.evaluate import embed_2d

labels = np.repeat(np.arange(3), 10)
x = np.eye(3, 6)[labels] * 8 + np.random.default_rng(0).normal(scale=0.3, size=(30, 6))
result = {}
for name, features in {"ones": np.ones((30, 8), np.float32), "zeros": np.zeros((4, 8)),
                       "last_bits": (1 + np.arange(30)[:, None] % 2 * 2.0**-23 + np.zeros(8)).astype(np.float32)
                       }.items():
    try:
        embed_2d(features, "tsne")
        result[name] = "drawn"
    except ValueError as exc:
        result[name] = f"{type(exc).__name__}: {exc}"
for name, factor in {"tiny": 2.0**-80, "huge": 2.0**70, "plain": 1.0}.items():  # powers of two: exact scaling
    result[name] = embed_2d(x * factor, "tsne").tolist()
print(json.dumps(result))
"""


def test_tsne_skips_features_that_are_one_point_and_maps_any_scale_alike():
    done = subprocess.run([sys.executable, "-c", _NATIVE_CRASH_CASES], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]  # was -11: a segmentation fault inside t-SNE
    assert "Warning" not in done.stderr
    result = json.loads(done.stdout)
    assert result["ones"] == ("DegenerateFeaturesError: embed_2d: no tsne map: all 30 feature vectors are "
                              "identical: nothing to map (a collapsed representation, or constant inputs)")
    assert result["zeros"].startswith("DegenerateFeaturesError: embed_2d: no tsne map: all 4 feature vectors are "
                                      "identical")
    assert result["last_bits"].startswith("DegenerateFeaturesError: embed_2d: no tsne map: all 30 feature vectors "
                                          "are one point up to rounding")  # float32 cannot tell them apart
    # a shift and a power-of-two factor give the same t-SNE input, so the same map (features at 1e-24 crashed
    # natively, at 1e21 gave all-zero maps with overflow warnings)
    plain = np.array(result["plain"])
    assert np.array_equal(np.array(result["tiny"]), plain) and np.array_equal(np.array(result["huge"]), plain)
    distances = np.linalg.norm(plain[:, None] - plain[None], axis=-1) + np.diag(np.full(30, np.inf))
    labels = np.repeat(np.arange(3), 10)
    assert (labels[distances.argmin(1)] == labels).all()  # each point's map neighbour is of its cluster


def test_map_problem_names_what_no_map_can_be_drawn_from():
    x, _ = _clusters()
    assert map_problem(x, "tsne") is None and map_problem(x[:, :2], "identity") is None
    assert map_problem(x[:2], "tsne") == "2 point(s): a tsne map needs at least 3"
    nan = x.copy()
    nan[3, 1] = np.nan
    nan[4, 0] = np.inf
    assert map_problem(nan, "pca") == "the features hold 2 NaN/Inf value(s)"
    assert map_problem(x[:, :1], "pca") == "the features have 1 dimension(s); a 2-D pca map needs at least 2"
    assert map_problem(np.full((5, 2), 3.0), "identity").startswith("all 5 feature vectors are identical")
    # float32 rows 1 rounding step apart are one point; rows 1e-4 apart (relative) are not
    step = np.float32(1) + np.finfo(np.float32).eps
    assert is_collapsed(np.array([[1, 1], [step, 1]], dtype=np.float32))
    assert not is_collapsed(np.array([[1, 1], [1.0001, 1]], dtype=np.float32))
    assert not is_collapsed(np.array([[1, 1], [1 + 1e-12, 1]]))  # float64 tells these apart


def test_pca_map_scales_exactly_and_refuses_a_single_direction():
    x, _ = _clusters()
    tiny = embed_2d(x * 2.0**-600, "pca")  # its variance (2^-1200) underflowed float64: NaN ratios, warnings
    # independently: the centred features, divided by their largest magnitude, projected on the top 2 singular
    # vectors (up to the sign of each axis)
    centred = x - x.mean(0)
    centred /= np.abs(centred).max()
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(np.abs(tiny), np.abs(centred @ vt[:2].T), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(tiny, embed_2d(x, "pca"))
    line = np.outer(np.arange(30.0), [1.0, 2.0, -1.0]) + 5.0  # rank 1 once centred
    with pytest.raises(DegenerateFeaturesError, match=r"no pca map: the features vary along a single direction"):
        embed_2d(line, "pca")


def test_probe_scores_of_one_point_features_are_guesses_with_a_note():
    y_train = np.random.default_rng(0).permutation([0] * 25 + [1] * 15)
    y_test = np.array([0, 1, 0, 0, 1, 0, 1, 0, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero or overflow warnings on the way
        result = evaluate_features(np.ones((40, 4), np.float32), y_train, np.ones((10, 4), np.float32), y_test,
                                   knn_k=40)
    # the probe can only predict the train majority (class 0), and kNN over all 40 tied neighbours votes by class
    # counts: both are right on the 6 test samples of class 0
    assert result["linear_accuracy"] == result["knn_accuracy"] == 0.6
    assert result["notes"][:2] == [
        "the 40 train feature vectors are all one point (a collapsed representation, or constant inputs): kNN's "
        "neighbours are all ties and the linear probe sees no signal, so both scores are guesses",
        "the 10 test feature vectors are all one point: every test sample gets the same prediction"]


def test_knn_names_rows_without_a_direction():
    x, labels = _clusters()
    train = torch.from_numpy(x).float()
    train[[0, 11]] = 0.0  # norm 0
    train[20] = torch.tensor([1e20, 1e20, 0, 0, 0, 0])  # its float32 norm overflows
    test = torch.from_numpy(_clusters(seed=1)[0]).float()
    test[5] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluate_features(train, labels, test, labels, knn_k=5)
    assert ("kNN: 3 of the train rows and 1 of the test rows have no direction (norm 0, or beyond the float range): "
            "their cosine similarity to every vector is 0, so their neighbours / votes are ties") in result["notes"]
    plain = evaluate_features(torch.from_numpy(x).float(), labels, torch.from_numpy(_clusters(seed=1)[0]).float(),
                              labels, knn_k=5)
    assert not any("direction" in note or "one point" in note for note in plain["notes"])


def test_trustworthiness_of_points_at_one_place_is_none_with_a_note():
    # inputs on a line (no tied distances): PCA to 2-D keeps every neighbourhood, so its trustworthiness is 1
    line = torch.from_numpy(np.random.default_rng(0).uniform(0, 10, 24))[:, None] * torch.tensor([1.0, 2.0, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        collapsed_map = map_trustworthiness(line, line[::2], torch.ones(12, 2))
        constant_inputs = map_trustworthiness(torch.ones(24, 3), torch.ones(12, 3), torch.randn(12, 2))
    assert collapsed_map == {"trustworthiness": None, "pca_trustworthiness": 1.0, "trustworthiness_k": 5,
                             "notes": ["trustworthiness of the map skipped: it puts all 12 held-out points at one "
                                       "place (its neighbours are ties)"]}
    assert constant_inputs == {"trustworthiness": None, "pca_trustworthiness": None, "trustworthiness_k": 5,
                               "notes": ["trustworthiness skipped: the 12 held-out inputs are all one point, so "
                                         "there are no neighbourhoods to keep"]}


def test_speaker_and_phone_probes_of_one_point_features_are_guesses_with_a_note():
    from contrastkit.evaluate.sequence_probes import phone_probe, speaker_probe

    train_speakers = np.repeat([0, 1, 2], [12, 9, 9])  # speaker 0 the most frequent
    test_speakers = np.array([0, 0, 1, 2, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        speaker = speaker_probe(np.ones((30, 5, 4), np.float32), train_speakers, np.ones((6, 5, 4), np.float32),
                                test_speakers)
        phone = phone_probe(np.zeros((30, 5, 4), np.float32), np.tile([0, 0, 0, 1, 2], (30, 1)),
                            np.zeros((6, 5, 4), np.float32), np.tile([0, 1, 2, 1, 2], (6, 1)))
    assert speaker["accuracy"] == 2 / 6  # no signal: the train majority, speaker 0, for every test utterance
    assert phone["accuracy"] == 1 / 5  # no signal: the train majority, phone 0, for every test frame
    assert speaker["notes"] == ["speaker probe: the 30 train utterances' pooled features are all one point (a "
                                "collapsed representation, or constant inputs): the probe sees no signal, so its "
                                "accuracy is a guess"]
    assert phone["notes"] == ["phone probe: the 150 train frames' features are all one point (a collapsed "
                              "representation, or constant inputs): the probe sees no signal, so its accuracy is a "
                              "guess"]
