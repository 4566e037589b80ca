"""The triplet method: P x K batches of a run, the triplet-state fractions by hand, the logged columns, exact resume,
the registry's settings and refusals, the evaluation's metrics and plots, and (slow) that training helps Recall@1."""

import copy
import csv
import json
from pathlib import Path

import pytest
import torch

from contrastkit.config import TrainConfig
from contrastkit.data.samplers import PKSampler
from contrastkit.evaluate.method import method_features
from contrastkit.evaluate.retrieval import recall_at_1
from contrastkit.methods import build_method
from contrastkit.methods.base import Batch
from contrastkit.methods.triplet import STATE_KEYS, TripletEmbedding
from contrastkit.models.encoders import SmallCNN
from contrastkit.report import evaluate_run
from contrastkit.settings import SettingsError
from contrastkit.similarity import MahalanobisDistance
from contrastkit.train import Trainer
from tests import references as reference
from tests.helpers import assert_same_state, train_in_two_sessions


def _config(out: Path, **kw) -> TrainConfig:
    options = kw.pop("method_options", {"samples_per_class": 4, "embedding_dim": 16})
    base = dict(method="triplet", data="digits", out=str(out), epochs=2, batch_size=32, log_every=1, progress=False,
                method_options=options)
    return TrainConfig(**{**base, **kw})


def test_a_triplet_run_draws_p_classes_of_k_samples(tmp_path):
    trainer = Trainer.from_config(_config(tmp_path / "run"))
    assert isinstance(trainer.sampler, PKSampler) and (trainer.sampler.p, trainer.sampler.k) == (8, 4)
    labels = trainer.data.train.labels
    for index in list(trainer.sampler.batches(0))[:10]:
        batch = trainer.batches(index, trainer.generator)
        assert torch.equal(batch.labels.cpu(), labels[index])
        classes, counts = torch.unique(batch.labels, return_counts=True)
        assert len(classes) == 8 and counts.tolist() == [4] * 8  # P distinct classes, K samples each
        blocks = batch.labels.view(8, 4)  # class by class
        assert bool((blocks == blocks[:, :1]).all())
        assert len(batch.views) == 1 and batch.views[0].shape == (32, 1, 8, 8)  # one augmented view


