"""Recall@1 against a brute-force loop, ties, refusals; the triplet-state plot."""

import csv

import pytest
import torch

from contrastkit.evaluate.plots import plot_triplet_states
from contrastkit.evaluate.retrieval import recall_at_1


def _brute_force(features: torch.Tensor, labels: torch.Tensor) -> float:
    n, hits = features.shape[0], 0
    for i in range(n):
        best, best_j = float("inf"), -1
        for j in range(n):
            if j == i:
                continue
            d = float(((features[i] - features[j]) ** 2).sum().sqrt())
            if d < best:  # strict: the first of tied minima wins
                best, best_j = d, j
        hits += int(labels[best_j] == labels[i])
    return hits / n


@pytest.mark.parametrize("block_size", [1, 7, 1024])
def test_recall_at_1_matches_a_loop(block_size):
    features = torch.randn(60, 5, dtype=torch.float64)
    labels = torch.randint(0, 4, (60,))
    assert recall_at_1(features, labels, block_size=block_size) == _brute_force(features, labels)


def test_recall_at_1_closed_forms():
    labels = torch.tensor([0, 0, 1, 1])
    assert recall_at_1(torch.tensor([[0.0], [0.1], [5.0], [5.2]]), labels) == 1.0
    assert recall_at_1(torch.tensor([[0.0], [5.0], [0.1], [5.2]]), labels) == 0.0
    # all at one point: every nearest neighbour is tied; the lowest other index is taken
    assert recall_at_1(torch.zeros(4, 2), labels) == 0.5  # 0->1 (same), 1->0 (same), 2->0, 3->0


def test_recall_at_1_refuses_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        recall_at_1(torch.zeros(1, 3), torch.zeros(1))
    with pytest.raises(ValueError, match="labels"):
        recall_at_1(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="features"):
        recall_at_1(torch.zeros(3), torch.zeros(3))


def test_plot_triplet_states(tmp_path):
    log = tmp_path / "train_log.csv"
    with log.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss", "frac_hard", "frac_semihard", "frac_easy"])
        for step in range(1, 31):
            easy = step / 30
            writer.writerow([step, 1 - easy, (1 - easy) / 2, (1 - easy) / 2, easy])
    plot_triplet_states(log, tmp_path / "states.png", title="t")
    assert (tmp_path / "states.png").read_bytes()[:4] == b"\x89PNG"
    bare = tmp_path / "bare.csv"
    bare.write_text("step,loss\n1,0.5\n")
    with pytest.raises(ValueError, match="frac_hard"):
        plot_triplet_states(bare, tmp_path / "x.png")
