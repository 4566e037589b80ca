"""What a method adds to its evaluation (contrastkit.evaluate.extras): the extras of its declared capabilities and
of its own hook, through the one call that ``eval`` and ``plot`` make.

Each value is recomputed here without the evaluation code: DrLIM's trustworthiness by its defining sum and PCA by
an SVD (tests/references.py), CPC's prediction accuracy by an explicit loop over every prediction, the triplet
states of the test split by a loop over every valid triplet. The triplet plot is switched on by the method, not by
the columns of train_log.csv."""

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from contrastkit.config import TrainConfig
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.evaluate.extras import evaluation_extras
from contrastkit.evaluate.method import evaluate_method
from contrastkit.methods import build_method
from contrastkit.methods.base import Batch, BatchSpec, EvalContext, EvalExtras, Method, StepOutput, as_method
from contrastkit.methods.cpc import CPC
from contrastkit.methods.drlim import DrLIM
from contrastkit.methods.triplet import TripletEmbedding
from contrastkit.models.sequence import Conv1dEncoder
from contrastkit.report import plot_run
from contrastkit.run import Run
from tests.references import trustworthiness

CPU = torch.device("cpu")


def _vectors(n_train: int = 30, n_test: int = 24, dim: int = 6, classes: int = 3, seed: int = 0) -> DatasetSplits:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_train + n_test) % classes
    x = torch.randn(n_train + n_test, dim, generator=g) + 2.0 * nn.functional.one_hot(labels, dim).float()
    return DatasetSplits("vectors", ArrayDataset(x[:n_train], labels[:n_train]),
                         ArrayDataset(x[n_train:], labels[n_train:]), classes)


# --- DrLIM: is_map -------------------------------------------------------------------------------------------------

def _drlim(data: DatasetSplits) -> DrLIM:
    torch.manual_seed(0)
    return DrLIM(nn.Linear(6, 5), 5, data.train.x, neighbours=3, map_dim=2)


