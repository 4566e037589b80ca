"""Evaluate a training run folder: trained encoder against its baselines, metrics.json, plots, a table.

For a run folder written by the trainer (``checkpoint.pt`` holds the configuration), :func:`evaluate_run`
rebuilds the data split and the encoder, and scores three feature sets with one fixed protocol
(:func:`contrastkit.evaluate.evaluate_features`: kNN k=20 cosine exp(s/0.07) votes; a standardised
logistic-regression probe with C chosen by 5-fold CV on the train split; the test split is only scored):

* ``raw_pixels`` -- the images themselves, flattened;
* ``random_init`` -- the same encoder architecture at its seeded initialisation, untrained;
* ``trained`` -- the encoder from the checkpoint.

It also measures alignment and uniformity (Wang & Isola 2020) of the trained encoder on two augmented
views of the test images. Everything lands in ``DIR/metrics.json`` with ``linear_acc`` and ``knn_acc``
of the trained encoder at the top level.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contrastkit.checkpoint import CheckpointError, load_checkpoint
from contrastkit.config import TrainConfig
from contrastkit.data.fingerprint import describe_change
from contrastkit.evaluate import (
    alignment_uniformity,
    evaluate_features,
    extract_features,
    pixel_features,
    plot_embedding_2d,
    plot_training_curves,
)
from contrastkit.train import CHECKPOINT_NAME, Run, build_run

__all__ = ["evaluate_run", "format_table", "plot_run"]


def _load_run(run_dir: Path, device: str, data: str | None = None) -> tuple[Run, nn.Module, dict[str, Any], list[str]]:
    """Rebuild the run of ``run_dir``; returns it with the trained weights loaded, its random-init encoder
    (the seeded initialisation, before loading), the checkpoint and notes (e.g. data that changed since).

    ``data`` points at the run's data in a new place (a moved folder or file); the fingerprint stored in the
    checkpoint says whether it is still the same data."""
    path = run_dir / CHECKPOINT_NAME
    ckpt = load_checkpoint(path)
    config = TrainConfig.from_dict(dict(ckpt["config"]), where=str(path)).replace(device=device)
    if data is not None:
        config = config.replace(data=data)
    saved = ckpt.get("data") or {}
    run = build_run(config, bank_rows=saved.get("train"), for_training=False)
    notes = []
    change = describe_change(saved, run.fingerprint)
    if change:
        notes.append(f"warning: {change}; evaluating the trained encoder on the current data")
    random_encoder = copy.deepcopy(run.method.encoder)
    try:
        run.method.load_state_dict(ckpt["method"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit the model its settings build: "
                              f"{str(exc).splitlines()[0]}") from None
    return run, random_encoder, ckpt, notes


def _features(encoder: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return extract_features(encoder.to(device), images, device=device)


def evaluate_run(run_dir: str | Path, device: str = "auto", baselines: bool = True, plots: bool = True,
                 quiet: bool = False, knn_k: int | None = None, data: str | None = None) -> dict[str, Any]:
    """Score the run in ``run_dir`` (see the module docstring); prints the table, then writes ``metrics.json``
    and the plots. A file that cannot be written is reported (``metrics["write_errors"]``), not fatal: the
    numbers are printed first. ``knn_k`` overrides kNN's k (default 20, or the train size if smaller);
    ``data`` locates the run's data if it moved."""
    run_dir = Path(run_dir)
    start = time.perf_counter()
    run, random_encoder, ckpt, notes = _load_run(run_dir, device, data)
    for note in notes:
        print(note, file=sys.stderr)
    data_splits = run.data
    metrics: dict[str, Any] = {
        "method": run.config.method, "data": run.config.data, "encoder": run.config.encoder,
        "steps": ckpt["progress"]["step"], "epochs_done": ckpt["progress"]["step"] / max(1, _steps_per_epoch(run)),
        "train_seconds": ckpt["progress"].get("train_seconds"),
    }
    options: dict[str, Any] = {"class_names": list(data_splits.class_names) or None}
    if knn_k is not None:
        options["knn_k"] = knn_k
    trained = run.method.encoder
    train_x, test_x = data_splits.train.images, data_splits.test.images
    if not data_splits.has_labels:
        notes.append("the data has no labels: kNN and linear probe are not defined")
    elif len(test_x) == 0:
        notes.append("the test split is empty (every class has a single image?): nothing to score")
    if data_splits.has_labels and len(test_x):
        feats_test = _features(trained, test_x, run.device)
        train_y, test_y = data_splits.train.labels, data_splits.test.labels
        results = {"trained": evaluate_features(_features(trained, train_x, run.device), train_y, feats_test,
                                                test_y, **options)}
        if baselines:
            results["random_init"] = evaluate_features(_features(random_encoder, train_x, run.device), train_y,
                                                       _features(random_encoder, test_x, run.device), test_y,
                                                       **options)
            results["raw_pixels"] = evaluate_features(pixel_features(train_x), train_y, pixel_features(test_x),
                                                      test_y, **options)
        metrics["results"] = results
        metrics["linear_acc"] = results["trained"]["linear_accuracy"]
        metrics["knn_acc"] = results["trained"]["knn_accuracy"]
        trained_result = results["trained"]
        folds = trained_result.get("linear_folds")
        metrics["protocol"] = (f"kNN k={trained_result['knn_k']} cosine exp(s/0.07); linear: standardised "
                               f"multinomial logistic regression, C by "
                               f"{f'{folds}-fold CV on the train split' if folds else 'no CV (see notes)'}")
        notes.extend(trained_result.get("notes", []))
        for name, result in results.items():  # a baseline's own notes (e.g. a probe that did not converge)
            notes.extend(f"{name.replace('_', ' ')}: {note}" for note in result.get("notes", [])
                         if note not in trained_result.get("notes", []))
    else:
        metrics["results"] = {}
        feats_test = None
    if len(test_x) >= 2:
        metrics["alignment_uniformity"] = alignment_uniformity(*_two_views(run, test_x))
    else:
        notes.append("fewer than 2 test images: alignment / uniformity skipped")
    metrics["notes"] = notes
    metrics["eval_seconds"] = round(time.perf_counter() - start, 1)
    if not quiet:
        print(format_table(metrics))
        for note in notes:
            print(f"note: {note}")
    errors = []
    try:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    except OSError as exc:
        errors.append(f"could not write {run_dir / 'metrics.json'}: {exc.strerror or exc}")
    if plots:
        try:
            plot_run(run_dir, run=run, test_features=feats_test)
        except OSError as exc:
            errors.append(f"could not write the plots in {run_dir}: {exc.strerror or exc}")
    if errors:
        metrics["write_errors"] = errors
    return metrics


