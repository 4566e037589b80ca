"""DrLIM: the neighbour graph against a brute-force float64 reference, the pair sampling (no self pairs, dissimilar
pairs are never neighbours), the loss against an explicit loop, shapes, exact resume of a short run and the
evaluation's map metrics; a slow 4-vs-9 demo that beats PCA."""

import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from contrastkit.config import TrainConfig
from contrastkit.methods import build_method
from contrastkit.methods.base import Batch
from contrastkit.methods.drlim import DrLIM, dissimilar_pairs, pixel_neighbours
from contrastkit.report import evaluate_run
from contrastkit.train import Trainer
from tests.helpers import assert_same_state, train_in_two_sessions
from tests.references import trustworthiness


def _images(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, 6, 6) uint8 with a few exact duplicates (ties and zero distances)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 6, 6), generator=g, dtype=torch.uint8)
    if n >= 10:
        x[5] = x[2]
        x[9] = x[2]
    return x


def test_neighbours_are_the_k_nearest_in_pixel_space():
    x = _images(40)
    k = 5
    ids = pixel_neighbours(x, k, block=7)  # blocks that do not divide N
    assert ids.shape == (40, k) and ids.dtype == torch.int64
    flat = x.reshape(40, -1).numpy().astype(np.float64)
    d = np.sqrt(((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1))  # (N, N) brute force
    for i in range(40):
        assert i not in ids[i].tolist()  # never itself
        assert len(set(ids[i].tolist())) == k
        others = np.delete(d[i], i)
        expected = np.sort(others)[:k]
        np.testing.assert_array_equal(d[i, ids[i].numpy()], expected)  # the k smallest, nearest first
    assert set(ids[2, :2].tolist()) == {5, 9}  # exact duplicates come first (distance 0)


def test_neighbours_refuse_bad_k():
    with pytest.raises(ValueError, match="`k` must be an integer in \\[1, 3\\]"):
        pixel_neighbours(_images(4), 4)


def test_pairs_never_pair_a_sample_with_itself_and_dissimilar_pairs_are_not_neighbours():
    x = _images(60, seed=1)
    ids = pixel_neighbours(x, 4)
    method = DrLIM(nn.Flatten(), 36, x, neighbours=4, dissimilar=3)
    assert torch.equal(method.neighbour_ids, ids)
    generator = torch.Generator().manual_seed(3)
    for _ in range(20):
        batch = torch.randperm(60, generator=generator)[:24]  # (B,) sample ids
        partners, i, j = method.sample_pairs(batch, generator)
        for a, p in zip(batch.tolist(), partners.tolist(), strict=True):
            assert p != a and p in ids[a].tolist()
        assert len(i) == len(j) > 0
        counts = torch.bincount(i, minlength=24)
        assert int(counts.max()) <= 3
        seen = set()
        for u, v in zip(i.tolist(), j.tolist(), strict=True):
            a, b = int(batch[u]), int(batch[v])
            assert u != v and a != b
            assert b not in ids[a].tolist() and a not in ids[b].tolist()
            assert (u, v) not in seen  # without replacement
            seen.add((u, v))


def test_a_batch_of_mutual_neighbours_has_no_dissimilar_pair():
    neighbour_ids = torch.tensor([[1], [0], [0]])
    i, j = dissimilar_pairs(torch.tensor([0, 1]), neighbour_ids, 2, torch.Generator().manual_seed(0))
    assert i.numel() == 0 and j.numel() == 0


def test_the_loss_matches_an_explicit_loop():
    torch.manual_seed(0)
    x = _images(30, seed=2)
    method = DrLIM(nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.Tanh()), 8, x, neighbours=3, margin=2.0,
                   dissimilar=2).double()
    batch_ids = torch.arange(0, 30, 3)  # (10,)
    views = [x[batch_ids].double() / 255]
    out = method(Batch(views, batch_ids, None, torch.Generator().manual_seed(7)))
    partners, i, j = method.sample_pairs(batch_ids, torch.Generator().manual_seed(7))  # the same draws

    def embed(sample: int) -> torch.Tensor:
        return method.features(x[sample:sample + 1].double() / 255)[0]

    terms = []
    with torch.no_grad():
        for a, p in zip(batch_ids.tolist(), partners.tolist(), strict=True):
            d = float((embed(a) - embed(p)).norm())
            terms.append(0.5 * d * d)
        for u, v in zip(i.tolist(), j.tolist(), strict=True):
            d = float((embed(int(batch_ids[u])) - embed(int(batch_ids[v]))).norm())
            terms.append(0.5 * max(0.0, 2.0 - d) ** 2)
    assert math.isclose(float(out.loss.detach()), sum(terms) / len(terms), rel_tol=1e-9)
    assert set(out.logs) == {"loss", "d_similar", "d_dissimilar"}


def test_shapes_and_the_registry():
    x = _images(20)
    method = build_method("drlim", nn.Flatten(), 36, train_inputs=x, map_dim=3, neighbours=2)
    assert isinstance(method, DrLIM) and method.is_map and method.batch_spec.views == 0
    assert method.features(x[:4].float() / 255).shape == (4, 3)
    assert method.neighbour_ids.shape == (20, 2)
    assert "neighbour_ids" in method.state_dict() and "train_x" not in method.state_dict()
    with pytest.raises(ValueError, match="needs the training inputs"):
        build_method("drlim", nn.Flatten(), 36)
    with pytest.raises(ValueError, match="`neighbours` \\(20\\) must be smaller than the 20 training samples"):
        build_method("drlim", nn.Flatten(), 36, train_inputs=x, neighbours=20)


