"""Semi-hard triplet mining + loss (forward + backward) against PyTorch Metric Learning, and the exact triplet
census of :func:`contrastkit.mining.triplet_categories` at N = 4,096, on the CPU.

Every case runs in a fresh child process (this file with ``--child``), so that its peak memory can be read
as the growth of the process's peak resident set (``ru_maxrss``) over the baseline taken after imports,
input creation and one call on a 32-sample slice (so one-time lazy initialisation is not counted;
``tracemalloc`` does not see torch's allocations). Time is the median of the repeats after one full-size
warm-up call; the warm-up counts toward the peak.

* ours: ``TripletLoss(margin, "semi-hard")`` (sorted distances + ``searchsorted``, no N^3 tensor);
* PML:  ``TripletMarginMiner(margin, type_of_triplets="semihard")`` + ``TripletMarginLoss(margin)`` with a
  non-normalising ``LpDistance`` (the same triplets and the same mean, see tests/losses/test_triplet.py).

Usage: python benchmarks/triplet_bench.py [--sizes 256 1024] [--census 4096] [--threads 1] [--repeats 3]
``rows()`` returns the same table as a list of dicts (for benchmarks/losses.py). Numbers depend on the
machine; never assert on them in tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import in_child
from _harness import measure as measure_in_process

DIM, CLASSES, MARGIN = 128, 16, 0.2


def _child(case: dict) -> dict:
    """Run one case in this (fresh) process and return seconds, peak-memory growth and the loss value."""
    import torch

    torch.set_num_threads(case["threads"])
    g = torch.Generator().manual_seed(0)
    n = case["n"]
    x = torch.randn(n, DIM, generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)

    if case["what"] == "census":
        from contrastkit.mining import triplet_categories

        def run(x: torch.Tensor, y: torch.Tensor) -> float:
            return float(triplet_categories(x, y, MARGIN).semi_hard)
    elif case["impl"] == "ours":
        from contrastkit.losses.triplet import TripletLoss

        loss_fn = TripletLoss(MARGIN, "semi-hard")

        def run(x: torch.Tensor, y: torch.Tensor) -> float:
            e = x.clone().requires_grad_(True)
            loss = loss_fn(e, y)
            loss.backward()
            return loss.item()
    else:
        from pytorch_metric_learning import distances, losses, miners

        distance = distances.LpDistance(normalize_embeddings=False)
        miner = miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard", distance=distance)
        pml_loss = losses.TripletMarginLoss(margin=MARGIN, distance=distance)

        def run(x: torch.Tensor, y: torch.Tensor) -> float:
            e = x.clone().requires_grad_(True)
            loss = pml_loss(e, y, miner(e, y))
            loss.backward()
            return loss.item()

    result = measure_in_process(lambda: run(x, y), lambda: run(x[:32], y[:32]), case["repeats"])
    return {**result, "value": run(x, y)}


def measure(what: str, impl: str, n: int, threads: int = 1, repeats: int = 3) -> dict:
    """Run one case in a fresh Python process; returns ``{"seconds", "peak_mib", "value"}``."""
    result = in_child(Path(__file__).resolve(), {"what": what, "impl": impl, "n": n, "threads": threads,
                                                   "repeats": repeats})
    if "error" in result:
        raise RuntimeError(f"benchmark case {what}/{impl}/N={n} failed: {result['error']}")
    return result


def rows(sizes: tuple[int, ...] = (256, 1024), census_n: int = 4096, threads: int = 1,
         repeats: int = 3) -> list[dict]:
    """One dict per benchmark: semi-hard fwd+bwd ours vs PML per size, then the census at ``census_n``."""
    table = []
    for n in sizes:
        ours = measure("semi-hard", "ours", n, threads, repeats)
        # PML takes seconds per call at N = 1,024: fewer repeats keep the run short.
        pml = measure("semi-hard", "pml", n, threads, max(1, repeats - 1) if n >= 1024 else repeats)
        table.append({
            "benchmark": "triplet semi-hard mine+loss fwd+bwd", "N": n,
            "ours_s": ours["seconds"], "pml_s": pml["seconds"], "speedup": pml["seconds"] / ours["seconds"],
            "ours_peak_MiB": ours["peak_mib"], "pml_peak_MiB": pml["peak_mib"],
            # RSS growth under 1 MiB is within the noise of page-granular accounting: no ratio then.
            "memory_ratio": pml["peak_mib"] / ours["peak_mib"] if ours["peak_mib"] >= 1.0 else None,
            "loss_abs_diff": abs(ours["value"] - pml["value"]),
        })
    census = measure("census", "ours", census_n, threads, repeats)
    table.append({
        "benchmark": "triplet_categories (exact census)", "N": census_n,
        "ours_s": census["seconds"], "pml_s": None, "speedup": None,
        "ours_peak_MiB": census["peak_mib"], "pml_peak_MiB": None, "memory_ratio": None, "loss_abs_diff": None,
    })
    return table


def _fmt(value: object, spec: str) -> str:
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 0
    return "-".rjust(width) if value is None else format(value, spec)


def print_table(table: list[dict], threads: int) -> None:
    print(f"CPU, {threads} thread(s), d = {DIM}, {CLASSES} classes, margin = {MARGIN}; "
          "time = median seconds, peak = RSS growth in MiB")
    header = (f"{'benchmark':38s} {'N':>5s} {'ours s':>9s} {'PML s':>9s} {'speedup':>8s} "
              f"{'ours MiB':>9s} {'PML MiB':>9s} {'mem x':>7s} {'|dloss|':>9s}")
    print(header)
    print("-" * len(header))
    for r in table:
        print(f"{r['benchmark']:38s} {r['N']:5d} {r['ours_s']:9.4f} {_fmt(r['pml_s'], '9.3f')} "
              f"{_fmt(r['speedup'], '8.1f')} {r['ours_peak_MiB']:9.1f} {_fmt(r['pml_peak_MiB'], '9.1f')} "
              f"{_fmt(r['memory_ratio'], '7.1f')} {_fmt(r['loss_abs_diff'], '9.2e')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--census", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    print_table(rows(tuple(args.sizes), args.census, args.threads, args.repeats), args.threads)


if __name__ == "__main__":
    main()