def _steps_per_epoch(run: Run) -> int:
    return max(1, len(run.data.train) // int(run.config.batch_size))


@torch.no_grad()
def _two_views(run: Run, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder features of two augmented views of ``images`` (seeded), for alignment / uniformity."""
    generator = torch.Generator(device=run.device).manual_seed(run.config.seed + 1)
    batch = images.to(run.device)
    encoder = run.method.encoder
    views = []
    for _ in range(2):
        augmented = torch.cat([run.augment(batch[i:i + 512], generator=generator)
                               for i in range(0, len(batch), 512)])
        views.append(extract_features(encoder, augmented, device=run.device))
    return views[0], views[1]


def plot_run(run_dir: str | Path, run: Run | None = None, test_features: torch.Tensor | None = None,
             device: str = "auto", data: str | None = None) -> list[Path]:
    """t-SNE map of the test embeddings coloured by label, and the training curves, as PNGs in ``run_dir``."""
    run_dir = Path(run_dir)
    if run is None:
        run, _, _, notes = _load_run(run_dir, device, data)
        for note in notes:
            print(note, file=sys.stderr)
    written = []
    if run.data.has_labels and len(run.data.test) >= 3:  # t-SNE needs at least 3 points
        if test_features is None:
            test_features = _features(run.method.encoder, run.data.test.images, run.device)
        path = run_dir / "embedding_tsne.png"
        plot_embedding_2d(test_features, run.data.test.labels, path, seed=run.config.seed,
                          title=f"{run.config.method} on {run.config.data}: t-SNE of test features",
                          class_names=list(run.data.class_names) if run.data.class_names else None)
        written.append(path)
    log = run_dir / "train_log.csv"
    if log.exists() and len(log.read_text().splitlines()) > 1:  # a header and at least one row
        path = run_dir / "training_curves.png"
        plot_training_curves(log, path, title=f"{run.config.method} on {run.config.data}")
        written.append(path)
    return written


def format_table(*all_metrics: dict[str, Any]) -> str:
    """A plain-text table: one row per feature set (baselines once, then each trained method)."""
    rows: list[tuple[str, str, str, str]] = []
    seen_baselines = False
    for metrics in all_metrics:
        results = metrics.get("results", {})
        if not seen_baselines:
            for key, label in (("raw_pixels", "raw pixels"), ("random_init", f"random-init {metrics['encoder']}")):
                if key in results:
                    rows.append((label, _pct(results[key]["linear_accuracy"]), _pct(results[key]["knn_accuracy"]), "-"))
            seen_baselines = True
        if "trained" in results:
            seconds = metrics.get("train_seconds")
            rows.append((f"{metrics['method']} ({metrics['encoder']})", _pct(results["trained"]["linear_accuracy"]),
                         _pct(results["trained"]["knn_accuracy"]), "-" if seconds is None else f"{seconds:.0f}"))
    if not rows:
        return "no labelled results to show"
    trained = next((m["results"]["trained"] for m in all_metrics if "trained" in m.get("results", {})), {})
    header = ("features", "linear probe", f"kNN (k={trained.get('knn_k', 20)})", "train s")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    data = all_metrics[0].get("data", "")
    return f"held-out accuracy on {data} (test split)\n" + "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"