def test_triplet_states_on_a_hand_made_batch():
    """1-D embeddings 0, 1/8 (class 0) and 5/16, 1 (class 1), margin 1/4; the 8 valid triplets (a, p, n):

    a=0 p=1: d_ap=1/8; n=2 d=5/16 semi-hard (< 3/8), n=3 d=1 easy
    a=1 p=0: d_ap=1/8; n=2 d=3/16 semi-hard,         n=3 d=7/8 easy
    a=2 p=3: d_ap=11/16; n=0 d=5/16 hard,            n=1 d=3/16 hard
    a=3 p=2: d_ap=11/16; n=0 d=1 easy (>= 15/16),    n=1 d=7/8 semi-hard
    -> hard 2/8, semi-hard 3/8, easy 3/8."""
    method = TripletEmbedding(SmallCNN(image_size=8, feature_dim=8), 8, embedding_dim=1, margin=0.25)
    z = torch.tensor([[0.0], [0.125], [0.3125], [1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    states = method.triplet_states(z, labels)
    assert {k: float(v) for k, v in states.items()} == {"frac_hard": 0.25, "frac_semihard": 0.375, "frac_easy": 0.375}
    # the step logs the same numbers for the embeddings it computes
    method.embed = lambda x: z  # type: ignore[method-assign]
    out = method(Batch([torch.zeros(4, 1, 8, 8)], torch.arange(4), labels))
    assert [float(out.logs[k]) for k in STATE_KEYS] == [0.25, 0.375, 0.375]
    # the semi-hard loss is the mean of d_ap - d_an + m over the 3 semi-hard triplets
    expected = ((0.125 - 0.3125 + 0.25) + (0.125 - 0.1875 + 0.25) + (0.6875 - 0.875 + 0.25)) / 3
    assert float(out.loss) == pytest.approx(expected, abs=1e-6)
    none = method.triplet_states(z, torch.tensor([0, 1, 2, 3]))  # no positives: no valid triplet
    assert [float(v) for v in none.values()] == [0.0, 0.0, 0.0]


def test_settings_measures_and_refusals():
    encoder = SmallCNN(image_size=8, feature_dim=8)
    method = build_method("triplet", encoder, 8, measure="mahalanobis", embedding_dim=5, mining="hard")
    assert isinstance(method.measure, MahalanobisDistance) and method.loss_fn.mining == "hard"
    assert "loss_fn.distance.factor" in method.state_dict()  # the learned L is checkpointed with the method
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        method.measure.factor.mul_(3.0)
        z = method.embed(x)
        off = ~torch.eye(6, dtype=torch.bool)  # (the core's pairwise form is not exactly 0 on the diagonal)
        assert torch.allclose(torch.cdist(method.features(x), method.features(x))[off],
                              method.measure.pairwise(z, z)[off], atol=1e-4)  # Euclidean on features = the metric
    cos = build_method("triplet", SmallCNN(image_size=8, feature_dim=8), 8, measure="cosine",
                       normalize_embedding=False)
    assert torch.allclose(cos.features(x).norm(dim=1), torch.ones(6))
    with pytest.raises(SettingsError, match="measure"):
        build_method("triplet", encoder, 8, measure="manhattan")
    with pytest.raises(SettingsError, match="mining"):
        build_method("triplet", encoder, 8, mining="semihard")
    with pytest.raises(SettingsError, match="margin"):
        build_method("triplet", encoder, 8, margin=0.0)
    with pytest.raises(ValueError, match="multiple of the samples per class"):
        Trainer.from_config(_config(Path("unused"), batch_size=30))
    with pytest.raises(ValueError, match="needs the labels"):
        method(Batch([x], torch.arange(6)))


def _log(out: Path) -> list[dict[str, str]]:
    with (out / "train_log.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_triplet_run_logs_the_states_and_resumes_exactly(tmp_path):
    options = {"samples_per_class": 4, "embedding_dim": 16, "measure": "mahalanobis"}
    straight = Trainer.from_config(_config(tmp_path / "a", method_options=options))
    seeded_init = copy.deepcopy(straight.method)  # what the evaluation rebuilds as its random-init baseline
    straight.fit()
    rows = _log(tmp_path / "a")
    assert len(rows) == 2 * straight.steps_per_epoch == 88
    assert list(rows[0])[-3:] == ["frac_hard", "frac_semihard", "frac_easy"]
    for row in rows:
        fractions = [float(row[k]) for k in STATE_KEYS]
        assert all(0 <= f <= 1 for f in fractions) and sum(fractions) == pytest.approx(1.0, abs=1e-6)
    second = train_in_two_sessions(
        lambda: Trainer.from_config(_config(tmp_path / "b", method_options=options, checkpoint_every=10)),
        stop_after=25)
    columns = ("step", "loss", *STATE_KEYS)
    assert [[r[c] for c in columns] for r in _log(tmp_path / "b")] == [[r[c] for c in columns] for r in rows]
    assert_same_state(straight.method, second.method)
    # the evaluation: Recall@1 next to kNN in metrics.json and the table, and the triplet-state plot
    metrics = evaluate_run(tmp_path / "a", quiet=True)
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    for key in ("recall_at_1", "knn_acc", "linear_acc"):
        assert saved[key] == metrics[key]
    # each number recomputed without the evaluation code (tests/references.py): features from the methods
    # themselves, Recall@1 and the kNN vote as float64 loops, the probe in scikit-learn
    data = straight.data
    features = {}
    for name, method in (("trained", straight.method), ("random_init", seeded_init)):
        method.eval()
        with torch.no_grad():
            features[name] = [method.features(d.x.float() / 255).numpy() for d in (data.train, data.test)]
    features["raw_pixels"] = [d.x.reshape(len(d.x), -1).numpy() / 255 for d in (data.train, data.test)]
    y, y_test = data.train.labels.numpy(), data.test.labels.numpy()
    for name, (_, test) in features.items():
        assert saved["results"][name]["recall_at_1"] == pytest.approx(reference.recall_at_1(test, y_test), abs=1e-12)
    assert saved["recall_at_1"] == saved["results"]["trained"]["recall_at_1"]
    train, test = features["trained"]
    assert saved["knn_acc"] == pytest.approx(reference.weighted_knn_accuracy(train, y, test, y_test), abs=1e-12)
    n_test = len(y_test)  # solver round-off: one test sample
    assert saved["linear_acc"] == pytest.approx(reference.linear_probe_accuracy(train, y, test, y_test), abs=1 / n_test)
    assert (tmp_path / "a" / "triplet_states.png").stat().st_size > 0
    assert (tmp_path / "a" / "training_curves.png").exists()


@pytest.mark.slow
def test_training_lifts_recall_at_1_well_above_the_random_encoder(tmp_path):
    """Three epochs (75 steps of 10 x 16 digits) on mnist5k: Recall@1 on the 1,000 held-out images against the same
    encoder at its seeded initialisation (0.77 for the defaults' seed); the easy triplets' share grows."""
    config = TrainConfig(method="triplet", data="mnist5k", out=str(tmp_path / "run"), epochs=3, log_every=5,
                         progress=False)
    trainer = Trainer.from_config(config)
    random_init = copy.deepcopy(trainer.method)
    trainer.fit()
    test = trainer.data.test
    trained = recall_at_1(method_features(trainer.method, test.x), test.labels)
    before = recall_at_1(method_features(random_init, test.x), test.labels)
    assert trained > 0.9 and trained > before + 0.1, (trained, before)
    states = _log(tmp_path / "run")
    assert float(states[-1]["frac_easy"]) > float(states[0]["frac_easy"])
    assert float(states[-1]["frac_hard"]) < float(states[0]["frac_hard"])


# --- issue 15 item 3: TripletSettings is the one home of the triplet method's defaults -------------------------------

@pytest.mark.parametrize(("name", "value", "read"), [
    ("embedding_dim", 3, lambda m: m.head.out_features),
    ("margin", 0.7, lambda m: m.margin),
    ("mining", "hard", lambda m: m.loss_fn.mining),
    ("measure", "cosine", lambda m: m.measure_name),
    ("samples_per_class", 4, lambda m: m.batch_spec.samples_per_class),
    ("normalize_embedding", False, lambda m: m.normalize_embedding),
    ("augmented", False, lambda m: m.batch_spec.views == 1),
])
def test_triplet_keyword_defaults_come_from_its_settings_class(monkeypatch, name, value, read) -> None:
    from torch import nn

    from contrastkit.methods.triplet import TripletSettings

    assert read(TripletEmbedding(nn.Linear(6, 5), 5)) == getattr(TripletSettings(), name) != value
    monkeypatch.setattr(TripletSettings.__dataclass_fields__[name], "default", value)  # the one home, changed
    assert read(TripletEmbedding(nn.Linear(6, 5), 5)) == value
    assert read(TripletEmbedding(nn.Linear(6, 5), 5, settings=TripletSettings(**{name: value}))) == value


def test_triplet_is_built_from_its_settings_object() -> None:
    from torch import nn

    from contrastkit.methods.registry import GENERIC_TRAINING_DEFAULTS, get_method
    from contrastkit.methods.triplet import TRIPLET_TRAINING_DEFAULTS, TripletSettings

    settings = TripletSettings(embedding_dim=3, margin=0.4)
    method = build_method("triplet", nn.Linear(6, 5), 5, settings=settings)
    assert method.settings is settings and method.head.out_features == 3 and method.margin == 0.4
    with pytest.raises(TypeError, match="TripletEmbedding: give either `settings` or keyword settings"):
        TripletEmbedding(nn.Linear(6, 5), 5, settings=settings, margin=0.3)
    assert get_method("triplet").training_defaults == {**GENERIC_TRAINING_DEFAULTS, **TRIPLET_TRAINING_DEFAULTS}