def _log(out: Path) -> list[tuple[str, ...]]:
    with (out / "train_log.csv").open() as f:
        return [(r["step"], r["loss"], r["d_similar"], r["d_dissimilar"]) for r in csv.DictReader(f)]


def test_a_drlim_run_resumes_exactly_and_its_evaluation_scores_the_map(tmp_path):
    def config(out: str, **kw) -> TrainConfig:
        return TrainConfig(method="drlim", data="digits", classes="4,9", out=str(tmp_path / out), epochs=2,
                           batch_size=64, log_every=1, progress=False, **kw)

    straight = Trainer.from_config(config("a"))
    assert straight.steps_per_epoch == len(straight.data.train) // 64
    straight.fit()
    second = train_in_two_sessions(lambda: Trainer.from_config(config("b", checkpoint_every=3)), stop_after=5)
    assert _log(tmp_path / "b") == _log(tmp_path / "a")
    assert_same_state(straight.method, second.method)

    metrics = evaluate_run(tmp_path / "a", quiet=True)
    assert {"trustworthiness", "pca_trustworthiness", "trustworthiness_k"} <= set(metrics)
    # recomputed here: the map of the held-out images by the trained method itself, PCA by an SVD of the
    # centred train pixels, trustworthiness by its defining sum (4-decimal rounding and tie order allowed)
    test_x, train_x = straight.data.test.x, straight.data.train.x
    method = straight.method.eval()
    with torch.no_grad():
        mapped = method.features(test_x.float() / 255).double().numpy()
    pixels, train_pixels = test_x.reshape(len(test_x), -1).double().numpy(), train_x.reshape(len(train_x), -1)
    train_pixels = train_pixels.double().numpy()
    mean = train_pixels.mean(0)
    components = np.linalg.svd(train_pixels - mean, full_matrices=False)[2][:mapped.shape[1]]  # (d, D)
    k = min(10, (len(test_x) - 1) // 2)
    assert metrics["trustworthiness_k"] == k == 10
    assert metrics["trustworthiness"] == pytest.approx(trustworthiness(pixels, mapped, k), abs=2e-4)
    assert metrics["pca_trustworthiness"] == pytest.approx(
        trustworthiness(pixels, (pixels - mean) @ components.T, k), abs=2e-4)
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["trustworthiness"] == metrics["trustworthiness"]
    assert (tmp_path / "a" / "drlim_map.png").stat().st_size > 0


@pytest.mark.slow
def test_the_4_vs_9_demo_beats_pca(tmp_path):
    """A short run on mnist5k's 4s and 9s (the paper's figure): its map of the held-out points keeps their
    pixel-space neighbourhoods better than PCA fitted on the same training images."""
    start = time.perf_counter()
    Trainer.from_config(TrainConfig(method="drlim", data="mnist5k", classes="4,9", out=str(tmp_path / "run"), epochs=8,
                                    batch_size=128, progress=False)).fit()
    metrics = evaluate_run(tmp_path / "run", quiet=True, baselines=False)
    print(f"4 vs 9: trustworthiness {metrics['trustworthiness']} vs PCA {metrics['pca_trustworthiness']} "
          f"({time.perf_counter() - start:.0f} s)")
    assert metrics["trustworthiness"] > metrics["pca_trustworthiness"]


# --- issue 15 item 3: DrLIMSettings is the one home of DrLIM's defaults ---------------------------------------------

@pytest.mark.parametrize(("name", "value", "read"), [
    ("neighbours", 2, lambda m: m.neighbour_ids.shape[1]),
    ("map_dim", 3, lambda m: m.head.out_features),
    ("margin", 2.5, lambda m: m.margin),
    ("dissimilar", 1, lambda m: m.dissimilar),
])
def test_drlim_keyword_defaults_come_from_its_settings_class(monkeypatch, name, value, read) -> None:
    from contrastkit.methods.drlim import DrLIMSettings

    x = torch.arange(60, dtype=torch.float32).reshape(10, 6)  # 10 samples
    assert read(DrLIM(nn.Flatten(), 6, x)) == getattr(DrLIMSettings(), name) != value
    monkeypatch.setattr(DrLIMSettings.__dataclass_fields__[name], "default", value)  # the one home, changed
    assert read(DrLIM(nn.Flatten(), 6, x)) == value
    assert read(DrLIM(nn.Flatten(), 6, x, settings=DrLIMSettings(**{name: value}))) == value  # the builder's path


def test_drlim_is_built_from_its_settings_object() -> None:
    from contrastkit.methods.drlim import DRLIM_TRAINING_DEFAULTS, DrLIMSettings
    from contrastkit.methods.registry import GENERIC_TRAINING_DEFAULTS, get_method

    settings = DrLIMSettings(neighbours=2, map_dim=3)
    x = torch.rand(8, 6)
    method = build_method("drlim", nn.Flatten(), 6, settings=settings, train_inputs=x)
    assert method.settings is settings and method.head.out_features == 3 and method.neighbour_ids.shape == (8, 2)
    with pytest.raises(TypeError, match="DrLIM: give either `settings` or keyword settings"):
        DrLIM(nn.Flatten(), 6, x, settings=settings, margin=2.0)
    assert get_method("drlim").training_defaults == {**GENERIC_TRAINING_DEFAULTS, **DRLIM_TRAINING_DEFAULTS}
