"""A method that reads two named fields (issue 15, item 5, "done when"): a two-field .npz loads, a toy two-tower
InfoNCE between field ``a`` and field ``b`` trains through the public API, resumes bit-identically, and the
features of a chosen field are evaluated.

The data: ``b`` is a fixed linear map of ``a`` plus a little noise, so a trained pair of towers finds each test
sample's partner among the others (cross-field retrieval), which random towers cannot."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.config import TrainConfig
from contrastkit.data import load_dataset
from contrastkit.evaluate.features import embed_field
from contrastkit.methods import Method
from contrastkit.methods.base import Batch, BatchSpec, StepOutput
from contrastkit.train import Trainer
from tests.helpers import assert_same_state, train_in_two_sessions

N_TRAIN, N_TEST, DIM_A, DIM_B = 192, 64, 6, 9


class TwoTowers(Method):
    """Symmetric InfoNCE between the towers' embeddings of the default field (``a``) and of the field ``b``."""

    def __init__(self, temperature: float = 0.2, views: int = 0) -> None:
        super().__init__()
        # views 0: the pairs as they are; 1: one augmented view (SCARF) of each field, drawn from the trainer's RNG
        self.batch_spec = BatchSpec(views=views, fields={"b": views})
        self.encoder = nn.Linear(DIM_A, 16)  # tower of the default field: what the default evaluation embeds
        self.tower_b = nn.Linear(DIM_B, 16)
        self.temperature = temperature

    def forward(self, batch: Batch, group=None) -> StepOutput:
        za = F.normalize(self.encoder(batch.views[0]), dim=1)  # (B, 16)
        zb = F.normalize(self.tower_b(batch.field("b")), dim=1)  # (B, 16)
        logits = za @ zb.T / self.temperature  # (B, B): row i's partner is column i
        target = torch.arange(len(logits), device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        accuracy = (logits.argmax(1) == target).float().mean()
        return StepOutput(loss, logs={"loss": loss.detach(), "pair_acc": accuracy.detach()})

    def features_b(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower_b(x)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(N_TRAIN + N_TEST, DIM_A))
    b = a @ rng.normal(size=(DIM_A, DIM_B)) + 0.05 * rng.normal(size=(N_TRAIN + N_TEST, DIM_B))
    path = tmp_path_factory.mktemp("pairs") / "pairs.npz"
    np.savez(path, a_train=a[:N_TRAIN], b_train=b[:N_TRAIN], a_test=a[N_TRAIN:], b_test=b[N_TRAIN:])
    return load_dataset(path, fields="a,b")


def _trainer(data, out, views: int = 0, **settings) -> Trainer:
    torch.manual_seed(0)
    config = TrainConfig(method="two_towers", data="pairs", out=str(out), epochs=6, batch_size=32, lr=1e-2,
                         seed=1, progress=False, precision="fp32", **settings)
    return Trainer(TwoTowers(views=views), data, config)


def _retrieval_at_1(method: TwoTowers, data) -> float:
    """Share of test samples whose nearest field-b embedding (cosine) is their own partner."""
    za = F.normalize(embed_field(method, data.test, "a", features=method.features), dim=1)  # (n, 16)
    zb = F.normalize(embed_field(method, data.test, "b", features=method.features_b), dim=1)  # (n, 16)
    return float(((za @ zb.T).argmax(1) == torch.arange(len(za))).float().mean())


def _losses(out) -> list[str]:
    with open(out / "train_log.csv", newline="") as f:
        return [row["loss"] for row in csv.DictReader(f)]


def test_the_two_field_file_loads_with_its_fields_aligned(pairs) -> None:
    assert pairs.field_names == ("a", "b") and pairs.modality == "vectors"
    assert pairs.train.field("b").shape == (N_TRAIN, DIM_B) and len(pairs.test) == N_TEST


def test_two_towers_train_resume_exactly_and_evaluate_either_field(pairs, tmp_path) -> None:
    whole = _trainer(pairs, tmp_path / "whole")
    random_init = _retrieval_at_1(whole.method, pairs)
    whole.fit()
    resumed = train_in_two_sessions(lambda: _trainer(pairs, tmp_path / "two"), stop_after=7)
    assert_same_state(whole.method, resumed.method)
    assert _losses(tmp_path / "whole") == _losses(tmp_path / "two")  # bit-identical, as logged
    assert len(_losses(tmp_path / "whole")) >= 2 and whole.step == resumed.step == 6 * (N_TRAIN // 32)
    trained = _retrieval_at_1(resumed.method, pairs)
    assert trained >= 0.6 and trained > 3 * random_init  # chance 1/64
    metrics = resumed.evaluate(baselines=False)  # the default evaluation embeds the default field, a
    assert "results" in metrics  # unlabelled pairs: no probes, but the evaluation runs on two-field data


def test_augmented_views_of_both_fields_resume_exactly(pairs, tmp_path) -> None:
    whole = _trainer(pairs, tmp_path / "whole", views=1)
    whole.fit()
    resumed = train_in_two_sessions(lambda: _trainer(pairs, tmp_path / "two", views=1), stop_after=9)
    assert_same_state(whole.method, resumed.method)
    assert _losses(tmp_path / "whole") == _losses(tmp_path / "two")
    batch = resumed.batches(torch.arange(4), resumed.generator)
    assert not torch.equal(batch.field("b"), pairs.train.field("b")[:4])  # the views really are augmented


def test_a_bare_training_set_with_fields_trains(pairs, tmp_path) -> None:
    """An ArrayDataset with extra fields (no test split) is training data too."""
    trainer = _trainer(pairs.train, tmp_path / "bare")
    assert trainer.fit(max_steps=2)["steps"] == 2


def test_resume_refuses_a_changed_field(pairs, tmp_path) -> None:
    import dataclasses

    _trainer(pairs, tmp_path / "run").fit(max_steps=2)
    changed_b = pairs.train.field("b").clone()
    changed_b[0, 0] += 1.0
    train = dataclasses.replace(pairs.train, extra_fields={"b": changed_b})
    other = dataclasses.replace(pairs, train=train)
    with pytest.raises(ValueError, match=r"field b changed"):
        _trainer(other, tmp_path / "run").fit(resume=True)
