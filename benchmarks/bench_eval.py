"""The evaluation's phase times at N = 60,000: Fashion-MNIST's official split, the protocol of ``contrastkit eval``.

Phases, each timed once (the order of ``contrastkit eval``):

* features of a small_cnn encoder (128-d; a seeded random initialisation stands in for a trained one, which costs
  the same) on the 60,000 + 10,000 images, in fp32 and in bf16 autocast + channels_last (the trainer's fast path;
  the kNN and probe accuracies of both are printed, to show what bf16 changes);
* kNN (k = 20, cosine, exp(s / 0.07)) and the linear probe (C on one held-out fold above 20,000 training samples,
  refit) of the 128-d features and of the 784 raw pixels;
* scikit-learn's ``LogisticRegression`` (lbfgs, the probe's old solver) against the probe's L-BFGS on a subset
  (``--subset`` training samples, both with the full 5-fold CV over the 9 Cs), and their ratio.

The estimate of a whole evaluation of a Fashion-MNIST run adds: features twice (trained and random init), kNN
and probe three times (trained, random init, raw pixels).

Usage: python benchmarks/bench_eval.py [--subset 5000] [--no-sklearn] [--precision fp32|bf16]
Needs the four IDX files of the Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist).
A timing script: run it alone on a quiet machine; numbers depend on the machine and never go into tests.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import print_table

IDX_FOLDER = Path("/usr/share/datasets/fashion-mnist")


def _fashion_mnist() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images (N, 1, 28, 28) and int64 labels of the official train / test split."""
    try:
        from contrastkit.data.load import load_dataset

        data = load_dataset("fashion-mnist")
        return data.train.inputs, data.train.labels.long(), data.test.inputs, data.test.labels.long()
    except (ImportError, ValueError, OSError):  # before `fashion-mnist` was built in: the IDX files directly
        def read(name: str, header: int) -> np.ndarray:
            with gzip.open(IDX_FOLDER / name) as f:
                return np.frombuffer(f.read(), dtype=np.uint8, offset=header).copy()

        def images(name: str) -> torch.Tensor:
            return torch.from_numpy(read(name, 16).reshape(-1, 1, 28, 28))

        def labels(name: str) -> torch.Tensor:
            return torch.from_numpy(read(name, 8).astype(np.int64))

        return (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
                images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"))


def _timed(compute: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = compute()
    return value, time.perf_counter() - start


class _Rows(list):
    """The table's rows, each also printed as it is measured (a long run shows its progress)."""

    def append(self, row: dict[str, Any]) -> None:
        super().append(row)
        print(f"  {row['phase']}: {row['seconds']:.1f} s {row.get('accuracy', '')}", flush=True)


def _sklearn_probe(x: np.ndarray, y: np.ndarray, grid: list[float], seed: int = 0) -> float:
    """The probe's previous code: scikit-learn lbfgs (one BLAS thread), 5-fold CV walking C with warm starts, refit;
    returns the chosen C."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    scores = np.zeros((5, len(grid)))
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for f, (fit_idx, val_idx) in enumerate(StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y)):
            scaler = StandardScaler().fit(x[fit_idx])
            model = LogisticRegression(C=grid[0], max_iter=1000, tol=1e-4, warm_start=True)
            for j, c in enumerate(grid):
                model.set_params(C=c)
                model.fit(scaler.transform(x[fit_idx]), y[fit_idx])
                scores[f, j] = np.mean(model.predict(scaler.transform(x[val_idx])) == y[val_idx])
        best = grid[int(np.argmax(scores.mean(axis=0)))]
        LogisticRegression(C=best, max_iter=1000, tol=1e-4).fit(StandardScaler().fit_transform(x), y)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=5000, help="training samples of the scikit-learn comparison")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn comparison")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16",
                        help="the feature precision whose features are scored (both are timed)")
    args = parser.parse_args(argv)

    from contrastkit.evaluate import knn_accuracy, linear_probe_accuracy
    from contrastkit.evaluate.features import embed_inputs, raw_features
    from contrastkit.evaluate.linear_probe import DEFAULT_CS
    from contrastkit.models.encoders import build_encoder

    (train_x, train_y, test_x, test_y), load_s = _timed(_fashion_mnist)
    print(f"Fashion-MNIST: {len(train_x):,} train / {len(test_x):,} test images (loaded in {load_s:.1f} s); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    encoder = build_encoder("small_cnn", in_channels=1, image_size=28)
    rows: list[dict[str, Any]] = _Rows()
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for precision in ("fp32", "bf16"):
        options = {"autocast_dtype": torch.bfloat16, "channels_last": True} if precision == "bf16" else {}
        (train_f, test_f), seconds = _timed(lambda o=options: (embed_inputs(encoder, train_x, **o),
                                                               embed_inputs(encoder, test_x, **o)))
        features[precision] = (train_f, test_f)
        rows.append({"phase": f"features small_cnn 128-d, {precision} (70,000 images)", "seconds": seconds})
    (raw_train, raw_test), seconds = _timed(lambda: (raw_features(train_x), raw_features(test_x)))
    rows.append({"phase": "features raw pixels 784-d", "seconds": seconds})
    sets = {"128-d": features[args.precision], "784-d raw": (raw_train, raw_test)}
    if args.precision == "bf16":
        sets["128-d fp32"] = features["fp32"]
    totals = {"features": rows[0 if args.precision == "fp32" else 1]["seconds"], "raw": seconds}
    for name, (train_f, test_f) in sets.items():
        accuracy, seconds = _timed(lambda a=train_f, b=test_f: knn_accuracy(a, train_y, b, test_y))
        rows.append({"phase": f"kNN {name}", "seconds": seconds, "accuracy": f"{100 * accuracy:.2f} %"})
        totals[f"knn {name}"] = seconds
        probe, seconds = _timed(lambda a=train_f, b=test_f: linear_probe_accuracy(a, train_y, b, test_y))
        rows.append({"phase": f"linear probe {name} (C {probe.C:g}, {probe.folds} fold)", "seconds": seconds,
                     "accuracy": f"{100 * probe.accuracy:.2f} %"})
        totals[f"probe {name}"] = seconds
    estimate = (2 * totals["features"] + totals["raw"] + 2 * (totals["knn 128-d"] + totals["probe 128-d"])
                + totals["knn 784-d raw"] + totals["probe 784-d raw"])
    rows.append({"phase": "estimate: a whole Fashion-MNIST evaluation (features x2, kNN + probe x3)",
                 "seconds": estimate})
    if not args.no_sklearn:
        n = min(args.subset, len(train_x))
        keep = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:n]
        for name, train_f in (("128-d", sets["128-d"][0]), ("784-d raw", raw_train)):
            x, y = train_f[keep].numpy().astype(np.float64), train_y[keep].numpy()
            old_c, old_s = _timed(lambda a=x, b=y: _sklearn_probe(a, b, sorted(DEFAULT_CS)))
            new, new_s = _timed(lambda a=x, b=y: linear_probe_accuracy(a, b, a[:10], b[:10]))
            rows.append({"phase": f"scikit-learn probe {name}, {n:,} samples, 5-fold CV (C {old_c:g})",
                         "seconds": old_s})
            rows.append({"phase": f"contrastkit probe {name}, same (C {new.C:g})", "seconds": new_s,
                         "accuracy": f"x{old_s / new_s:.1f} faster"})
    print_table(rows, [("phase", "phase"), ("seconds", "seconds"), ("accuracy", "test accuracy / ratio")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
