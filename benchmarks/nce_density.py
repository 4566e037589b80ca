"""NCE as density estimation: the learned log-normaliser and the parameters against the noise ratio K.

Survey section E.4 / Gutmann & Hyvärinen (2010, 2012): an unnormalised model
log p_m(u) = log phi(u; theta) + c is fitted by noise-contrastive estimation with K noise samples per data
sample (:func:`contrastkit.nce_density.fit_nce`: the paper's setting, one fixed noise sample, full-batch
L-BFGS, float64). Reported per (model, noise, K), mean +- std over the seeds:

* ``c_err``     |c - (-log Z(theta_hat))| -- the learned log-normaliser against the true one of the fitted model;
* ``c_err*``    |c - (-log Z(theta*))|    -- against the normaliser of the true parameters;
* ``param_err`` RMS error of the parameter vector (Gaussian: mean and covariance's lower triangle; mixture:
  normalised weights, means, stds, components sorted by mean).

Models: a 2-D Gaussian (correlated) and a 1-D two-component Gaussian mixture. Noise: ``matched`` -- a
Gaussian with the data's true mean and covariance (for the Gaussian model, the data density itself);
``poor`` -- a Gaussian shifted by 2 std and 3x wider per coordinate. Each seed draws its own data
(N samples) and noise; the same data serve every K and both noises (paired comparison).

Usage: python benchmarks/nce_density.py [--seeds 20] [--num-data 1000] [--ks 1 5 25] [--json OUT]
Numbers depend on the seeds, not the machine; the run time depends on the machine. Never assert on them in
tests (tests/test_nce_density.py checks the estimator itself).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.distributions import Distribution, MultivariateNormal

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import print_table

from contrastkit.nce_density import UnnormalisedGaussian, UnnormalisedGaussianMixture, fit_nce

F64 = torch.float64
# 2-D Gaussian
G_MEAN = torch.tensor([1.0, -1.0], dtype=F64)
G_COV = torch.tensor([[1.0, 0.5], [0.5, 0.8]], dtype=F64)
# 1-D mixture: normalised weights, means, stds
M_WEIGHTS = torch.tensor([0.3, 0.7], dtype=F64)
M_MEANS = torch.tensor([-2.0, 1.0], dtype=F64)
M_STDS = torch.tensor([0.5, 0.8], dtype=F64)
SHIFT_STDS, WIDTH = 2.0, 3.0  # the poorly matched noise: mean + 2 std, std x 3


def true_gaussian() -> UnnormalisedGaussian:
    return UnnormalisedGaussian(2).set_moments(G_MEAN, G_COV)


def true_mixture() -> UnnormalisedGaussianMixture:
    model = UnnormalisedGaussianMixture(2, 1)
    with torch.no_grad():
        model.means.copy_(M_MEANS[:, None])
        model.log_stds.copy_(M_STDS.log()[:, None])
        model.logits.copy_((M_WEIGHTS / M_STDS).log())  # pi_j s_j proportional to w_j
    return model


def sample_data(case: str, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(10_000 + seed)
    if case == "gaussian-2d":
        chol = torch.linalg.cholesky(G_COV)
        return G_MEAN + torch.randn(n, 2, generator=g, dtype=F64) @ chol.T  # (n, 2)
    comp = torch.multinomial(M_WEIGHTS, n, replacement=True, generator=g)  # (n,)
    return (M_MEANS[comp] + M_STDS[comp] * torch.randn(n, generator=g, dtype=F64))[:, None]  # (n, 1)


def data_moments(case: str) -> tuple[torch.Tensor, torch.Tensor]:
    if case == "gaussian-2d":
        return G_MEAN, G_COV
    mean = (M_WEIGHTS * M_MEANS).sum()
    var = (M_WEIGHTS * (M_STDS**2 + M_MEANS**2)).sum() - mean**2
    return mean[None], var[None, None]


def noise_for(case: str, which: str) -> Distribution:
    mean, cov = data_moments(case)
    if which == "matched":
        return MultivariateNormal(mean, cov)
    std = cov.diagonal().sqrt()
    return MultivariateNormal(mean + SHIFT_STDS * std, WIDTH**2 * cov)


def fit_one(case: str, which: str, k: int, seed: int, n: int) -> dict[str, float]:
    data = sample_data(case, n, seed)
    if case == "gaussian-2d":
        model, truth = UnnormalisedGaussian(2), true_gaussian()
    else:
        model, truth = UnnormalisedGaussianMixture(2, 1).init_from_data(data), true_mixture()
    fit = fit_nce(model, data, noise_for(case, which), k, seed=seed)
    diff = model.parameters_vector() - truth.parameters_vector()
    with torch.no_grad():
        neg_log_z_true = -float(truth.log_normaliser())
    return {"c_err": fit.c_error, "c_err_true": abs(fit.log_c - neg_log_z_true),
            "param_err": float(diff.pow(2).mean().sqrt()), "evaluations": fit.evaluations}


def run(seeds: int, n: int, ks: list[int]) -> list[dict[str, Any]]:
    rows = []
    for case in ("gaussian-2d", "mixture-1d"):
        for which in ("matched", "poor"):
            for k in ks:
                fits = [fit_one(case, which, k, seed, n) for seed in range(seeds)]
                row: dict[str, Any] = {"model": case, "noise": which, "K": k}
                for key in ("c_err", "c_err_true", "param_err"):
                    values = [f[key] for f in fits]
                    row[key] = statistics.mean(values)
                    row[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
                    row[key + "_per_seed"] = values
                rows.append(row)
        if case == "gaussian-2d":  # the K -> infinity limit: maximum likelihood (sample mean, 1/N covariance)
            errors = []
            for seed in range(seeds):
                data = sample_data(case, n, seed)
                rows_, cols_ = torch.tril_indices(2, 2)
                cov = torch.cov(data.T, correction=0)
                fitted = torch.cat([data.mean(0), cov[rows_, cols_]])
                errors.append(float((fitted - true_gaussian().parameters_vector()).pow(2).mean().sqrt()))
            rows.append({"model": case, "noise": "(MLE)", "K": None, "param_err": statistics.mean(errors),
                         "param_err_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
                         "param_err_per_seed": errors})
    return rows


def ratios(rows: list[dict[str, Any]], ks: list[int]) -> list[dict[str, Any]]:
    """Per (model, K): poor / matched error; per (model, noise): error at the smallest K / at the largest."""
    at = {(r["model"], r["noise"], r["K"]): r for r in rows}
    out = []
    for case in ("gaussian-2d", "mixture-1d"):
        for k in ks:
            poor, matched = at[(case, "poor", k)], at[(case, "matched", k)]
            out.append({"model": case, "what": f"poor/matched at K={k}",
                        "c_err": poor["c_err"] / matched["c_err"], "c_err_diff": poor["c_err"] - matched["c_err"],
                        "param_err": poor["param_err"] / matched["param_err"],
                        "param_err_diff": poor["param_err"] - matched["param_err"]})
        for which in ("matched", "poor"):
            lo, hi = at[(case, which, ks[0])], at[(case, which, ks[-1])]
            out.append({"model": case, "what": f"{which}: K={ks[0]} / K={ks[-1]}",
                        "c_err": lo["c_err"] / hi["c_err"], "param_err": lo["param_err"] / hi["param_err"]})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--num-data", type=int, default=1000)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 25])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the table and ratios here")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.num_data < 1 or min(args.ks) < 1:
        parser.error("--seeds, --num-data and every --ks value must be >= 1")
    ks = sorted(set(args.ks))
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    rows = run(args.seeds, args.num_data, ks)
    seconds = time.perf_counter() - start
    shown = [{**r, **{key: f"{r[key]:.4f} ± {r[key + '_std']:.4f}" for key in ("c_err", "c_err_true", "param_err")
                       if key in r}} for r in rows]
    print(f"NCE density estimation: N = {args.num_data} data samples, {args.seeds} seeds, mean ± std over seeds\n")
    print_table(shown, [("model", "model"), ("noise", "noise"), ("K", "K"), ("c_err", "|c + log Z(θ̂)|"),
                        ("c_err_true", "|c + log Z(θ*)|"), ("param_err", "param RMS err")])
    print()
    ratio_rows = ratios(rows, ks)
    print_table(ratio_rows, [("model", "model"), ("what", "ratio"), ("c_err", "|c + log Z(θ̂)|"),
                             ("c_err_diff", "(difference)"), ("param_err", "param RMS err"),
                             ("param_err_diff", "(difference)")])
    print(f"\n{len(ks) * 4 * args.seeds} fits in {seconds:.1f} s ({args.threads} thread(s))")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"num_data": args.num_data, "seeds": args.seeds, "ks": ks,
                                         "noise_poor": {"shift_stds": SHIFT_STDS, "width": WIDTH},
                                         "rows": rows, "ratios": ratio_rows, "seconds": seconds}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