def test_is_map_adds_the_trustworthiness_of_the_map_against_pca():
    data = _vectors()
    method = _drlim(data)
    extras = evaluation_extras(method, EvalContext(data, CPU, scores=True))
    with torch.no_grad():
        mapped = method.eval().features(data.test.x).double().numpy()  # (24, 2)
    pixels, train = data.test.x.double().numpy(), data.train.x.double().numpy()
    mean = train.mean(0)
    components = np.linalg.svd(train - mean, full_matrices=False)[2][:2]  # (2, 6)
    k = min(10, (24 - 1) // 2)
    assert set(extras.metrics) == {"trustworthiness", "pca_trustworthiness", "trustworthiness_k"}
    assert extras.metrics["trustworthiness_k"] == k == 10
    assert extras.metrics["trustworthiness"] == pytest.approx(trustworthiness(pixels, mapped, k), abs=1e-4)
    assert extras.metrics["pca_trustworthiness"] == pytest.approx(
        trustworthiness(pixels, (pixels - mean) @ components.T, k), abs=1e-4)
    assert extras.plots == [] and extras.notes == []  # no plot folder: no plot


def test_is_map_draws_the_map_when_plots_are_asked(tmp_path):
    data = _vectors()
    extras = evaluation_extras(_drlim(data), EvalContext(data, CPU, scores=False, plot_dir=tmp_path, name="drlim",
                                                         title="drlim on vectors"))
    assert extras.metrics == {}  # plots only
    assert extras.plots == [tmp_path / "drlim_map.png"] and (tmp_path / "drlim_map.png").stat().st_size > 1000


def test_a_method_without_is_map_gets_no_map(tmp_path):
    data = _vectors()
    method = build_method("simclr", nn.Linear(6, 4), 4)
    extras = evaluation_extras(method, EvalContext(data, CPU, scores=True, plot_dir=tmp_path))
    assert extras == EvalExtras()
    assert not list(tmp_path.iterdir())


# --- CPC: prediction_accuracy --------------------------------------------------------------------------------------

def _reference_accuracy(z: torch.Tensor, c: torch.Tensor, weights: list[torch.Tensor]) -> list[float]:
    """Per k: the share of predictions (n, s) whose true latent z[n, s + k] scores at least as high as every other
    latent of the same sequence, f = c^T W_k z."""
    n, t, _ = z.shape
    accuracy = []
    for k, w in enumerate(weights, start=1):
        hits = []
        for i, s in itertools.product(range(n), range(t - k)):
            scores = [float(c[i, s] @ w @ z[i, u]) for u in range(t)]
            hits.append(scores[s + k] >= max(v for u, v in enumerate(scores) if u != s + k))
        accuracy.append(sum(hits) / len(hits))
    return accuracy


def test_prediction_accuracy_is_a_metric_and_a_plot(tmp_path):
    torch.manual_seed(0)
    method = CPC(Conv1dEncoder(1, width=8, strides=(2, 2)), 8, context=6, steps_ahead=3, crop=None)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(70, 1, 40, generator=g)
    data = DatasetSplits("seqs", ArrayDataset(x[:4], torch.zeros(4, dtype=torch.int64)),
                         ArrayDataset(x[4:], torch.zeros(66, dtype=torch.int64)), 1)
    method.train()
    extras = evaluation_extras(method, EvalContext(data, CPU, scores=True))
    assert method.training  # put back in train mode
    method.eval()
    with torch.no_grad():
        z, c = method.latents_and_contexts(data.test.x[:64])  # the first 64 test sequences, in eval mode
    expected = _reference_accuracy(z.double(), c.double(), [p.weight.detach().double() for p in method.predictors])
    assert extras.metrics["prediction_accuracy"] == pytest.approx(expected, abs=5e-5)  # rounded to 4 decimals
    assert "speaker_acc" not in extras.metrics  # frame_features, but no frame labels: no probes
    plotted = evaluation_extras(method, EvalContext(data, CPU, scores=False, plot_dir=tmp_path))
    assert plotted.metrics == {} and plotted.plots == [tmp_path / "prediction_accuracy.png"]
    assert (tmp_path / "prediction_accuracy.png").stat().st_size > 1000


# --- triplet: the method's own hook --------------------------------------------------------------------------------

def _reference_states(z: torch.Tensor, labels: list[int], margin: float, measure: str) -> dict[str, float]:
    """hard: d(a,n) < d(a,p); semi-hard: d(a,p) <= d(a,n) < d(a,p) + m; easy: d(a,n) >= d(a,p) + m, over every
    (anchor, positive != anchor of its class, negative of another class); d Euclidean or -cos."""
    def d(i: int, j: int) -> float:
        if measure == "cosine":
            return -float(z[i] @ z[j] / (z[i].norm() * z[j].norm()))
        return float((z[i] - z[j]).norm())

    counts = {"hard": 0, "semi_hard": 0, "easy": 0}
    n = len(labels)
    for a, p, q in itertools.product(range(n), repeat=3):
        if p == a or labels[p] != labels[a] or labels[q] == labels[a]:
            continue
        ap, an = d(a, p), d(a, q)
        counts["hard" if an < ap else "semi_hard" if an < ap + margin else "easy"] += 1
    total = sum(counts.values())
    return {**{k: v / total for k, v in counts.items()}, "triplets": total}


@pytest.mark.parametrize("measure", ["euclidean", "cosine"])
def test_the_triplet_hook_gives_the_states_of_the_test_split(measure):
    data = _vectors(n_test=15)
    torch.manual_seed(0)
    method = TripletEmbedding(nn.Linear(6, 5), 5, embedding_dim=3, margin=0.3, measure=measure, samples_per_class=2,
                              augmented=False)
    extras = evaluation_extras(method, EvalContext(data, CPU, scores=True))
    with torch.no_grad():
        z = method.eval().embed(data.test.x).double()
    expected = _reference_states(z, data.test.labels.tolist(), 0.3, measure)
    states = extras.metrics["triplet_states"]
    assert states["triplets"] == expected["triplets"] == 15 * 4 * 10  # 5 per class: 4 positives, 10 negatives
    assert states["samples"] == 15
    for key in ("hard", "semi_hard", "easy"):
        assert states[key] == pytest.approx(expected[key], abs=1e-12)
    assert 0 < states["easy"] < 1  # a case with more than one state


def test_a_large_test_split_s_states_are_those_of_a_seeded_subset(monkeypatch):
    import contrastkit.methods.triplet as triplet

    monkeypatch.setattr(triplet, "STATE_SAMPLES", 9)
    data = _vectors(n_test=15)
    torch.manual_seed(0)
    method = TripletEmbedding(nn.Linear(6, 5), 5, embedding_dim=3, margin=0.3, samples_per_class=2, augmented=False)
    extras = evaluation_extras(method, EvalContext(data, CPU, seed=4, scores=True))
    keep = torch.randperm(15, generator=torch.Generator().manual_seed(4))[:9].sort().values
    with torch.no_grad():
        z = method.eval().embed(data.test.x[keep]).double()
    expected = _reference_states(z, data.test.labels[keep].tolist(), 0.3, "euclidean")
    states = extras.metrics["triplet_states"]
    assert (states["samples"], states["triplets"]) == (9, expected["triplets"])
    assert [states[k] for k in ("hard", "semi_hard", "easy")] == pytest.approx(
        [expected[k] for k in ("hard", "semi_hard", "easy")], abs=1e-12)
    assert extras.notes == ["triplet states: every valid triplet of 9 of the 15 test samples (a random subset, "
                            "seeded with the run's seed)"]


def _log(path: Path, columns: list[str]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss", *columns])
        for step in range(1, 6):
            writer.writerow([step, 1.0 / step, *([0.2, 0.3, 0.5][:len(columns)] if columns else [])])
    return path


def _run(method: nn.Module, name: str, data: DatasetSplits) -> Run:
    return Run(config=TrainConfig(method=name, data="vectors", device="cpu"), device=CPU, data=data, method=method,
               augment=None, fingerprint={})


def _triplet(data: DatasetSplits) -> TripletEmbedding:
    torch.manual_seed(0)
    return TripletEmbedding(nn.Linear(6, 5), 5, embedding_dim=3, samples_per_class=2, augmented=False)


def test_the_triplet_plot_comes_from_the_method_not_from_the_columns_of_the_log(tmp_path):
    data = _vectors()
    states = ["frac_hard", "frac_semihard", "frac_easy"]
    triplet_dir, simclr_dir = tmp_path / "triplet", tmp_path / "simclr"
    triplet_dir.mkdir()
    simclr_dir.mkdir()
    _log(triplet_dir / "train_log.csv", states)
    _log(simclr_dir / "train_log.csv", states)  # another method whose log happens to hold the same columns
    notes: list[str] = []
    written = plot_run(triplet_dir, run=_run(_triplet(data), "triplet", data), notes=notes)
    assert triplet_dir / "triplet_states.png" in written and (triplet_dir / "triplet_states.png").stat().st_size > 0
    assert notes == []
    written = plot_run(simclr_dir, run=_run(build_method("simclr", nn.Linear(6, 4), 4), "simclr", data), notes=notes)
    assert written == [simclr_dir / "embedding_tsne.png", simclr_dir / "training_curves.png"]
    assert not (simclr_dir / "triplet_states.png").exists()


def test_a_triplet_run_without_its_log_or_its_columns_says_why_there_is_no_states_plot(tmp_path):
    data = _vectors()
    notes: list[str] = []
    written = plot_run(tmp_path, run=_run(_triplet(data), "triplet", data), notes=notes)  # no train_log.csv
    assert written == [tmp_path / "embedding_tsne.png"]
    assert notes == ["triplet_states.png not drawn: the run has no train_log.csv (the states are logged there per "
                     "step)"]
    _log(tmp_path / "train_log.csv", ["frac_hard"])  # the other two columns renamed away
    notes = []
    written = plot_run(tmp_path, run=_run(_triplet(data), "triplet", data), notes=notes)
    assert tmp_path / "triplet_states.png" not in written
    assert len(notes) == 1 and notes[0].startswith("triplet_states.png not drawn: plot_triplet_states: ")
    assert "['frac_semihard', 'frac_easy']" in notes[0]


# --- the hook's rules ----------------------------------------------------------------------------------------------

class _Extra(Method):
    """A method whose own hook returns ``returned``."""

    batch_spec = BatchSpec(views=0)

    def __init__(self, returned: object, is_map: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Linear(6, 2)
        self.returned, self.is_map = returned, is_map

    def forward(self, batch: Batch, group=None) -> StepOutput:
        loss = self.encoder(batch.views[0]).square().mean()
        return StepOutput(loss, logs={"loss": loss.detach()})

    def evaluation_extras(self, context: EvalContext) -> EvalExtras:
        return self.returned


def test_a_method_s_own_metrics_land_in_the_evaluation():
    metrics, _ = evaluate_method(_Extra(EvalExtras(metrics={"my_score": 0.5}, notes=["my note"])), _vectors())
    assert metrics["my_score"] == 0.5 and "my note" in metrics["notes"]


def test_the_hook_must_return_eval_extras():
    with pytest.raises(TypeError, match=r"_Extra\.evaluation_extras returned dict; it must return an EvalExtras"):
        evaluate_method(_Extra({"my_score": 0.5}), _vectors())


def test_a_metric_the_evaluation_gives_itself_is_refused():
    with pytest.raises(ValueError, match=r"_Extra's evaluation extras returned the metric\(s\) \['knn_acc'\], which "
                                         r"the evaluation gives itself"):
        evaluate_method(_Extra(EvalExtras(metrics={"knn_acc": 1.0})), _vectors())


def test_a_metric_of_the_hook_that_a_capability_gives_is_refused():
    method = _Extra(EvalExtras(metrics={"trustworthiness": 1.0}), is_map=True)
    with pytest.raises(ValueError, match=r"_Extra\.evaluation_extras returned the metric\(s\) \['trustworthiness'\], "
                                         r"which another part of the evaluation gave already"):
        evaluation_extras(method, EvalContext(_vectors(), CPU))


def test_a_plain_module_method_is_evaluated_with_the_default_capabilities():
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.batch_spec, self.encoder = BatchSpec(views=0), nn.Linear(6, 3)

        def after_step(self, output, group=None) -> None:
            pass

    plain, data = Plain(), _vectors()
    metrics, test_features = evaluate_method(plain, data, baselines=False)
    with torch.no_grad():
        assert torch.equal(test_features, plain.encoder(data.test.x))
    assert set(metrics) == {"results", "linear_acc", "knn_acc", "recall_at_1", "protocol", "notes", "timings",
                            "feature_precision"}
    assert evaluation_extras(as_method(plain), EvalContext(data, CPU, plot_dir=Path("unused"))) == EvalExtras()
    assert math.isfinite(metrics["knn_acc"])
