"""benchmarks/quality.py (one table, every method) on a tiny budget: the rows, the table with the machine, the chart,
the reasons of the methods that do not apply, the scores against references computed here, and a rerun that keeps
the stored rows (nothing built or trained) and refuses rows of another budget."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.config import TrainConfig
from contrastkit.data import load_dataset
from contrastkit.evaluate.method import method_features
from contrastkit.train import Trainer
from tests import references as reference

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(tmp_path: Path, minutes: str = "0.02") -> list[str]:
    return ["--minutes", minutes, "--datasets", "digits", "--methods", "supervised,clip", "--epochs", "1",
            "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--no-progress"]


def test_a_tiny_benchmark_writes_rows_table_and_chart_and_a_rerun_keeps_them(quality, tmp_path, capsys,
                                                                             monkeypatch):
    assert quality.main(_args(tmp_path)) == 0
    out = tmp_path / "out"
    rows = {name: json.loads((out / "digits" / f"{name}.json").read_text())
            for name in ("baselines", "supervised", "clip")}
    assert rows["supervised"]["status"] == "ok" and rows["supervised"]["minutes"] == 0.02
    assert rows["supervised"]["steps"] >= 1 and rows["supervised"]["epochs_planned"] == 1
    assert rows["clip"]["status"] == "skipped" and "needs two fields" in rows["clip"]["reason"]
    assert rows["supervised"]["machine"]["cpu"] == quality.cpu_model()

    # the baselines, against the references: raw pixels in [0, 1], the test images' nearest other test image
    data = load_dataset("digits")
    train, test = data.train.x.reshape(len(data.train), -1) / 255.0, data.test.x.reshape(len(data.test), -1) / 255.0
    y, y_test = data.train.labels.numpy(), data.test.labels.numpy()
    raw = rows["baselines"]["raw"]
    assert raw["knn_acc"] == pytest.approx(reference.weighted_knn_accuracy(train.numpy(), y, test.numpy(), y_test),
                                           abs=1e-12)
    assert raw["recall_at_1"] == pytest.approx(reference.recall_at_1(test.numpy(), y_test), abs=1e-12)
    # the trained row is the trained model's: its checkpoint's features give the same kNN accuracy
    trainer = Trainer.from_config(TrainConfig(method="supervised", data="digits", out=str(tmp_path / "runs" / "digits"
                                                                                          / "supervised"),
                                              epochs=1, max_minutes=0.02, progress=False))
    trainer.load()
    features = [method_features(trainer.method, part.x).numpy() for part in (data.train, data.test)]
    assert rows["supervised"]["knn_acc"] == pytest.approx(
        reference.weighted_knn_accuracy(features[0], y, features[1], y_test), abs=1e-12)

    table = (out / "quality.md").read_text()
    assert f"Machine: {quality.cpu_model()}, " in table and f"torch {torch.__version__}" in table
    assert "### digits" in table and "| supervised (ceiling) |" in table
    assert f"| raw pixels | {100 * raw['linear_acc']:.1f} % | {100 * raw['knn_acc']:.1f} % |" in table
    assert "- not applicable: **clip** -- method 'clip' needs two fields" in table
    assert (out / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a rerun keeps every stored row: nothing is built, trained or scored
    stored = {path: path.read_text() for path in (out / "digits").glob("*.json")}

    class Refused:
        @staticmethod
        def from_config(config):
            raise AssertionError("a stored row was measured again")

    monkeypatch.setattr(quality, "Trainer", Refused)
    monkeypatch.setattr(quality, "evaluate_method", Refused.from_config)
    capsys.readouterr()
    assert quality.main(_args(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert printed.count(": kept (") == 3
    assert {path: path.read_text() for path in (out / "digits").glob("*.json")} == stored
    assert (out / "quality.md").read_text().split("Command:")[1].split("\n", 1)[1] == \
        table.split("Command:")[1].split("\n", 1)[1]  # the same tables from the stored rows

    # another budget in the same folder is refused before anything runs, in one line naming the file
    assert quality.main(_args(tmp_path, minutes="0.5")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "baselines.json was measured with minutes 0.02, this run asks for 0.5" in err

    # a run on other data in the same folder keeps the stored data sets' tables, each with its own budget
    assert quality.main(["--minutes", "3", "--datasets", "nosuch", "--out", str(out), "--runs", str(tmp_path)]) == 0
    both = (out / "quality.md").read_text()
    assert both.index("### nosuch") < both.index("### digits")
    assert "Budget: 0.02 minutes of training per method (`max_minutes`), each method's registered defaults but 1 " \
           "epoch, seed 0." in both and "| supervised (ceiling) |" in both


def test_an_unknown_method_or_data_set(quality, tmp_path, capsys):
    assert quality.main(["--methods", "simclr,nosuch", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quality.py: error: unknown method 'nosuch'") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    np.save(tmp_path / "unlabelled.npy", np.zeros((10, 1, 8, 8), np.uint8))
    assert quality.main(["--datasets", f"nosuch,{tmp_path / 'unlabelled.npy'}", "--methods", "simclr", "--out",
                         str(tmp_path / "out"), "--runs", str(tmp_path / "runs")]) == 0
    table = (tmp_path / "out" / "quality.md").read_text()
    assert "### nosuch\n\nSkipped: load_dataset: 'nosuch' is neither a built-in dataset" in table
    assert "has no labels: kNN, the probe and R@1 need them" in table
    assert not (tmp_path / "out" / "quality.png").exists()  # nothing scored: no chart
