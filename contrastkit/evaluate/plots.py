"""PNG plots of embeddings and training curves, drawn off-screen with matplotlib's Agg canvas.

Figures are built with :class:`matplotlib.figure.Figure` and an Agg canvas directly, never through
``pyplot``: no window opens, and the process-wide backend a user chose (e.g. in a notebook) is left alone.

A 2-D map is drawn only from features it can be drawn from (:func:`~contrastkit.evaluate.degenerate.map_problem`:
enough points, finite, not all one point); otherwise :class:`~contrastkit.evaluate.degenerate.DegenerateFeaturesError`
says why, before t-SNE or PCA runs (t-SNE dies natively on collapsed features). Text from the user's files (class
names, titles, CSV columns) is drawn as written, with undecodable file-name bytes as ``\\xff`` escapes and ``$``
kept literal (:func:`_label`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

from contrastkit.evaluate._inputs import to_numpy
from contrastkit.evaluate._text import readable
from contrastkit.evaluate.degenerate import DegenerateFeaturesError, centred_unit_scale, map_problem, rank_one_floor
from contrastkit.runlog import LogFileError, read_log

__all__ = ["embed_2d", "plot_embedding_2d", "plot_similarity_matrix", "plot_training_curves", "plot_triplet_states",
           "read_training_log"]

_METHODS = ("tsne", "pca", "identity")


def embed_2d(features: np.ndarray, method: str = "tsne", seed: int = 0, threads: int | None = 1) -> np.ndarray:
    """(N, F) -> (N, 2) float64: t-SNE (seeded, PCA init), PCA, or the features as given (F must be 2).

    t-SNE's perplexity is ``min(30, (N - 1) / 3)`` so that small sets work too. ``threads`` caps the
    OpenMP / BLAS threads (``None``: library default); one thread by default because t-SNE's
    multi-threaded loops slowed down several-fold on a busy 2-core machine.

    t-SNE and PCA see the features centred and divided by their largest centred magnitude
    (:func:`~contrastkit.evaluate.degenerate.centred_unit_scale`; neither map depends on the shift, the factor
    only scales the map), so features of any magnitude work. Features no map can be drawn from -- fewer than 3
    points, NaN/Inf, one dimension, all one point, or (PCA) a single direction of variation -- raise
    :class:`~contrastkit.evaluate.degenerate.DegenerateFeaturesError` (a ``ValueError``) before t-SNE or PCA runs.
    """
    where = "embed_2d"
    if method not in _METHODS:
        raise ValueError(f"{where}: `method` must be one of {_METHODS}, got {method!r}")
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"{where}: `features` must be (N, F), got shape {x.shape}")
    if method == "identity" and x.shape[1] != 2:
        raise ValueError(f"{where}: method 'identity' needs 2-D features, got shape {x.shape}")
    problem = map_problem(x, method)
    if problem is not None:
        raise DegenerateFeaturesError(where, method, problem)
    if method == "identity":
        return x.astype(np.float64)
    unit = centred_unit_scale(x)  # (N, F) float64, centred, max |value| = 1
    with threadpool_limits(limits=threads):
        if method == "pca":
            from sklearn.decomposition import PCA

            pca = PCA(n_components=2, random_state=seed).fit(unit)
            first, second = pca.explained_variance_
            if not second > rank_one_floor(x.dtype) * first:  # the second axis would be rounding noise
                raise DegenerateFeaturesError(where, method, "the features vary along a single direction (rank 1): "
                                                             "the second axis would show rounding noise")
            return pca.transform(unit)
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (x.shape[0] - 1) / 3))
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(unit)


def plot_embedding_2d(features: object, labels: object, path: str | Path, title: str | None = None,
                      method: str = "tsne", seed: int = 0, max_points: int | None = 3000,
                      class_names: list[str] | None = None, threads: int | None = 1) -> np.ndarray:
    """Scatter a 2-D map of ``features`` (N, F) coloured by ``labels`` (N,), saved as a PNG at ``path``.

    ``method``: ``"tsne"`` (default), ``"pca"`` or ``"identity"`` (features already 2-D, e.g. DrLIM maps).
    At most ``max_points`` points are drawn, a seeded random subset of the rows when there are more
    (t-SNE is quadratic in N). One legend entry per class, named by ``class_names`` (indexed by class id) when
    given. Returns the plotted (n, 2) coordinates. Features no map can be drawn from raise
    :class:`~contrastkit.evaluate.degenerate.DegenerateFeaturesError` (see :func:`embed_2d`); nothing is written.
    """
    where = "plot_embedding_2d"
    x = to_numpy(features, "features", where)
    y = to_numpy(labels, "labels", where)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{where}: `features` must be a non-empty (N, F) array, got shape {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: `labels` must have shape ({x.shape[0]},), got {y.shape}")
    if not np.isfinite(x).all():
        raise DegenerateFeaturesError(where, method, f"the features hold {int((~np.isfinite(x)).sum())} NaN/Inf "
                                                     f"value(s)")
    if max_points is not None and x.shape[0] > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(x.shape[0], size=max_points, replace=False))
        x, y = x[keep], y[keep]
    coords = embed_2d(x, method=method, seed=seed, threads=threads)  # (n, 2)

    classes = np.unique(y)
    if class_names is not None and (not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0
                                    or classes.max() >= len(class_names)):
        raise ValueError(f"{where}: `class_names` ({len(class_names)} names) must have one entry per class id; "
                         f"labels run from {classes.min()} to {classes.max()}")
    figure = Figure(figsize=(7, 6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colormap = _colormap("tab10" if classes.size <= 10 else "tab20" if classes.size <= 20 else "turbo")
    for index, cls in enumerate(classes):
        chosen = y == cls
        colour = colormap(index if classes.size <= 20 else index / max(classes.size - 1, 1))
        name = class_names[int(cls)] if class_names is not None else cls
        axes.scatter(coords[chosen, 0], coords[chosen, 1], s=6, color=colour, label=_label(name), alpha=0.8,
                     linewidths=0)
    axes.legend(title="class", markerscale=3, fontsize="small", loc="best",
                ncol=1 if classes.size <= 12 else 2)
    axes.set_title(_label(title) if title is not None else f"{method} of {x.shape[0]} embeddings")
    axes.set_xticks([])
    axes.set_yticks([])
    figure.tight_layout()
    _save(figure, path)
    return coords


def plot_training_curves(csv_path: str | Path, png_path: str | Path, title: str | None = None) -> list[str]:
    """Plot every numeric column of a training log CSV against ``step``; returns the plotted column names.

    The CSV has a header with at least ``step`` and ``loss`` (e.g. ``step,epoch,loss,lr,...``). One
    panel per column (``loss`` first, then ``lr``, then the rest in file order); ``epoch`` is not
    plotted; empty, non-numeric, non-finite cells and those beyond ``1e300`` in magnitude are skipped (a metric
    logged only at some steps plots as points at those steps). A file that is not such a CSV is a one-line
    ``ValueError`` naming it (:func:`read_training_log`).
    """
    where = "plot_training_curves"
    rows = read_training_log(csv_path, where)
    if not rows:
        raise ValueError(f"{where}: {csv_path} has no data rows")
    header = list(rows[0].keys())
    for required in ("step", "loss"):
        if required not in header:
            raise ValueError(f"{where}: {csv_path} needs a `{required}` column, has {_columns(header)}")
    columns = ["loss"] + (["lr"] if "lr" in header else [])
    columns += [c for c in header if c not in ("step", "epoch", "loss", "lr")]
    series = {}
    for column in columns:
        points = [(_number(row.get("step")), _number(row.get(column))) for row in rows]
        points = [(s, v) for s, v in points if s is not None and v is not None]
        if points:
            series[column] = np.array(points)  # (n, 2): step, value
    if "loss" not in series:
        raise ValueError(f"{where}: {csv_path} has no numeric (step, loss) rows")

    panels = len(series)
    ncols = min(panels, 2)
    nrows = math.ceil(panels / ncols)
    figure = Figure(figsize=(6 * ncols, 3.5 * nrows), dpi=100)
    FigureCanvasAgg(figure)
    for index, (column, points) in enumerate(series.items()):
        axes = figure.add_subplot(nrows, ncols, index + 1)
        style = "-" if points.shape[0] > 20 else "o-"
        axes.plot(points[:, 0], points[:, 1], style, markersize=3, linewidth=1)
        axes.set_xlabel("step")
        axes.set_ylabel(_label(column))
        axes.grid(alpha=0.3)
    if title is not None:
        figure.suptitle(_label(title))
    figure.tight_layout()
    _save(figure, png_path)
    return list(series)


def plot_prediction_accuracy(accuracy: list[float], png_path: str | Path, title: str | None = None) -> None:
    """Accuracy of predicting the latent k steps ahead (CPC), against k = 1..K."""
    figure = Figure(figsize=(5, 3.5))
    axes = figure.add_subplot()
    steps = list(range(1, len(accuracy) + 1))
    axes.plot(steps, [100 * a for a in accuracy], marker="o")
    axes.set_xlabel("steps ahead k")
    axes.set_ylabel("positive ranked first (%)")
    axes.set_xticks(steps)
    axes.grid(alpha=0.3)
    if title is not None:
        axes.set_title(_label(title))
    figure.tight_layout()
    _save(figure, png_path)


def plot_similarity_matrix(similarity: object, png_path: str | Path, a_name: str, b_name: str,
                           title: str | None = None) -> None:
    """A held-out similarity matrix (n, n) of paired data as a heat map: row i is field ``a_name``'s item of pair i,
    column j field ``b_name``'s item of pair j, so the diagonal holds the true pairs (cosine similarity). ``title`` may
    hold line breaks."""
    s = to_numpy(similarity, "similarity", "plot_similarity_matrix").astype(np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or not s.size:
        raise ValueError(f"plot_similarity_matrix: `similarity` must be a square (n, n) matrix, got shape {s.shape}")
    figure = Figure(figsize=(6, 5.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(s, cmap=_colormap("viridis"), interpolation="nearest")  # colours span the matrix's range
    figure.colorbar(image, ax=axes, label="cosine similarity")
    axes.set_xlabel(_label(f"{b_name} of held-out pair j"))
    axes.set_ylabel(_label(f"{a_name} of held-out pair i"))
    if title is not None:  # a line each (a data path, then what is shown)
        axes.set_title("\n".join(_label(line) for line in title.split("\n")), fontsize=10)
    figure.tight_layout()
    _save(figure, png_path)


#: the triplet method's logged columns and their curve labels (contrastkit.methods.triplet)
TRIPLET_STATE_COLUMNS = {"frac_hard": "hard: d(a,n) < d(a,p)",
                         "frac_semihard": "semi-hard: d(a,p) <= d(a,n) < d(a,p) + m",
                         "frac_easy": "easy: d(a,n) >= d(a,p) + m"}


def plot_triplet_states(csv_path: str | Path, png_path: str | Path, title: str | None = None) -> None:
    """The shares of hard / semi-hard / easy triplets in each logged batch against the step, one panel
    (the triplet method's ``frac_hard``, ``frac_semihard``, ``frac_easy`` columns of ``train_log.csv``)."""
    rows = read_training_log(csv_path, "plot_triplet_states")
    missing = [c for c in TRIPLET_STATE_COLUMNS if not rows or c not in rows[0]]
    if missing:
        raise ValueError(f"plot_triplet_states: {csv_path} has no rows with the columns {missing}")
    figure = Figure(figsize=(6, 3.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for column, label in TRIPLET_STATE_COLUMNS.items():
        points = [(_number(row.get("step")), _number(row.get(column))) for row in rows]
        points = np.array([(s, 100 * v) for s, v in points if s is not None and v is not None]).reshape(-1, 2)
        axes.plot(points[:, 0], points[:, 1], "-" if len(points) > 20 else "o-", markersize=3, linewidth=1.2,
                  label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("share of valid triplets in the batch (%)")
    axes.set_ylim(-2, 102)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    if title is not None:
        axes.set_title(_label(title), fontsize=10)
    figure.tight_layout()
    _save(figure, png_path)


def read_training_log(csv_path: str | Path, where: str = "read_training_log") -> list[dict[str, Any]]:
    """The rows of a training log (UTF-8 CSV: a header such as ``step,epoch,loss,lr`` and one line per logged step)
    as dicts keyed by the header: :func:`contrastkit.runlog.read_log`, the one reader of ``train_log.csv`` (a cut
    last line is left out), worded for a plot. A file that is not such text -- binary, another encoding, a line the
    csv module refuses -- is a ``ValueError`` of one line that names the file and the line."""
    path = Path(csv_path)
    try:
        return read_log(path, required=())[1]
    except LogFileError as exc:
        problem = f"is not a text CSV: line {exc.line} holds {exc.detail}" if exc.kind == "text" else \
            f"line {exc.line} is not CSV ({exc.detail})"
    raise ValueError(f"{where}: {readable(path)} {problem}; expected the CSV text the trainer writes (a header such "
                     f"as `step,epoch,loss,lr`, one line per step)")


def _columns(header: list[Any], shown: int = 8) -> str:
    """The header's columns for an error message: at most ``shown``, each cut to 30 characters."""
    names = [repr(readable(c)[:30]) for c in header[:shown]]
    return "[" + ", ".join(names) + (f", ... ({len(header)} columns)" if len(header) > shown else "") + "]"


def _label(text: object) -> str:
    """Text from the user's files as matplotlib draws it literally: undecodable file-name bytes as escapes
    (:func:`~contrastkit.evaluate._text.readable`), ``$`` escaped so that no mathtext is parsed."""
    return readable(text).replace("$", r"\$")


#: cells of larger magnitude are not plotted: matplotlib's axis arithmetic overflows near the float64 limit
LARGEST_PLOTTED = 1e300


def _number(text: str | None) -> float | None:
    """A log cell as a number to plot; None for an empty, non-numeric or non-finite cell, or one beyond
    :data:`LARGEST_PLOTTED` in magnitude."""
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if abs(value) <= LARGEST_PLOTTED else None  # also False for NaN


def _colormap(name: str) -> Colormap:
    return matplotlib.colormaps[name]  # the registry exists from matplotlib 3.5 on


def _save(figure: Figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
