"""Loss benchmark (CPU, forward + backward, median of repeats, every number measured in this run).

1. ``nt_xent`` direct and memory-efficient at 2N in {1,024; 4,096} (``--full``: also 16,384), d = 128, against
   its floor:
   the three matrix products it cannot avoid (z z^T forward; G z and G^T z backward) timed alone.
   The memory-efficient rows pass an explicit ``block_size`` (the "block" column) below 2N, so they really
   run blockwise: the library's default block (about 128 MiB of scores, ``default_block_size``) is >= 2N up
   to 2N = 4,096, where ``memory_efficient=True`` silently takes the direct path.
2. ``nt_xent`` against PyTorch Metric Learning's ``NTXentLoss`` at 2N = 256 (``--full``: also 1,024, where PML
   takes about a minute and 17 GiB).
3. ``--full`` only: memory-efficient ``nt_xent`` at 2N = 65,536, d = 128: seconds and peak memory (minutes).
4. semi-hard triplet mining + loss vs PML, and ``triplet_categories`` at N = 4,096 (benchmarks/triplet_bench.py).

Each case runs in a fresh process (peak memory = growth of the peak RSS over the case's baseline). The
defaults take about a minute and a half on the project's 2-core machine; ``--full`` adds the large cases
(over 5 minutes).
Usage: python benchmarks/losses.py [--quick | --full] [--repeats 5] [--skip-triplet]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import in_child, measure, print_table

DIM = 128
TEMPERATURE = 0.5


def _child(case: dict) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    n2 = case["n2"]
    z = torch.randn(n2, DIM, generator=g)
    if case["impl"] == "floor":
        grad = torch.randn(n2, n2, generator=g)

        def run() -> None:
            _ = z @ z.T
            _ = grad @ z
            _ = grad.T @ z

        return measure(run, None, case["repeats"])
    if case["impl"] == "pml":
        from pytorch_metric_learning.losses import NTXentLoss

        loss_fn = NTXentLoss(temperature=TEMPERATURE)

        def run(m: int = n2) -> float:
            e = z[:m].clone().requires_grad_(True)
            loss = loss_fn(e, torch.arange(m // 2).repeat(2))
            loss.backward()
            return loss.item()
    else:
        from contrastkit.losses import nt_xent

        efficient = case["impl"] == "memory-efficient"
        block = case.get("block")

        def run(m: int = n2) -> float:
            e = z[:m].clone().requires_grad_(True)
            # the warm-up slice (m = 64) runs direct when block >= m; the timed calls run blockwise
            loss = nt_xent(e[: m // 2], e[m // 2:], TEMPERATURE, memory_efficient=efficient, block_size=block)
            loss.backward()
            return loss.item()

    # warm up on a 64-row slice so lazy initialisation stays out of the peak-memory baseline
    return measure(run, lambda: run(64), case["repeats"])


def efficient_block(n2: int) -> int:
    """Rows per block of the memory-efficient rows: the library's default, but at most 2N / 4 so that the case
    is blockwise at every size (the default alone is >= 2N up to 2N = 4,096 and would run the direct path)."""
    from contrastkit.losses.temperature import default_block_size

    return min(default_block_size(n2), n2 // 4)


def nt_xent_rows(sizes: list[int], pml_sizes: list[int], repeats: int, big: int | None) -> list[dict]:
    script = Path(__file__)
    rows = []
    for n2 in sizes:
        floor = in_child(script, {"impl": "floor", "n2": n2, "repeats": repeats})
        for impl in ("direct", "memory-efficient"):
            case = {"impl": impl, "n2": n2, "repeats": repeats}
            if impl == "memory-efficient":
                case["block"] = efficient_block(n2)
            r = in_child(script, case)
            r["ratio"] = r.get("seconds", float("nan")) / floor["seconds"]
            r["vs"] = f"floor {floor['seconds']:.4g} s"
            rows.append(r)
    for n2 in pml_sizes:
        ours = in_child(script, {"impl": "direct", "n2": n2, "repeats": repeats})
        theirs = in_child(script, {"impl": "pml", "n2": n2, "repeats": 1})
        theirs["ratio"] = theirs.get("seconds", float("nan")) / ours["seconds"]
        theirs["vs"] = f"ours {ours['seconds']:.4g} s"
        rows += [ours, theirs]
    if big:
        rows.append(in_child(script, {"impl": "memory-efficient", "n2": big, "repeats": 1,
                                      "block": efficient_block(big)}))
    for r in rows:
        r["case"] = f"nt_xent {r['impl']}" if r["impl"] != "pml" else "PML NTXentLoss"
        r["size"] = f"2N={r['n2']:,}"
        r["block"] = None if r["impl"] == "pml" else f"{r['block']:,} rows" if r.get("block") else "direct"
    return rows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    size.add_argument("--full", action="store_true", help="add 2N = 16,384, PML at 2N = 1,024 and 2N = 65,536")
    parser.add_argument("--skip-triplet", action="store_true")
    args = parser.parse_args()
    sizes = [256, 1024] if args.quick else [1024, 4096, 16384] if args.full else [1024, 4096]
    pml_sizes = [256, 1024] if args.full else [256]
    big = 65536 if args.full else None
    rows = nt_xent_rows(sizes, pml_sizes, args.repeats, big)
    columns = [("case", "case"), ("size", "size"), ("block", "block"), ("seconds", "seconds"), ("peak_mib", "peak MiB"),
               ("ratio", "ratio"), ("vs", "against"), ("error", "error")]
    print("NT-Xent, d = 128, forward + backward, CPU; ratio = ours / floor, or PML / ours")
    print_table(rows, columns)
    if not args.skip_triplet:
        import triplet_bench

        print()
        sizes = (256,) if args.quick else (256, 1024)
        repeats = args.repeats if args.full else min(args.repeats, 3)  # PML takes seconds per call at N = 1,024
        triplet_bench.print_table(triplet_bench.rows(sizes, 1024 if args.quick else 4096, 1, repeats), 1)


if __name__ == "__main__":
    main()
