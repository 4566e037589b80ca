r"""The mutual-information benchmark of Poole et al. 2019 ("On variational bounds of mutual information",
ICML, section 5 / figure 2): estimators trained on correlated Gaussians whose true MI climbs a staircase.

Data: :math:`x \sim \mathcal N(0, I_d)`, :math:`y = \rho x + \sqrt{1 - \rho^2}\,\varepsilon` with
:math:`\varepsilon \sim \mathcal N(0, I_d)`, d = 20, so each of the d coordinate pairs has correlation
:math:`\rho` and

.. math:: I(X; Y) = -\frac d2 \log(1 - \rho^2), \qquad \rho = \sqrt{1 - e^{-2I/d}}.

The true MI is held at 2, 4, 6, 8, 10 nats for ``steps_per_level`` steps each; every step draws a fresh
batch (64 pairs), records the estimate on that batch, then takes one Adam step on it. One critic
(or CLUB network) is trained through the whole staircase, as in the paper. A level's result is the mean
(and standard deviation) of the per-batch estimates over its last ``tail_fraction`` of steps.

Learning rate (:func:`level_lr`): by default every level restarts at the estimator's rate
(:data:`LEARNING_RATES`) and decays along a half cosine to ``final_lr_fraction`` (2%) of it by the level's
end -- SGDR's warm restarts (Loshchilov & Hutter 2017, "SGDR: Stochastic gradient descent with warm
restarts", ICLR, eq. 5) with one restart per level:

.. math:: \eta_t = \eta\,\Bigl[\varphi + (1 - \varphi)\,\tfrac12\bigl(1 + \cos(\pi t / T)\bigr)\Bigr],
   \qquad t = 0, \dots, T - 1 \text{ within a level of } T \text{ steps}.

Why: a lower bound is maximised by the optimal critic, so any deviation of the parameters from it lowers
the expected estimate, to second order in the deviation; at a constant rate SGD's own noise keeps that
deviation (and so the tail's downward bias) in proportion to the rate. The restart lets the critic move
fast to the next level's new optimum, the decay lets it settle there before the tail is measured. The
estimates stay honest: each is still taken on a fresh batch before the step on it. ``lr_schedule=
"constant"`` gives the paper's constant rate (5e-4 there). InfoNCE starts each level at 2e-3; NWJ keeps
5e-4, since its :math:`e^{f}` term's gradient grows exponentially with the scores and at 1e-3 or more its
scores run away until :math:`e^f` overflows; CLUB keeps 5e-4 too (its fit is no better at 2e-3).

Critic: the separable critic has linear shortcuts by default (``linear_skip``; see
:class:`contrastkit.mi.SeparableCritic`): for these Gaussians the optimal critic is
:math:`\frac{\rho}{1 - \rho^2} x^\top y - \frac{\rho^2}{2(1 - \rho^2)}\lVert y\rVert^2 + c(x)`, whose
bilinear part the shortcuts hold exactly. At 2 nats and batch 64 even the optimal critic averages only
about 1.82 nats (InfoNCE's own bias); the shortcuts and the schedule together take the trained critic from
1.69 (the paper's setting, seed 0) to 1.81 (mean of seeds 0-6, each within 0.01 of the optimal critic on
its own batches); either change alone gives about 1.77.

Estimators (see :mod:`contrastkit.mi`): ``infonce`` (lower bound, at most log(batch)), ``nwj`` (lower
bound, high variance at large MI) -- both with a ``separable`` or ``concat`` critic -- and ``club`` (upper
bound; it fits a Gaussian q(y|x) by maximum likelihood, so the critic choice does not apply to it).

Memory (:func:`step_memory`, :func:`check_memory`): the bounds score every x against every y, so a step holds
B x B matrices (B x B x hidden activations for the concat critic). Before any training the benchmark estimates
its peak from the settings and refuses, in one line, a batch (or a number of steps) that would not fit this
machine's memory (:mod:`contrastkit.memory`), naming the largest batch that would.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from contrastkit import memory
from contrastkit.memory import MEMORY_FRACTION, check_fits
from contrastkit.mi import CLUB, CRITICS, InfoNCEEstimator, NWJEstimator, make_critic
from contrastkit.stopping import SignalStop

__all__ = [
    "ESTIMATORS",
    "LEARNING_RATES",
    "LEVELS",
    "LR_SCHEDULES",
    "MAX_SEED",
    "BenchConfig",
    "EstimatorRun",
    "check_memory",
    "check_output_paths",
    "format_table",
    "gaussian_mi",
    "int_from_text",
    "level_lr",
    "plot_formats",
    "plot_runs",
    "results_json",
    "rho_for_mi",
    "run_benchmark",
    "run_estimator",
    "sample_correlated_gaussians",
    "step_memory",
]

#: estimator names the benchmark knows
ESTIMATORS = ("infonce", "nwj", "club")
#: the true MI of each level of the staircase, in nats (Poole et al. 2019)
LEVELS = (2.0, 4.0, 6.0, 8.0, 10.0)
#: learning-rate schedules within a level (see :func:`level_lr`)
LR_SCHEDULES = ("cosine", "constant")
#: Adam's rate at the start of each level for each estimator when ``BenchConfig.lr`` is None
LEARNING_RATES = {"infonce": 2e-3, "nwj": 5e-4, "club": 5e-4}
#: the largest seed (the range of `contrastkit train --seed`; torch takes seeds below 2**64)
MAX_SEED = 2**63 - 1


def gaussian_mi(rho: float, dim: int) -> float:
    r""":math:`I(X; Y) = -\frac d2 \log(1 - \rho^2)` for d coordinate pairs of correlation :math:`\rho`."""
    return -0.5 * dim * math.log(1.0 - rho * rho)


def rho_for_mi(mi: float, dim: int) -> float:
    r"""The correlation :math:`\rho = \sqrt{1 - e^{-2I/d}}` giving true MI ``mi`` (nats) in dimension ``dim``."""
    if not (mi >= 0 and math.isfinite(mi)):
        raise ValueError(f"rho_for_mi: the true MI must be a finite number >= 0, got {mi!r}")
    return math.sqrt(-math.expm1(-2.0 * mi / dim))


def sample_correlated_gaussians(n: int, rho: float, dim: int, generator: torch.Generator | None = None,
                                dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    r"""n pairs: x (n, dim) ~ N(0, I); y = rho x + sqrt(1 - rho^2) eps, (n, dim)."""
    x = torch.randn(n, dim, generator=generator, dtype=dtype)  # (n, d)
    noise = torch.randn(n, dim, generator=generator, dtype=dtype)  # (n, d)
    return x, rho * x + math.sqrt(1.0 - rho * rho) * noise


def _level_key(mi: float) -> str:
    return f"{mi:g}"


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one benchmark run (defaults: Poole et al. 2019's staircase, batch and separable critic,
    with the critic's linear shortcuts and the per-level cosine learning rate of the module docstring;
    ``lr=5e-4, lr_schedule="constant", linear_skip=False`` is the paper's setting)."""

    estimators: tuple[str, ...] = ESTIMATORS
    critic: str = "separable"
    levels: tuple[float, ...] = LEVELS
    steps_per_level: int = 8000
    batch_size: int = 64
    dim: int = 20
    #: Adam's learning rate at the start of each level, for every estimator; None: :data:`LEARNING_RATES`
    lr: float | None = None
    #: "cosine": each level decays from ``lr`` to ``final_lr_fraction * lr``; "constant": ``lr`` throughout
    lr_schedule: str = "cosine"
    final_lr_fraction: float = 0.02
    hidden: int = 256
    layers: int = 2
    embed_dim: int = 32
    #: linear shortcuts in the separable critic's towers (ignored by the concat critic and CLUB)
    linear_skip: bool = True
    tail_fraction: float = 0.2
    seed: int = 0
    #: CPU threads while training (tiny matrices: one thread is fastest, and fair to a shared machine)
    num_threads: int = 1

    def __post_init__(self) -> None:
        where = "mi-bench"
        if isinstance(self.estimators, str):
            object.__setattr__(self, "estimators", tuple(self.estimators.split(",")))
        names = tuple(name.strip() for name in self.estimators)
        unknown = [name for name in names if name not in ESTIMATORS]
        if not names or unknown:
            raise ValueError(f"{where}: unknown estimator(s) {unknown or names}; expected a comma-separated "
                             f"subset of {list(ESTIMATORS)}")
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: estimator listed twice in {list(names)}")
        object.__setattr__(self, "estimators", names)
        if self.critic not in CRITICS:
            raise ValueError(f"{where}: unknown critic {self.critic!r}; expected one of {list(CRITICS)}")
        for name in ("steps_per_level", "dim", "hidden", "layers", "embed_dim", "num_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}: `{name}` must be an integer >= 1, got {value!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ValueError(f"{where}: `batch_size` must be an integer >= 2 (the bounds contrast each pair with "
                             f"the others in its batch), got {self.batch_size!r}")
        levels = tuple(float(v) for v in self.levels)
        if not levels or any(not (math.isfinite(v) and v >= 0) for v in levels):
            raise ValueError(f"{where}: `levels` must be finite true-MI values >= 0, got {self.levels!r}")
        object.__setattr__(self, "levels", levels)
        if self.lr is not None and not (0 < self.lr < math.inf):
            raise ValueError(f"{where}: `lr` must be > 0 (or None for each estimator's default), got {self.lr!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"{where}: unknown `lr_schedule` {self.lr_schedule!r}; expected one of "
                             f"{list(LR_SCHEDULES)}")
        if not (0 < self.final_lr_fraction <= 1):
            raise ValueError(f"{where}: `final_lr_fraction` must be in (0, 1], got {self.final_lr_fraction!r}")
        if not isinstance(self.linear_skip, bool):
            raise ValueError(f"{where}: `linear_skip` must be True or False, got {self.linear_skip!r}")
        if not (0 < self.tail_fraction <= 1):
            raise ValueError(f"{where}: `tail_fraction` must be in (0, 1], got {self.tail_fraction!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"{where}: `seed` must be an integer from 0 to 2**63 - 1, got {self.seed!r}")

    def lr_for(self, name: str) -> float:
        """Adam's rate at the start of each level for estimator ``name``: ``lr``, or its default if None."""
        return LEARNING_RATES[name] if self.lr is None else self.lr

    @property
    def tail_steps(self) -> int:
        """How many final steps of each level its mean and standard deviation are taken over."""
        return max(1, round(self.tail_fraction * self.steps_per_level))


@dataclass
class EstimatorRun:
    """One estimator's trace through the staircase: ``estimates[t]`` is its value on step t's batch."""

    name: str
    config: BenchConfig
    estimates: list[float] = field(default_factory=list)
    true_mi: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def level_values(self, level_index: int) -> Tensor:
        """The per-step estimates of the last ``tail_steps`` steps of a level, float64 (tail_steps,)."""
        end = (level_index + 1) * self.config.steps_per_level
        return torch.tensor(self.estimates[end - self.config.tail_steps:end], dtype=torch.float64)

    def level_means(self) -> dict[str, float]:
        return {_level_key(mi): float(self.level_values(k).mean()) for k, mi in enumerate(self.config.levels)}

    def level_stds(self) -> dict[str, float]:
        """Standard deviation of the per-batch estimates (0 when a tail holds one step)."""
        out = {}
        for k, mi in enumerate(self.config.levels):
            values = self.level_values(k)
            out[_level_key(mi)] = float(values.std()) if values.numel() > 1 else 0.0
        return out


def level_lr(config: BenchConfig, name: str, step: int) -> float:
    r"""Estimator ``name``'s learning rate at step ``step`` (0-based) of a level of ``T = steps_per_level`` steps.

    ``"cosine"``: :math:`\eta [\varphi + (1 - \varphi)\frac12(1 + \cos(\pi t / T))]` with
    :math:`\eta` = ``config.lr_for(name)``, :math:`\varphi` = ``final_lr_fraction`` -- :math:`\eta` at a level's
    first step, falling towards :math:`\varphi\eta` at its last (SGDR, Loshchilov & Hutter 2017, restarted at
    every level; see the module docstring for why). ``"constant"``: :math:`\eta` throughout.
    """
    if not 0 <= step < config.steps_per_level:
        raise ValueError(f"mi-bench: step {step} is outside a level of {config.steps_per_level} steps")
    lr = config.lr_for(name)
    if config.lr_schedule == "constant":
        return lr
    phi = config.final_lr_fraction
    return lr * (phi + (1.0 - phi) * 0.5 * (1.0 + math.cos(math.pi * step / config.steps_per_level)))


def _build(name: str, config: BenchConfig) -> nn.Module:
    if name == "club":
        return CLUB(config.dim, config.dim, hidden=config.hidden)
    critic = make_critic(config.critic, config.dim, config.dim, hidden=config.hidden, layers=config.layers,
                         embed_dim=config.embed_dim, linear_skip=config.linear_skip)
    return InfoNCEEstimator(critic) if name == "infonce" else NWJEstimator(critic)


#: float32 values per pair (i, j) a step holds at its peak, forward and backward: the (B, B) scores and what the
#: bound makes of them (InfoNCE: scaled scores, log-softmax; NWJ: masked scores, log-sum-exp, two bool masks)
_PAIR_FLOATS = {"infonce": 3, "nwj": 5}
#: bytes one recorded step of the trace keeps: a Python float (24) and two list slots (estimate, true MI)
_TRACE_BYTES_PER_STEP = 40


def step_memory(config: BenchConfig, name: str) -> int:
    """Bytes one training step of estimator ``name`` holds at its peak (float32), from the settings alone.

    With B = ``batch_size``, d = ``dim``, H = ``hidden``, L = ``layers``, E = ``embed_dim``, in float32 values:
    the samples 4 B d; ``club``: its two networks 5 B H; a separable critic: both towers, forward and backward,
    4 (2 L H + 3 E) B, plus the pairs (3 B^2 for InfoNCE, 5 B^2 for NWJ); the concat critic: the (B, B, H)
    activations 2 L B^2 H, plus the same pairs. Measured here (peak RSS of one step, 2-core CPU machine): InfoNCE
    separable B = 4,096: 229 MiB (estimate 263), B = 8,192: 869 MiB (908); NWJ separable B = 4,096: 342 MiB (391);
    InfoNCE concat B = 256: 259 MiB (257); NWJ concat B = 512: 1,034 MiB (1,030); CLUB B = 65,536: 376 MiB (370).
    """
    b, d, h = config.batch_size, config.dim, config.hidden
    floats = 4 * b * d
    if name == "club":
        floats += 5 * b * h + 10 * b * d
    elif config.critic == "separable":
        floats += 4 * (2 * config.layers * h + 3 * config.embed_dim) * b + _PAIR_FLOATS[name] * b * b
    else:
        floats += 2 * config.layers * b * b * h + 4 * b * h + _PAIR_FLOATS[name] * b * b
    return 4 * floats


def _trace_memory(config: BenchConfig) -> int:
    """Bytes of the per-step traces every estimator keeps (:class:`EstimatorRun`)."""
    return len(config.estimators) * len(config.levels) * config.steps_per_level * _TRACE_BYTES_PER_STEP


def _needed(config: BenchConfig) -> int:
    return max(step_memory(config, name) for name in config.estimators) + _trace_memory(config)


def _largest_batch(config: BenchConfig, budget: float) -> int:
    """The largest batch size (>= 2) whose estimate fits ``budget`` bytes, or 0 if none does."""
    low, high = 1, config.batch_size  # _needed(low) fits (or low = 1: none), _needed(high) does not
    if _needed(dataclasses.replace(config, batch_size=2)) > budget:
        return 0
    while high - low > 1:
        middle = (low + high) // 2
        fits = middle >= 2 and _needed(dataclasses.replace(config, batch_size=middle)) <= budget
        low, high = (middle, high) if fits else (low, middle)
    return low


def check_memory(config: BenchConfig, batch_name: str = "mi-bench: `batch_size`",
                 steps_name: str = "mi-bench: `steps_per_level`",
                 available: int | None = None) -> None:
    """Refuse, before any training, a benchmark whose estimated peak (the largest :func:`step_memory` plus the
    traces) exceeds :data:`~contrastkit.memory.MEMORY_FRACTION` of the available memory (``available``; default
    :func:`contrastkit.memory.available_memory`): a one-line :class:`~contrastkit.memory.NotEnoughMemoryError`
    naming the batch size (``batch_name``, e.g. ``"--batch-size"``) or the steps, and the largest batch that fits."""
    available = memory.available_memory() if available is None else available
    if available is None:
        return
    step = max(step_memory(config, name) for name in config.estimators)
    traces = _trace_memory(config)
    if step + traces <= MEMORY_FRACTION * available:
        return
    if step >= traces:
        worst = max(config.estimators, key=lambda name: step_memory(config, name))
        b = config.batch_size
        if worst == "club":
            what = f"one training step of club at {b:,} pairs"
        else:
            pairs = f"{b:,} x {b:,}" + (" x hidden activations" if config.critic == "concat" else " score matrices")
            what = f"one training step of {worst} ({config.critic} critic: {pairs})"
        largest = _largest_batch(config, MEMORY_FRACTION * available)
        hint = f"the largest batch that fits is about {largest:,}" if largest else ""
        check_fits(step + traces, f"{batch_name} {b}", what, hint=hint, setting="batch_size",
                   available=available)
    else:
        steps = len(config.levels) * config.steps_per_level
        check_fits(step + traces, f"{steps_name} {config.steps_per_level}",
                   f"the per-step traces of {len(config.estimators)} estimator(s) over {steps:,} steps",
                   hint="choose fewer steps per level", setting="steps_per_level", available=available)


def run_estimator(name: str, config: BenchConfig, stop: SignalStop | None = None) -> EstimatorRun:
    """Train one estimator through the staircase; the same seed gives the same batches to every estimator.

    Refused first, in one line, when the settings would not fit in memory (:func:`check_memory`). With ``stop``
    (entered), a signal it records ends the training after the current step with ``KeyboardInterrupt``."""
    if name not in ESTIMATORS:
        raise ValueError(f"mi-bench: unknown estimator {name!r}; expected one of {list(ESTIMATORS)}")
    check_memory(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        return _train(name, config, stop)
    finally:
        torch.set_num_threads(threads)


def _train(name: str, config: BenchConfig, stop: SignalStop | None) -> EstimatorRun:
    torch.manual_seed(config.seed)
    model = _build(name, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr_for(name))
    generator = torch.Generator().manual_seed(config.seed)
    run = EstimatorRun(name, config)
    start = time.perf_counter()
    for mi in config.levels:
        rho = rho_for_mi(mi, config.dim)
        for step in range(config.steps_per_level):
            if stop is not None and stop.requested:
                raise KeyboardInterrupt(stop.reason)
            for group in optimizer.param_groups:
                group["lr"] = level_lr(config, name, step)
            x, y = sample_correlated_gaussians(config.batch_size, rho, config.dim, generator)  # (B, d) each
            optimizer.zero_grad(set_to_none=True)
            if isinstance(model, CLUB):
                loss = model.learning_loss(x, y)  # fit q(y|x) by maximum likelihood
                with torch.no_grad():
                    estimate = model.upper_bound(x, y)
            else:
                estimate = model(x, y)
                loss = -estimate
            value = float(estimate.detach())
            if not math.isfinite(value) or not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"mi-bench: the {name} estimate became {value} at step "
                                         f"{len(run.estimates)} (true MI {mi:g} nats); try a smaller learning rate")
            loss.backward()
            optimizer.step()
            run.estimates.append(value)
            run.true_mi.append(mi)
    run.seconds = time.perf_counter() - start
    return run


def run_benchmark(config: BenchConfig) -> dict[str, EstimatorRun]:
    """Every estimator of ``config`` through the staircase, in the order given (the memory of all of them is
    checked before the first one trains)."""
    check_memory(config)
    return {name: run_estimator(name, config) for name in config.estimators}


def int_from_text(text: str, name: str, low: int, high: int | None = None, high_text: str | None = None) -> int:
    """An integer flag's value: integer text, or an integral number like ``1e3`` (as ``contrastkit train`` reads
    settings), in [``low``, ``high``] (``high`` None: no upper bound); else a one-line ValueError naming the flag
    ``name``."""
    accepted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high_text or f'{high:,}'}"
    value: int | float | None = None
    for convert in (int, float):
        try:
            value = convert(text.strip())
            break
        except ValueError:
            continue
    if isinstance(value, float):
        value = int(value) if math.isfinite(value) and value == int(value) else None
    if value is None:
        raise ValueError(f"{name}: must be {accepted}, got {text!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name}: must be {accepted}, got {text!r}")
    return value


def plot_formats() -> tuple[str, ...]:
    """The file extensions matplotlib can save a figure as (``png``, ``pdf``, ``svg``, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def _check_writable(path: Path, name: str) -> None:
    """``path`` can be created or replaced: not a folder, and its nearest existing folder accepts new files."""
    shown = f"{name} '{path}'"
    if path.is_dir():
        raise IsADirectoryError(f"{shown} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{shown} exists and cannot be written")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"{shown} cannot be created: '{folder}' is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{shown} cannot be created: the folder '{folder}' is not writable")


def check_output_paths(json_path: str | Path, png_path: str | Path | None, json_name: str = "json_path",
                       png_name: str = "png_path") -> None:
    """Check, before minutes of training, that the results can be written: each path a writable file name (not
    a folder; its folder writable or creatable), the plot's extension one that matplotlib writes
    (:func:`plot_formats`), and not the same file for both; one-line OSError / ValueError naming the flag."""
    json_path = Path(json_path)
    _check_writable(json_path, json_name)
    if png_path is None:
        return
    png_path = Path(png_path)
    formats = plot_formats()
    suffix = png_path.suffix.lower().removeprefix(".")
    if suffix not in formats:
        found = f"the extension '.{suffix}'" if suffix else "no extension"
        raise ValueError(f"{png_name} '{png_path}' has {found}; the plot is written as one of "
                         f"{', '.join('.' + f for f in formats)}")
    if json_path.resolve() == png_path.resolve():
        raise ValueError(f"{json_name} and {png_name} are the same file '{json_path}'; the plot would replace the "
                         f"results")
    _check_writable(png_path, png_name)


def results_json(runs: dict[str, EstimatorRun]) -> dict[str, dict[str, float]]:
    """``{estimator: {true_mi: final_estimate}}`` with true-MI keys like ``"2"`` (the level's tail mean)."""
    return {name: run.level_means() for name, run in runs.items()}


def format_table(runs: dict[str, EstimatorRun]) -> str:
    """Rows: true MI; columns: each estimator's tail mean +- standard deviation; then seconds per estimator."""
    names = list(runs)
    if not names:
        return ""
    config = runs[names[0]].config
    width = 17
    head = f"{'true MI':>8} | " + " | ".join(f"{name:>{width}}" for name in names)
    lines = [head, "-" * len(head)]
    means = {name: run.level_means() for name, run in runs.items()}
    stds = {name: run.level_stds() for name, run in runs.items()}
    for mi in config.levels:
        key = _level_key(mi)
        cells = [f"{means[n][key]:8.3f} +- {stds[n][key]:5.3f}" for n in names]
        lines.append(f"{mi:8.2f} | " + " | ".join(f"{c:>{width}}" for c in cells))
    lines.append(f"{'seconds':>8} | " + " | ".join(f"{runs[n].seconds:>{width}.1f}" for n in names))
    rates = ", ".join(f"{n} {config.lr_for(n):g}" for n in names)
    schedule = (f"Adam lr {rates}, each level cosine to {config.final_lr_fraction:g}x"
                if config.lr_schedule == "cosine" else f"Adam lr {rates}, constant")
    critic = f"{config.critic} + linear skip" if config.critic == "separable" and config.linear_skip \
        else config.critic
    lines.append(f"(mean +- std of the per-batch estimate over the last {config.tail_steps} of "
                 f"{config.steps_per_level} steps per level; batch {config.batch_size}, log(batch) = "
                 f"{math.log(config.batch_size):.3f}; critic {critic}; {schedule})")
    return "\n".join(lines)


def _smooth(values: Sequence[float], alpha: float) -> list[float]:
    out, current = [], values[0]
    for v in values:
        current = alpha * v + (1 - alpha) * current
        out.append(current)
    return out


def plot_runs(runs: dict[str, EstimatorRun], path: str | Path) -> Path:
    """PNG: one panel per estimator, per-batch estimates (light), their moving average, the true-MI staircase
    and the log(batch) line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    names = list(runs)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False, sharey=False)
    for ax, name in zip(axes[0], names, strict=True):
        run = runs[name]
        config = run.config
        steps = range(len(run.estimates))
        ax.plot(steps, run.estimates, color="tab:blue", alpha=0.25, linewidth=0.5, label="per batch")
        ax.plot(steps, _smooth(run.estimates, 0.01), color="tab:blue", linewidth=1.2, label="moving average")
        ax.plot(steps, run.true_mi, color="black", linewidth=1.2, label="true MI")
        ax.axhline(math.log(config.batch_size), color="tab:red", linestyle="--", linewidth=1.0,
                   label=f"log(batch) = {math.log(config.batch_size):.2f}")
        top = max(max(config.levels) + 2.0, float(torch.tensor(run.estimates).quantile(0.99)) + 1.0)
        ax.set_ylim(-2.0, top)
        critic = "Gaussian q(y|x)" if name == "club" else f"{config.critic} critic"
        ax.set_title(f"{name} ({critic})")
        ax.set_xlabel("training step")
        ax.set_ylabel("MI estimate (nats)")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
