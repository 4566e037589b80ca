"""One table, every method: each registered method that applies to a data set, trained with its own defaults at an
equal CPU budget, scored with one protocol against raw pixels, the random encoder and a supervised ceiling.

For each data set (``--datasets``: any name or path ``load_dataset`` accepts; default mnist5k and fashion-mnist):

* **raw pixels** and **random init** (the default image encoder at its seeded initialisation, untrained: the encoder
  every method starts from) are scored once;
* every registered method (``--methods``; default all of them) is built for the data by the library's own checks
  (``Trainer.from_config``): a method that does not apply (a sequence encoder, two-tower methods on one field, ...)
  is listed under the table with the one-line reason the library gives, never by a list kept here;
* each method is trained with its registered training defaults, capped at ``--minutes`` of training
  (``max_minutes``: the schedule is planned to end with the budget) and scored by
  :meth:`contrastkit.train.Trainer.evaluate` (the evaluation of ``contrastkit eval``: weighted kNN k = 20 cosine, a
  standardised logistic-regression probe with C by CV on the train split, Recall@1 of each test image among the
  other test images); ``supervised`` (cross-entropy on labels, same encoder, same budget) is the ceiling row.

Each finished (data set, method) row is written at once to ``OUT/<data set>/<method>.json`` (the baselines to
``baselines.json``), so an interrupted benchmark keeps its rows and a rerun trains only the missing ones
(``--overwrite`` retrains them). A folder holds one budget: a row measured with another ``--minutes``, ``--epochs``
or ``--seed`` is refused, not mixed in. After each data set ``OUT/quality.md`` (one table per data set, the machine
in its header) and ``OUT/quality.png`` (bar charts) are rewritten from the rows of the data sets asked for. The run
folders (checkpoints, ``train_log.csv``) go to ``--runs`` (default ``runs/quality``, outside version control).

Timings need a quiet machine: run it alone. Usage::

    python benchmarks/quality.py --minutes 10                      # mnist5k and fashion-mnist, every method
    python benchmarks/quality.py --minutes 10 --methods simclr,moco,membank,supervised --datasets fashion-mnist
    python benchmarks/quality.py --minutes 0.05 --datasets digits --epochs 1 --out /tmp/q   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from contrastkit.config import TrainConfig
from contrastkit.data import load_dataset
from contrastkit.device import resolve_device
from contrastkit.evaluate.method import evaluate_method
from contrastkit.methods.registry import available_methods, get_method
from contrastkit.runfolder import write_text_atomic
from contrastkit.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = ("mnist5k", "fashion-mnist")
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "quality"
DEFAULT_RUNS = Path("runs") / "quality"
#: the method whose row is the supervised ceiling (drawn last), and whose untrained build gives the baselines
CEILING = "supervised"
BASELINES = "baselines"  # the JSON file name (without .json) of the raw-pixel and random-init rows
#: what must match for a stored row to be reused in a table of this run
BUDGET_KEYS = ("minutes", "epochs", "seed")
METRICS = (("linear_acc", "linear probe"), ("knn_acc", "kNN"), ("recall_at_1", "R@1"))


# ---------------------------------------------------------------------------------------------------------------
# the machine
# ---------------------------------------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine(device: torch.device) -> dict[str, Any]:
    """What the timings depend on: CPU model, cores, torch version, the device and the torch threads."""
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "device": str(device),
            "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def describe_machine(info: dict[str, Any]) -> str:
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    return (f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, device {info['device']}{gpu}, "
            f"{info['threads']} torch threads")


# ---------------------------------------------------------------------------------------------------------------
# rows: one JSON file each
# ---------------------------------------------------------------------------------------------------------------

def slug(name: str) -> str:
    """A folder name for a data set name or path (``fashion-mnist``; ``/data/my set`` -> ``my_set``)."""
    text = Path(name).name if ("/" in name or os.sep in name) else name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "data"


def row_path(out: Path, dataset: str, name: str) -> Path:
    return out / slug(dataset) / f"{name}.json"


def write_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(row, indent=2, sort_keys=True) + "\n")


def read_row(path: Path, budget: dict[str, Any]) -> dict[str, Any] | None:
    """The stored row at ``path``, or None when there is none. A row of a trained method measured under another
    budget (:data:`BUDGET_KEYS`) is a ValueError naming the file and both values; a file that is not a row is one
    too."""
    if not path.exists():
        return None
    try:
        row = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a stored benchmark row ({exc}); delete it or pass --overwrite") from None
    if not isinstance(row, dict) or "status" not in row:
        raise ValueError(f"{path}: not a stored benchmark row (no 'status'); delete it or pass --overwrite")
    if row["status"] == "ok":
        for key in BUDGET_KEYS:
            if row.get(key) != budget[key]:
                raise ValueError(f"{path} was measured with {key} {row.get(key)!r}, this run asks for "
                                 f"{budget[key]!r}: one folder holds one budget; pass --overwrite to retrain, or "
                                 f"choose another --out")
    return row


def _config(method: str, dataset: str, args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(method=method, data=dataset, out=str(Path(args.runs) / slug(dataset) / method),
                       max_minutes=args.minutes, epochs=args.epochs, seed=args.seed, device=args.device,
                       num_threads=args.num_threads, progress=args.progress, log_every=args.log_every)


def _accuracies(scores: dict[str, Any]) -> dict[str, Any]:
    return {"linear_acc": scores.get("linear_accuracy"), "knn_acc": scores.get("knn_accuracy"),
            "recall_at_1": scores.get("recall_at_1")}


def baseline_row(dataset: str, args: argparse.Namespace, budget: dict[str, Any]) -> dict[str, Any]:
    """Raw pixels and the random encoder (the ceiling method built for the data, untrained: its features are the
    encoder's at the seeded initialisation every method starts from), by the same evaluation."""
    started = time.perf_counter()
    try:
        trainer = Trainer.from_config(_config(CEILING, dataset, args))
    except (ValueError, TypeError, OSError) as exc:
        return {"status": "skipped", "reason": str(exc), **budget}
    metrics, _ = evaluate_method(trainer.method, trainer.data, baselines=True, seed=args.seed, device=trainer.device)
    results = metrics["results"]
    raw = next((name for name in ("raw_pixels", "raw_inputs") if name in results), None)
    return {"status": "ok", **budget, "encoder": trainer.config.encoder,
            "random_init": _accuracies(results["trained"]),
            "raw": _accuracies(results[raw]) if raw else None, "raw_name": raw,
            "eval_seconds": time.perf_counter() - started, "notes": metrics.get("notes", [])}


def method_row(method: str, dataset: str, args: argparse.Namespace, budget: dict[str, Any]) -> dict[str, Any] | None:
    """Train ``method`` on ``dataset`` with its defaults under the budget and score it; a method the library refuses
    for this data is a skipped row with its reason. None: training was interrupted (Ctrl-C), nothing to store."""
    started = time.perf_counter()
    try:
        trainer = Trainer.from_config(_config(method, dataset, args))
    except (ValueError, TypeError, OSError) as exc:  # the library's checks: this method does not apply here
        return {"status": "skipped", "method": method, "reason": str(exc), **budget}
    build_seconds = time.perf_counter() - started  # data, method (DrLIM's neighbour graph): outside the budget
    summary = trainer.fit(overwrite=True)
    if summary.get("interrupted"):
        return None
    started = time.perf_counter()
    metrics = trainer.evaluate(baselines=False)
    config = trainer.config
    return {"status": "ok", "method": method, **budget, "linear_acc": metrics.get("linear_acc"),
            "knn_acc": metrics.get("knn_acc"), "recall_at_1": metrics.get("recall_at_1"),
            "classifier_acc": metrics.get("classifier_acc"), "eval_seconds": time.perf_counter() - started,
            "build_seconds": build_seconds,
            "train_seconds": summary["train_seconds"], "images_per_s": summary["images_per_s"],
            "steps": trainer.step, "steps_per_epoch": trainer.steps_per_epoch, "total_steps": trainer.total_steps,
            "epochs_reached": trainer.step / trainer.steps_per_epoch, "epochs_planned": config.epochs,
            "stopped_early": summary["stopped_early"], "final_loss": summary["final_loss"],
            "settings": {key: getattr(config, key) for key in ("encoder", "augment", "optimizer", "lr",
                                                                "weight_decay", "batch_size", "warmup_epochs",
                                                                "precision")},
            "method_options": config.method_options, "notes": metrics.get("notes", [])}


# ---------------------------------------------------------------------------------------------------------------
# the table and the chart
# ---------------------------------------------------------------------------------------------------------------

def _percent(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def table_rows(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, row) of a data set's scored rows in table order: raw pixels, random init, the methods, the ceiling."""
    rows: list[tuple[str, dict[str, Any]]] = []
    base = result.get("baselines") or {}
    if base.get("status") == "ok":
        if base.get("raw"):
            rows.append(("raw pixels" if base["raw_name"] == "raw_pixels" else "raw inputs", base["raw"]))
        rows.append((f"random init ({base['encoder']})", base["random_init"]))
    for name, row in result["methods"].items():
        if row.get("status") == "ok":
            rows.append((f"{name} (ceiling)" if name == CEILING else name, row))
    return rows


def budget_text(row: dict[str, Any]) -> str:
    """The budget a row was measured under, in words."""
    epochs = row.get("epochs")
    defaults = (f"each method's registered defaults but {epochs} epoch{'s' if epochs > 1 else ''}" if epochs
                else "each method's registered training defaults")
    return f"Budget: {row['minutes']:g} minutes of training per method (`max_minutes`), {defaults}, seed {row['seed']}."


def format_dataset(dataset: str, result: dict[str, Any]) -> str:
    lines = [f"### {dataset}", ""]
    if result.get("skipped"):
        return "\n".join([*lines, f"Skipped: {result['skipped']}", ""])
    measured = next((row for row in [result.get("baselines") or {}, *result["methods"].values()]
                     if row.get("status") == "ok"), None)
    about = " ".join(text for text in (result.get("about"), budget_text(measured) if measured else None) if text)
    if about:
        lines += [about, ""]
    lines += ["| features | linear probe | kNN | R@1 | train s | steps (epochs of planned) |",
              "|---|---:|---:|---:|---:|---:|"]
    for label, row in table_rows(result):
        seconds = f"{row['train_seconds']:.0f}" if "train_seconds" in row else "–"
        steps = (f"{row['steps']:,} ({row['epochs_reached']:.1f} of {row['epochs_planned']})" if "steps" in row
                 else "–")
        lines.append(f"| {label} | {_percent(row.get('linear_acc'))} | {_percent(row.get('knn_acc'))} | "
                     f"{_percent(row.get('recall_at_1'))} | {seconds} | {steps} |")
    lines.append("")
    ceiling = result["methods"].get(CEILING, {})
    if ceiling.get("classifier_acc") is not None:
        lines += [f"The supervised model's own classifier: {_percent(ceiling['classifier_acc'])} on the test split.",
                  ""]
    skipped = [(name, row["reason"]) for name, row in result["methods"].items() if row.get("status") == "skipped"]
    if result.get("baselines", {}).get("status") == "skipped":
        skipped.insert(0, ("baselines", result["baselines"]["reason"]))
    failed = [(name, row["error"]) for name, row in result["methods"].items() if row.get("status") == "failed"]
    lines += [f"- not applicable: **{name}** -- {reason}" for name, reason in skipped]
    lines += [f"- failed (retried on the next run): **{name}** -- {error}" for name, error in failed]
    return "\n".join(lines + ([""] if skipped or failed else []))


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in [result.get("baselines") or {}, *result["methods"].values()] if row.get("status")]


def format_report(results: dict[str, dict[str, Any]], info: dict[str, Any]) -> str:
    """The markdown of every data set (each with its budget), the machine, the protocol and the commands that
    measured the rows in its header."""
    lines = ["# Every method at an equal budget", "",
             f"Machine: {describe_machine(info)}.", "",
             "Protocol (`contrastkit eval`'s): weighted kNN (k = 20, cosine, exp(s / 0.07) votes) and a standardised "
             "logistic-regression probe with C by cross-validation on the train split, scored on the test split; "
             "R@1: is each test image's nearest other test image (Euclidean, on the method's features) of its "
             "class. Each method is scored on the features its evaluation uses (the encoder's output; triplet: its "
             "embedding; drlim: its 2-D map). Random init: the default encoder at its seeded initialisation, "
             "untrained (where every method starts).", ""]
    commands = list(dict.fromkeys(row["command"] for result in results.values() for row in _rows(result)
                                  if row.get("command")))
    lines += [f"Command{'s' if len(commands) > 1 else ''}: " + "; ".join(f"`{c}`" for c in commands), ""] \
        if commands else []
    others = sorted({describe_machine(row["machine"]) for result in results.values() for row in _rows(result)
                     if row.get("machine") and row["machine"] != info})
    if others:
        lines += ["Rows measured on another machine (kept from an earlier run): " + "; ".join(others), ""]
    for dataset, result in results.items():
        lines.append(format_dataset(dataset, result))
    return "\n".join(lines).rstrip() + "\n"


def plot_results(results: dict[str, dict[str, Any]], path: Path, title: str) -> bool:
    """Grouped horizontal bars (linear probe, kNN, R@1) of each scored row, one panel per data set; False when no
    data set has a scored row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(name, table_rows(result)) for name, result in results.items() if table_rows(result)]
    if not panels:
        return False
    height = max(3.0, 0.45 * max(len(rows) for _, rows in panels) * 1.2 + 1.5)
    figure = Figure(figsize=(6.5 * len(panels), height), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    width = 0.8 / len(METRICS)
    for ax, (dataset, rows) in zip(axes, panels, strict=True):
        labels = [label for label, _ in rows][::-1]
        for m, (key, name) in enumerate(METRICS):
            values = [100 * (row.get(key) or 0.0) for _, row in rows][::-1]
            positions = [i + ((len(METRICS) - 1) / 2 - m) * width for i in range(len(rows))]  # first metric on top
            ax.barh(positions, values, height=width, label=name)
        ax.set_yticks(range(len(rows)), labels)
        scored = [100 * row[key] for _, row in rows for key, _ in METRICS if row.get(key) is not None]
        low = max(0.0, min(scored, default=0.0) - 5)
        ax.set_xlim(low, 100)
        ax.set_xlabel("accuracy on the test split (%)")
        minutes = next((row["minutes"] for row in _rows(results[dataset]) if row.get("status") == "ok"), None)
        ax.set_title(dataset if minutes is None else f"{dataset}: {minutes:g} training minutes per method")
        ax.grid(axis="x", alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(METRICS), fontsize="small", frameon=False)
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return True


# ---------------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------------

def method_order(names: Sequence[str]) -> list[str]:
    """The methods in table order: alphabetical, the supervised ceiling last."""
    return sorted(names, key=lambda name: (name == CEILING, name))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="training budget per method in minutes (max_minutes; default 10)")
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS),
                        help="comma-separated data sets: any name or path load_dataset accepts (default "
                             f"{','.join(DEFAULT_DATASETS)})")
    parser.add_argument("--methods", default=None,
                        help="comma-separated registered methods (default: all; those that do not apply to the data "
                             "are listed with the reason)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for every method (default: each method's own)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--num-threads", type=int, default=None,
                        help="torch CPU threads for training and evaluation (default: PyTorch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help="folder of the rows (JSON), quality.md and quality.png (default benchmarks/results/"
                             "quality)")
    parser.add_argument("--runs", default=str(DEFAULT_RUNS),
                        help="folder of the training runs (checkpoints, logs; default runs/quality)")
    parser.add_argument("--overwrite", action="store_true", help="retrain rows that are stored already")
    parser.add_argument("--log-every", type=int, default=50, help="steps between training log lines (default 50)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stdout.isatty(),
                        help="progress bars while training (default: on a terminal)")
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error(f"--minutes must be > 0, got {args.minutes:g}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.num_threads is not None and args.num_threads < 1:
        parser.error(f"--num-threads must be >= 1, got {args.num_threads}")
    args.datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]
    if not args.datasets:
        parser.error("--datasets names no data set")
    if args.methods is not None:
        args.methods = [name.strip() for name in args.methods.split(",") if name.strip()]
        if not args.methods:
            parser.error("--methods names no method")
    return args


def _dataset_facts(dataset: str) -> tuple[str | None, str | None]:
    """(a sentence about the data, None) when it loads and has labels; (None, why it is skipped) otherwise."""
    try:
        data = load_dataset(dataset)
    except (OSError, ValueError) as exc:
        return None, str(exc)
    if not data.has_labels:
        return None, f"{dataset!r} has no labels: kNN, the probe and R@1 need them"
    shape = " x ".join(str(v) for v in data.input_shape)
    return f"{len(data.train):,} train / {len(data.test):,} test samples of {shape}, {data.num_classes} classes.", None


def run_dataset(dataset: str, methods: list[str], args: argparse.Namespace, budget: dict[str, Any],
                info: dict[str, Any], out: Path) -> tuple[dict[str, Any], bool]:
    """Every row of one data set (stored ones read back, missing ones measured and stored at once); the flag is
    False when training was interrupted."""
    about, skipped = _dataset_facts(dataset)
    if skipped is not None:
        print(f"[{dataset}] skipped: {skipped}", flush=True)
        return {"skipped": skipped, "methods": {}}, True
    result: dict[str, Any] = {"about": about, "methods": {}}
    for name in [BASELINES, *methods]:
        path = row_path(out, dataset, name)
        row = None if args.overwrite else read_row(path, budget)
        if row is not None:
            print(f"[{dataset}] {name}: kept ({path})", flush=True)
        else:
            print(f"[{dataset}] {name}: {'scoring' if name == BASELINES else 'training'} ...", flush=True)
            try:
                row = baseline_row(dataset, args, budget) if name == BASELINES else method_row(name, dataset, args,
                                                                                                 budget)
            except (RuntimeError, ValueError, TypeError, OSError) as exc:  # kept out of the JSON: retried next time
                print(f"[{dataset}] {name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
                result["methods"][name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                continue
            if row is None:
                print(f"[{dataset}] {name}: interrupted; its row is not stored", flush=True)
                return result, False
            row.update(dataset=dataset, machine=info, command=args.command, about=about,
                       finished=datetime.now(UTC).isoformat(timespec="seconds"))
            write_row(path, row)
            print(f"[{dataset}] {name}: {_summary(row)} -> {path}", flush=True)
        if name == BASELINES:
            result["baselines"] = row
        else:
            result["methods"][name] = row
    return result, True


def _summary(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"skipped: {row['reason']}"
    scores = row if "linear_acc" in row else row["random_init"]
    return (f"linear {_percent(scores.get('linear_acc'))}, kNN {_percent(scores.get('knn_acc'))}, "
            f"R@1 {_percent(scores.get('recall_at_1'))}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)  # this script's process: evaluation too, not only training
    try:
        methods = method_order(args.methods if args.methods is not None else available_methods())
        for name in methods:
            get_method(name)  # an unknown name: one line listing the registered ones
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"quality.py: error: {exc}", file=sys.stderr)
        return 2
    info = machine(device)
    budget = {"minutes": args.minutes, "epochs": args.epochs, "seed": args.seed}
    out = Path(args.out)
    args.command = "python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"machine: {describe_machine(info)}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    finished = True
    try:
        if not args.overwrite:  # every stored row of another budget is refused before anything is trained
            for dataset in args.datasets:
                for name in [BASELINES, *methods]:
                    read_row(row_path(out, dataset, name), budget)
        for dataset in args.datasets:
            results[dataset], finished = run_dataset(dataset, methods, args, budget, info, out)
            write_report(results, info, args, out)
            if not finished:
                break
    except ValueError as exc:  # a stored row of another budget, or not a row
        print(f"quality.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"quality.py: interrupted; the finished rows are kept in {out} (a rerun measures the others)",
              file=sys.stderr)
        return 130
    report = (out / "quality.md").read_text()
    print("\n" + report)
    return 0 if finished else 130


def stored_results(out: Path, leave_out: set[str]) -> dict[str, dict[str, Any]]:
    """The rows stored in ``out`` for data sets other than those in ``leave_out`` (folder names): earlier runs of
    this folder, e.g. another data set measured with another budget, by data set name."""
    found: dict[str, dict[str, Any]] = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and p.name not in leave_out):
        rows: dict[str, dict[str, Any]] = {}
        for path in sorted(folder.glob("*.json")):
            try:
                row = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(row, dict) and row.get("status") in ("ok", "skipped"):
                rows[path.stem] = row
        base = rows.pop(BASELINES, None)
        if not rows and base is None:
            continue
        name = next((row["dataset"] for row in [base or {}, *rows.values()] if row.get("dataset")), folder.name)
        found[name] = {"about": next((row["about"] for row in [base or {}, *rows.values()] if row.get("about")),
                                     None),
                       "baselines": base, "methods": {method: rows[method] for method in method_order(rows)}}
    return found


def write_report(results: dict[str, dict[str, Any]], info: dict[str, Any], args: argparse.Namespace,
                 out: Path) -> None:
    """``quality.md`` and ``quality.png`` in ``out``: the data sets of this run, then those stored there before."""
    out.mkdir(parents=True, exist_ok=True)
    every = {**results, **stored_results(out, {slug(name) for name in results})}
    write_text_atomic(out / "quality.md", format_report(every, info))
    title = f"every method at an equal training budget; {info['cpu']}, {info['cores']} cores"
    if not plot_results(every, out / "quality.png", title) and (out / "quality.png").exists():
        (out / "quality.png").unlink()  # no scored row: no stale chart


if __name__ == "__main__":
    sys.exit(main())
