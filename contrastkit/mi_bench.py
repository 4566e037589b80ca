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
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from contrastkit.mi import CLUB, CRITICS, InfoNCEEstimator, NWJEstimator, make_critic

__all__ = [
    "ESTIMATORS",
    "LEARNING_RATES",
    "LEVELS",
    "LR_SCHEDULES",
    "BenchConfig",
    "EstimatorRun",
    "format_table",
    "gaussian_mi",
    "level_lr",
    "plot_runs",
    "results_json",
    "rho_for_mi",
    "run_benchmark",
    "run_estimator",
    "sample_correlated_gaussians",
]

#: estimator names the benchmark knows
ESTIMATORS = ("infonce", "nwj", "club")
#: the true MI of each level of the staircase, in nats (Poole et al. 2019)
LEVELS = (2.0, 4.0, 6.0, 8.0, 10.0)
#: learning-rate schedules within a level (see :func:`level_lr`)
LR_SCHEDULES = ("cosine", "constant")
#: Adam's rate at the start of each level for each estimator when ``BenchConfig.lr`` is None
LEARNING_RATES = {"infonce": 2e-3, "nwj": 5e-4, "club": 5e-4}


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


def run_estimator(name: str, config: BenchConfig) -> EstimatorRun:
    """Train one estimator through the staircase; the same seed gives the same batches to every estimator."""
    if name not in ESTIMATORS:
        raise ValueError(f"mi-bench: unknown estimator {name!r}; expected one of {list(ESTIMATORS)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        return _train(name, config)
    finally:
        torch.set_num_threads(threads)


def _train(name: str, config: BenchConfig) -> EstimatorRun:
    torch.manual_seed(config.seed)
    model = _build(name, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr_for(name))
    generator = torch.Generator().manual_seed(config.seed)
    run = EstimatorRun(name, config)
    start = time.perf_counter()
    for mi in config.levels:
        rho = rho_for_mi(mi, config.dim)
        for step in range(config.steps_per_level):
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
    """Every estimator of ``config`` through the staircase, in the order given."""
    return {name: run_estimator(name, config) for name in config.estimators}


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
