"""Evaluate a training run folder: the trained method against its baselines, metrics.json, plots, a table.

For a run folder written by the trainer (``checkpoint.pt`` holds the configuration), :func:`evaluate_run`
rebuilds the data split and the method (its registered name: a method of your own needs its plugin imported),
and scores the raw inputs, the seeded random initialisation and the trained method with one fixed protocol
(:mod:`contrastkit.evaluate.method`). Everything lands in ``DIR/metrics.json`` with ``linear_acc`` and
``knn_acc`` of the trained method at the top level; the table is printed before any file is written. A map that
cannot be drawn (features that are all one point, too few test points) is skipped with a note, printed and kept in
``metrics.json``'s ``notes``; names from the user's files (class folders, paths) are shown with undecodable bytes
as ``\\xff`` escapes.
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
from contrastkit.evaluate._text import readable
from contrastkit.evaluate.extras import draw_map, evaluation_extras
from contrastkit.evaluate.method import evaluate_method, method_features, raw_baseline_name
from contrastkit.evaluate.paired import format_paired
from contrastkit.evaluate.plots import plot_training_curves, read_training_log
from contrastkit.methods.base import EvalContext, as_method
from contrastkit.methods.registry import import_recorded_plugins
from contrastkit.run import Run, build_run
from contrastkit.runfolder import CHECKPOINT_NAME

__all__ = ["evaluate_run", "format_table", "plot_run"]


def _load_run(run_dir: Path, device: str, data: str | None = None) -> tuple[Run, nn.Module, dict[str, Any], list[str]]:
    """Rebuild the run of ``run_dir``; returns it with the trained weights loaded, its random-init method
    (the seeded initialisation, before loading), the checkpoint and notes (e.g. data that changed since).

    ``data`` points at the run's data in a new place (a moved folder or file); the fingerprint stored in the
    checkpoint says whether it is still the same data."""
    path = run_dir / CHECKPOINT_NAME
    ckpt = load_checkpoint(path)
    config = TrainConfig.from_dict(dict(ckpt["config"]), where=str(path)).replace(device=device)
    import_recorded_plugins(config.plugins, config.method, run_dir)  # a plugin's method: the module the run recorded
    if data is not None:
        config = config.replace(data=data)
    saved = ckpt.get("data") or {}
    run = build_run(config, bank_rows=saved.get("train"), for_training=False)
    notes = []
    change = describe_change(saved, run.fingerprint)
    if change:
        notes.append(f"warning: {change}; evaluating the trained method on the current data")
    random_method = copy.deepcopy(run.method)
    try:
        run.method.load_state_dict(ckpt["method"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit the model its settings build: "
                              f"{str(exc).splitlines()[0]}") from None
    return run, random_method, ckpt, notes


def evaluate_run(run_dir: str | Path, device: str = "auto", baselines: bool = True, plots: bool = True,
                 quiet: bool = False, knn_k: int | None = None, data: str | None = None) -> dict[str, Any]:
    """Score the run in ``run_dir`` (see the module docstring); prints the table, then writes ``metrics.json``
    and the plots. A file that cannot be written is reported (``metrics["write_errors"]``), not fatal: the
    numbers are printed first. ``knn_k`` overrides kNN's k (default 20, or the train size if smaller);
    ``data`` locates the run's data if it moved."""
    run_dir = Path(run_dir)
    start = time.perf_counter()
    run, random_method, ckpt, notes = _load_run(run_dir, device, data)
    for note in notes:
        print(note, file=sys.stderr)
    step = ckpt["progress"]["step"]
    metrics: dict[str, Any] = {
        "method": run.config.method, "data": run.config.data, "modality": run.data.modality,
        "encoder": run.config.encoder, "steps": step,
        "epochs_done": step / max(1, len(run.data.train) // int(run.config.batch_size)),
        "train_seconds": ckpt["progress"].get("train_seconds"),
    }
    scored, test_features = evaluate_method(run.method, run.data, random_method=random_method, augment=run.augment,
                                            baselines=baselines, knn_k=knn_k, seed=run.config.seed,
                                            device=run.device)
    notes.extend(scored.pop("notes"))
    metrics.update(scored)
    metrics["notes"] = notes
    metrics["eval_seconds"] = round(time.perf_counter() - start, 1)
    if not quiet:
        print(format_table(metrics))
        for note in notes:
            print(f"note: {note}")
    errors: list[str] = []
    _write_metrics(run_dir, metrics, errors)
    if plots:
        plot_notes: list[str] = []
        try:
            plot_run(run_dir, run=run, test_features=test_features, notes=plot_notes)
        except OSError as exc:
            errors.append(f"could not write the plots in {run_dir}: {exc.strerror or exc}")
        if plot_notes:  # a map skipped: said now, and kept in metrics.json beside the other notes
            for note in plot_notes:
                print(f"note: {note}")
            notes.extend(plot_notes)
            if not errors:
                _write_metrics(run_dir, metrics, errors)
    if errors:
        metrics["write_errors"] = errors
    return metrics


def _write_metrics(run_dir: Path, metrics: dict[str, Any], errors: list[str]) -> None:
    try:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    except OSError as exc:
        errors.append(f"could not write {run_dir / 'metrics.json'}: {exc.strerror or exc}")


def plot_run(run_dir: str | Path, run: Run | None = None, test_features: torch.Tensor | None = None,
             device: str = "auto", data: str | None = None, notes: list[str] | None = None) -> list[Path]:
    """t-SNE map of the test embeddings coloured by label, and the training curves, as PNGs in ``run_dir``, then the
    plots of the method's evaluation extras (:func:`~contrastkit.evaluate.extras.evaluation_extras`: a learned 2-D
    map, ``<method>_map.png``; CPC's ``prediction_accuracy.png``; the triplet states). Returns the files written.

    ``train_log.csv`` is read first: a log that is not the trainer's CSV (binary, another encoding) is a one-line
    ``ValueError`` naming it, before any map is computed. A map that cannot be drawn (too few test points, features
    that are all one point, e.g. a run trained on constant inputs) is skipped with a note: appended to ``notes``
    when given, else printed as ``note: ...``."""
    run_dir = Path(run_dir)
    log = run_dir / "train_log.csv"
    log_rows = read_training_log(log, "plot") if log.is_file() else []
    if run is None:
        run, _, _, load_notes = _load_run(run_dir, device, data)
        for note in load_notes:
            print(note, file=sys.stderr)
    skipped: list[str] = []
    written = []
    method = as_method(run.method)
    title = f"{run.config.method} on {run.config.data}"
    class_names = list(run.data.class_names) if run.data.class_names else None
    if run.data.has_labels and len(run.data.test):
        path = run_dir / "embedding_tsne.png"
        if test_features is None:
            test_features = method_features(method, run.data.test.inputs, run.device)
        if draw_map(test_features, run.data.test.labels, path, skipped, seed=run.config.seed, class_names=class_names,
                    title=f"{title}: t-SNE of test features"):
            written.append(path)
    if log_rows:  # a header and at least one row
        path = run_dir / "training_curves.png"
        plot_training_curves(log, path, title=title)
        written.append(path)
    extras = evaluation_extras(method, EvalContext(
        run.data, run.device, run.config.seed, scores=False, plot_dir=run_dir, test_features=test_features,
        train_log=log if log.is_file() else None, name=run.config.method, title=title))
    written.extend(extras.plots)
    skipped.extend(extras.notes)
    if notes is None:
        for note in skipped:
            print(f"note: {note}")
    else:
        notes.extend(skipped)
    return written


def format_table(*all_metrics: dict[str, Any]) -> str:
    """A plain-text table: one row per feature set (baselines once, then each trained method)."""
    rows: list[tuple[str, str, str, str]] = []
    seen_baselines = False
    for metrics in all_metrics:
        results = metrics.get("results", {})
        if not seen_baselines:
            raw = raw_baseline_name(metrics.get("modality", "images"))
            for key, label in ((raw, raw.replace("_", " ")), ("random_init", f"random-init {metrics['encoder']}")):
                if key in results:
                    rows.append((label, _pct(results[key]["linear_accuracy"]), _pct(results[key]["knn_accuracy"]), "-"))
            seen_baselines = True
        if "trained" in results:
            seconds = metrics.get("train_seconds")
            rows.append((f"{metrics['method']} ({metrics['encoder']})", _pct(results["trained"]["linear_accuracy"]),
                         _pct(results["trained"]["knn_accuracy"]), "-" if seconds is None else f"{seconds:.0f}"))
    paired = "\n\n".join(text for text in (format_paired(m) for m in all_metrics) if text)
    if not rows:
        return paired or "no labelled results to show"
    trained = next((m["results"]["trained"] for m in all_metrics if "trained" in m.get("results", {})), {})
    header = ("features", "linear probe", f"kNN (k={trained.get('knn_k', 20)})", "train s")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    data = readable(all_metrics[0].get("data", ""))
    table = f"held-out accuracy on {data} (test split)\n" + "\n".join(lines)
    recalls = [m for m in all_metrics if "recall_at_1" in m]
    if recalls:  # retrieval among the held-out samples (contrastkit.evaluate.retrieval)
        first = recalls[0]["results"]
        shown = [(f"{m['method']} (trained)", m["recall_at_1"]) for m in recalls]
        shown += [(k.replace("_", " "), v["recall_at_1"]) for k, v in first.items()
                  if k != "trained" and "recall_at_1" in v]
        table += "\nRecall@1 (nearest other test sample of the same class): " + ", ".join(
            f"{name} {_pct(value)}" for name, value in shown)
    maps = [m for m in all_metrics if "trustworthiness" in m]
    if maps:
        m = maps[0]
        table += (f"\n\ntrustworthiness (k={m['trustworthiness_k']}) of the test points' 2-D map: "
                  f"{m['method']} {_fraction(m['trustworthiness'])}, PCA {_fraction(m['pca_trustworthiness'])}")
    states = [m for m in all_metrics if "triplet_states" in m]
    if states:
        m = states[0]
        shares = m["triplet_states"]
        table += (f"\n\ntriplet states of the {shares['triplets']} valid test triplets ({m['method']}): "
                  f"hard {_pct(shares['hard'])}, semi-hard {_pct(shares['semi_hard'])}, easy {_pct(shares['easy'])}")
    probes = [m for m in all_metrics if "speaker_acc" in m]
    if probes:
        m = probes[0]
        names = [(f"{m['method']} (trained)", m), *[(k.replace("_", " "), v) for k, v in m["baselines"].items()]]
        width = max(len(n) for n, _ in names)
        table += ("\n\nthe CPC probes (linear, held-out utterances)\n" + f"{'features'.ljust(width)}  speaker  phone"
                  + "".join(f"\n{n.ljust(width)}  {_pct(v['speaker_acc']).ljust(7)}  {_pct(v['phone_acc'])}"
                            for n, v in names))
        if "prediction_accuracy" in m:
            table += "\nprediction accuracy by k: " + " ".join(f"{100 * a:.0f}" for a in m["prediction_accuracy"])
    return table + (f"\n\n{paired}" if paired else "")


def _fraction(x: float | None) -> str:
    return "- (see notes)" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"
