"""The CPC paper's two probes (speaker from mean-pooled features, phone per frame) on the synthetic speech:
hand-crafted features well above chance, random features at chance, an independent scikit-learn reference,
-1 frames ignored, determinism, held-out utterances for C, frame alignment, and clear errors."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.toyspeech import toy_speech
from contrastkit.evaluate.audio_features import log_mel, mfcc
from contrastkit.evaluate.linear_probe import linear_probe_accuracy
from contrastkit.evaluate.sequence_probes import (
    PHONE_CS,
    align_frames,
    log_mel_features,
    mfcc_features,
    phone_probe,
    probe_features,
    speaker_probe,
)
from contrastkit.methods.cpc import CPC
from contrastkit.models.factory import encoder_for_data
from contrastkit.models.sequence import Conv1dEncoder
from tests.references import phone_probe_accuracy


@pytest.fixture(scope="module")
def speech() -> DatasetSplits:
    return toy_speech()  # 192 train / 64 test utterances of 8 speakers, 64 frames of 10 phones each


@pytest.fixture(scope="module")
def mfccs(speech: DatasetSplits) -> tuple[np.ndarray, np.ndarray]:
    return mfcc_features(speech.train), mfcc_features(speech.test)


def test_mfcc_and_log_mel_probes_are_well_above_chance(speech: DatasetSplits,
                                                       mfccs: tuple[np.ndarray, np.ndarray]) -> None:
    # measured on toy_speech(): MFCC speaker 0.547 / phone 0.982, log-mel 0.906 / 0.991; chance 0.125 for both
    out = probe_features(*mfccs, speech)
    assert out["speaker_chance"] == pytest.approx(0.125) and out["phone_chance"] < 0.15
    assert out["speaker_acc"] >= 0.40
    assert out["phone_acc"] >= 0.90
    assert out["notes"] == [] and out["alignment"].startswith("features already on the label grid")
    assert out["phone"]["test_frames"] == 64 * 64 and out["phone"]["train_frames"] == 192 * 64
    mel = probe_features(log_mel_features(speech.train), log_mel_features(speech.test), speech, phone=False)
    assert mel["speaker_acc"] >= 0.75 and mel["phone_acc"] is None


def test_random_features_score_about_chance(speech: DatasetSplits) -> None:
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(192, 64, 48)), rng.normal(size=(64, 64, 48))
    out = probe_features(train, test, speech)
    # measured 0.094 and 0.109: 64 test utterances leave a standard error of about 0.04 on the speaker number
    assert out["speaker_acc"] <= out["speaker_chance"] + 0.15
    assert abs(out["phone_acc"] - 0.1) <= 0.04  # 10 phones: random predictions are right 1 time in 10


def test_phone_probe_matches_an_independent_sklearn_fit(mfccs: tuple[np.ndarray, np.ndarray],
                                                        speech: DatasetSplits) -> None:
    train, test = mfccs
    y, y_test = speech.train.frame_labels.numpy(), speech.test.frame_labels.numpy()
    out = phone_probe(train, y, test, y_test, C=0.1)
    scaler = StandardScaler().fit(train.reshape(-1, 39).astype(np.float64))
    with threadpool_limits(limits=1, user_api="blas"):  # two BLAS threads were several times slower here
        model = LogisticRegression(C=0.1, max_iter=1000).fit(scaler.transform(train.reshape(-1, 39)), y.ravel())
    expected = np.mean(model.predict(scaler.transform(test.reshape(-1, 39))) == y_test.ravel())
    assert out["accuracy"] == pytest.approx(expected, abs=1 / 4096)  # at most one frame apart (solver round-off)
    assert out["C"] == 0.1 and out["validation_accuracies"] == {} and out["converged"]
    assert out["chance"] == np.bincount(y_test.ravel()).max() / y_test.size


def test_frames_labelled_minus_one_are_ignored_on_both_sides(mfccs: tuple[np.ndarray, np.ndarray],
                                                             speech: DatasetSplits) -> None:
    train, test = mfccs
    rng = np.random.default_rng(1)
    y, y_test = speech.train.frame_labels.numpy().copy(), speech.test.frame_labels.numpy().copy()
    y[rng.random(y.shape) < 0.3] = -1
    y_test[rng.random(y_test.shape) < 0.3] = -1
    base = phone_probe(train, y, test, y_test, max_train_frames=3000)
    spoiled, spoiled_test = train.copy(), test.copy()  # garbage (and misleading) features on unlabelled frames
    spoiled[y == -1] = 1e3 * rng.normal(size=(int((y == -1).sum()), 39))
    spoiled_test[y_test == -1] = -1e3
    out = phone_probe(spoiled, y, spoiled_test, y_test, max_train_frames=3000)
    assert out["accuracy"] == base["accuracy"]
    assert out["train_frames_labelled"] == int((y >= 0).sum()) and out["train_frames"] == 3000
    assert out["test_frames"] == int((y_test >= 0).sum())
    assert out["chance"] == np.bincount(y_test[y_test >= 0]).max() / (y_test >= 0).sum()
    assert any("uniform random subsample" in note for note in out["notes"])


def test_a_seed_fixes_everything_and_c_can_be_chosen_on_held_out_utterances(
        mfccs: tuple[np.ndarray, np.ndarray], speech: DatasetSplits) -> None:
    train, test = mfccs
    y, y_test = speech.train.frame_labels, speech.test.frame_labels
    first = phone_probe(train, y, test, y_test, C=None, max_train_frames=4000, seed=3)
    again = phone_probe(torch.from_numpy(train), y, torch.from_numpy(test), y_test, C=None, max_train_frames=4000,
                        seed=3)
    assert first == again
    assert sorted(first["validation_accuracies"]) == sorted(PHONE_CS)
    assert first["validation_accuracy"] == max(first["validation_accuracies"].values())
    assert first["C"] == min(c for c, a in first["validation_accuracies"].items() if a == first["validation_accuracy"])
    assert speaker_probe(train, speech.train.labels, test, speech.test.labels, seed=3) == \
        speaker_probe(train, speech.train.labels, test, speech.test.labels, seed=3)


def test_c_is_validated_on_whole_held_out_utterances() -> None:
    # each utterance: one random class for all its frames and one random "fingerprint" feature vector.
    # On a random frame-level split the probe memorises fingerprints (measured 1.0); held-out utterances share
    # nothing with the fitted ones, so every C validates at or below chance (1 / 8; measured <= 0.054)
    rng = np.random.default_rng(0)
    n, f, d = 200, 20, 64
    labels = np.repeat(rng.integers(0, 8, size=(n, 1)), f, axis=1)
    feats = np.repeat(rng.normal(size=(n, 1, d)), f, axis=1) + 0.01 * rng.normal(size=(n, f, d))
    out = phone_probe(feats, labels, feats[:20], labels[:20], C=None)
    assert max(out["validation_accuracies"].values()) < 0.3
    x, y = feats.reshape(-1, d), labels.ravel()
    frames = rng.permutation(y.size)
    fit, val = frames[:3200], frames[3200:]
    with threadpool_limits(limits=1, user_api="blas"):
        assert LogisticRegression(C=1.0, max_iter=1000).fit(x[fit], y[fit]).score(x[val], y[val]) > 0.9


def test_speaker_probe_is_the_library_probe_on_mean_pooled_features(mfccs: tuple[np.ndarray, np.ndarray],
                                                                    speech: DatasetSplits) -> None:
    train, test = mfccs
    y, y_test = speech.train.labels, speech.test.labels
    out = speaker_probe(train, y, test, y_test)
    direct = linear_probe_accuracy(train.mean(1), y, test.mean(1), y_test)
    assert out["accuracy"] == direct.accuracy and out["C"] == direct.C and out["folds"] == 5
    assert speaker_probe(train.mean(1), y, test.mean(1), y_test) == out  # already pooled (N, D) is accepted
    partly = y.clone()
    partly[:3] = -1
    missing = speaker_probe(train, partly, test, y_test)
    assert missing["train_utterances"] == 189 and "3 train utterance(s) without a speaker label" in missing["notes"][0]
    single = speaker_probe(train, torch.zeros(192, dtype=torch.int64), test, y_test)
    assert single["accuracy"] is None and "a single speaker" in single["notes"][0]


def test_align_frames_repeats_coarse_steps_and_mean_pools_fine_ones() -> None:
    x = np.arange(2 * 3 * 2, dtype=np.float64).reshape(2, 3, 2)
    same, how = align_frames(x, 3)
    assert same is not None and np.array_equal(same, x) and "already" in how
    repeated, how = align_frames(x, 6)
    assert np.array_equal(repeated[:, ::2], x) and np.array_equal(repeated[:, 1::2], x) and "repeated 2" in how
    pooled, how = align_frames(x.repeat(4, axis=1) + np.tile([-1.0, 1.0], 6)[None, :, None], 3)
    np.testing.assert_allclose(pooled, x)
    assert "mean-pooled in groups of 4" in how
    with pytest.raises(ValueError, match="cannot be aligned"):
        align_frames(x, 4)


def test_probe_features_aligns_a_finer_or_coarser_grid(mfccs: tuple[np.ndarray, np.ndarray],
                                                       speech: DatasetSplits) -> None:
    train, test = mfccs
    fine = probe_features(train.repeat(4, axis=1), test.repeat(4, axis=1), speech, speaker=False)
    exact = probe_features(train, test, speech, speaker=False)
    assert fine["phone_acc"] == exact["phone_acc"] and "groups of 4" in fine["alignment"]
    coarse = probe_features(train[:, ::2], test[:, ::2], speech, speaker=False)
    assert "repeated 2 times" in coarse["alignment"] and coarse["phone"]["test_frames"] == 64 * 64
    with pytest.raises(ValueError, match="cannot be aligned"):
        probe_features(train[:, :63], test[:, :63], speech)
    with pytest.raises(ValueError, match="192 utterances, the test split 64"):
        probe_features(train, train, speech)


def test_random_init_networks_run_through_the_same_probes(speech: DatasetSplits) -> None:
    # the paper's random-network baseline: CPC's g_enc (one step per 10 ms) + GRU; and the 40x conv encoder,
    # whose 4 steps per 10 ms frame are mean-pooled onto the label frames
    g_enc, latent = encoder_for_data("cpc", speech, width=32)
    cpc = CPC(g_enc, latent, context=32).eval()
    with torch.no_grad():
        contexts = [cpc.frame_features(d.x) for d in (speech.train, speech.test)]  # (N, 64, 32)
        steps = Conv1dEncoder(1, width=8).eval().steps(speech.test.x).transpose(1, 2)  # (64, 256, 8)
    out = probe_features(*contexts, speech)
    assert out["alignment"].startswith("features already")
    # 192 x 64 = 12,288 train frames (< 20,000: all fitted) at the default C = 1: the same fit in sklearn
    assert out["phone_acc"] == pytest.approx(phone_probe_accuracy(contexts[0].numpy(),
                                                                     speech.train.frame_labels.numpy(),
                                                                     contexts[1].numpy(),
                                                                     speech.test.frame_labels.numpy()),
                                             abs=1 / 4096)  # at most one of the 4,096 test frames apart
    aligned, how = align_frames(steps, 64)
    assert aligned.shape == (64, 64, 8) and "groups of 4" in how


def test_the_train_subsample_is_the_documented_uniform_draw() -> None:
    # 150 utterances x 40 frames of 6 classes, features = class mean + noise; 6,000 labelled train frames of which
    # 1,000 are kept: np.random.default_rng(seed).choice(labelled flat ids, 1000, replace=False), sorted.
    # (The probe's time on 50,000 x 256 frames is a benchmark: benchmarks/phone_probe.py.)
    rng = np.random.default_rng(4)
    means = rng.normal(size=(6, 12))
    labels = rng.integers(0, 6, size=(150, 40))
    feats = means[labels] + 1.5 * rng.normal(size=(150, 40, 12))
    test_labels = rng.integers(0, 6, size=(30, 40))
    test = means[test_labels] + 1.5 * rng.normal(size=(30, 40, 12))
    out = phone_probe(feats, labels, test, test_labels, max_train_frames=1000, seed=9)
    assert out["train_frames"] == 1000 and out["train_frames_labelled"] == 6000 and out["test_frames"] == 1200
    kept = np.sort(np.random.default_rng(9).choice(6000, 1000, replace=False))
    flat, flat_y = feats.reshape(-1, 12)[kept], labels.ravel()[kept]
    expected = phone_probe_accuracy(flat[None], flat_y[None], test, test_labels)
    assert out["accuracy"] == pytest.approx(expected, abs=1 / 1200)  # at most one test frame apart
    first = phone_probe_accuracy(feats.reshape(-1, 12)[None, :1000], labels.ravel()[None, :1000], test,
                                    test_labels)
    assert 0.5 < expected != first  # informative features; the first 1,000 frames would give another number


def test_baseline_helpers_and_bad_inputs(speech: DatasetSplits, mfccs: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(mfccs[0], mfcc(speech.train.x))
    np.testing.assert_array_equal(log_mel_features(speech.test.x[:4]), log_mel(speech.test.x[:4]))
    assert mfccs[0].shape == (192, 64, 39)
    with pytest.raises(ValueError, match="frame hop 160"):
        mfcc_features(speech.train, hop=80)
    train, test = mfccs
    y, y_test = speech.train.frame_labels, speech.test.frame_labels
    with pytest.raises(ValueError, match="feature dimensions differ"):
        phone_probe(train, y, test[..., :13], y_test)
    with pytest.raises(ValueError, match="must have shape"):
        phone_probe(train, y[:, :10], test, y_test)
    unlabelled = DatasetSplits("x", ArrayDataset(speech.train.x, speech.train.labels),
                               ArrayDataset(speech.test.x, speech.test.labels), 8)
    out = probe_features(train, test, unlabelled, speaker=False)
    assert out["phone_acc"] is None and out["notes"] == ["phone probe skipped: the dataset has no frame labels"]
    nothing = phone_probe(train, y, test, -torch.ones_like(y_test))
    assert nothing["accuracy"] is None and nothing["notes"] == ["phone probe skipped: no labelled test frame"]
