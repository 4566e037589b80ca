"""Loss benchmark (CPU, forward + backward, median of repeats, every number measured in this run).

1. ``nt_xent`` direct and memory-efficient at 2N in {1,024; 4,096; 16,384}, d = 128, against its floor:
   the three matrix products it cannot avoid (z z^T forward; G z and G^T z backward) timed alone.
2. ``nt_xent`` against PyTorch Metric Learning's ``NTXentLoss`` at 2N in {256; 1,024}.
3. memory-efficient ``nt_xent`` at 2N = 65,536, d = 128: seconds and peak memory.
4. semi-hard triplet mining + loss vs PML, and ``triplet_categories`` at N = 4,096 (benchmarks/triplet_bench.py).

Each case runs in a fresh process (peak memory = growth of the peak RSS over the case's baseline).
Usage: python benchmarks/losses.py [--quick] [--repeats 3] [--skip-triplet] [--skip-65536]
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

        def run(m: int = n2) -> float:
            e = z[:m].clone().requires_grad_(True)
            loss = nt_xent(e[: m // 2], e[m // 2:], TEMPERATURE, memory_efficient=efficient)
            loss.backward()
            return loss.item()

    # warm up on a 64-row slice so lazy initialisation stays out of the peak-memory baseline
    return measure(run, lambda: run(64), case["repeats"])


def nt_xent_rows(sizes: list[int], pml_sizes: list[int], repeats: int, big: int | None) -> list[dict]:
    script = Path(__file__)
    rows = []
    for n2 in sizes:
        floor = in_child(script, {"impl": "floor", "n2": n2, "repeats": repeats})
        for impl in ("direct", "memory-efficient"):
            r = in_child(script, {"impl": impl, "n2": n2, "repeats": repeats})
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
        rows.append(in_child(script, {"impl": "memory-efficient", "n2": big, "repeats": 1}))
    for r in rows:
        r["case"] = f"nt_xent {r['impl']}" if r["impl"] != "pml" else "PML NTXentLoss"
        r["size"] = f"2N={r['n2']:,}"
    return rows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--skip-triplet", action="store_true")
    parser.add_argument("--skip-65536", action="store_true")
    args = parser.parse_args()
    sizes = [256, 1024] if args.quick else [1024, 4096, 16384]
    pml_sizes = [256] if args.quick else [256, 1024]
    big = None if (args.quick or args.skip_65536) else 65536
    rows = nt_xent_rows(sizes, pml_sizes, args.repeats, big)
    columns = [("case", "case"), ("size", "size"), ("seconds", "seconds"), ("peak_mib", "peak MiB"),
               ("ratio", "ratio"), ("vs", "against"), ("error", "error")]
    print("NT-Xent, d = 128, forward + backward, CPU; ratio = ours / floor, or PML / ours")
    print_table(rows, columns)
    if not args.skip_triplet:
        import triplet_bench

        print()
        sizes = (256,) if args.quick else (256, 1024)
        triplet_bench.print_table(triplet_bench.rows(sizes, 1024 if args.quick else 4096, 1, args.repeats), 1)


if __name__ == "__main__":
    main()
