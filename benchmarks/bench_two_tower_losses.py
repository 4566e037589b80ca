"""Two-tower loss benchmark (CPU, forward + backward, every number measured in this run).

1. ``clip_loss`` (direct and memory-efficient) and ``siglip_loss`` (chunked, checkpointed) at B pairs of
   D = 128 (default B = 4,096 and 16,384; ``--sizes`` adds e.g. 65,536), against their matrix-product floor
   measured in the same run: the B x B score product forward and its two gradient products (S = A B^T,
   dS B, dS^T A), in row blocks of at most 4,096 rows so the floor itself fits in memory at B = 65,536. The "ratio"
   column is loss time / floor time. Structural costs to read it with: CLIP runs InfoNCE twice (a -> b and
   b -> a, each its own product: 2 forward + 4 backward products, plus the recompute of every block in the
   memory-efficient mode); SigLIP's chunks are recomputed in the backward (4 products) and it takes a log-sigmoid
   of every pair in the forward, the recompute and the backward. The direct CLIP row is skipped where its two
   B x B float32 matrices would not fit in 8 GiB.
2. The ring exchange on 2 gloo processes (one thread each), global batch B = 4,096 and 16,384 (``--ring-sizes``),
   n = B / 2 pairs per process: ``siglip_loss_ring`` (the b-blocks passed round the ring, one (chunk, n) block of
   scores at a time) against the gathered form (``all_gather_with_grad`` of the b rows, then this process's
   (n, B) scores in one block) and the gathered form in the ring's chunks (chunk x B scores). "peak MiB" is the
   larger of the two processes' peaks.

Memory: the growth of the process's peak resident set (``resource.getrusage(...).ru_maxrss``) over a baseline
taken after imports, inputs and a small warm-up call, each case in a fresh process (benchmarks/_harness.py;
``tracemalloc`` does not see torch's allocations). glibc keeps freed blocks below its mmap threshold (dynamic, up
to 32 MiB) in the heap, so a case whose score blocks are that small can show a peak above its live tensors (the
ring at B = 4,096 works on 16 MiB blocks); ``MALLOC_MMAP_THRESHOLD_=1048576`` in the environment makes the peak
follow the live tensors more closely. Time: median of ``--repeats`` after one full-size warm-up call
(from B = 32,768 on: one timed call, no full-size warm-up).
The single-process cases use torch's default threads (all cores) unless ``--threads`` says otherwise.

Usage: python benchmarks/bench_two_tower_losses.py [--quick] [--sizes 4096 16384 65536] [--ring-sizes 4096 16384]
       [--repeats 3] [--skip-ring] [--threads N]
On the project's 2-core machine (shared, ``--threads 1``) the default took 7 minutes and ``--sizes 65536
--skip-ring`` 7 more (one call per case); ``--quick`` (B = 4,096, one repeat) takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import in_child, measure, peak_rss_mib, print_table

DIM = 128
FLOOR_BLOCK = 4096  # rows per block of the floor's products
DIRECT_CLIP_LIMIT = 8 * 2**30  # bytes: the direct CLIP row is run only where its two B x B matrices fit in this
BIG = 32768  # from this B on, one timed call per case (each call takes tens of seconds on 2 cores)
LOG_SCALE, SIGLIP_T, SIGLIP_BIAS = math.log(1 / 0.07), math.log(10.0), -10.0


def _clip_block(b: int) -> int:
    """Rows per block of the memory-efficient CLIP row: the library's default, but at most B / 4 so the case is
    blockwise at every size (the default alone is >= B up to B = 4,096 and would run the direct path)."""
    from contrastkit.losses.temperature import default_block_size

    return min(default_block_size(b), b // 4)


def _measure(case: dict[str, Any], run: Callable[[], Any], warm_up: Callable[[], Any] | None) -> dict[str, float]:
    """The harness's median of ``case["repeats"]`` after a full-size warm-up call; from B = 32,768 on, one timed call
    after the small warm-up only (a full-size call takes minutes there on 2 cores)."""
    if case["b"] < BIG:
        return measure(run, warm_up, case["repeats"])
    if warm_up is not None:
        warm_up()
    baseline = peak_rss_mib()
    start = time.perf_counter()
    run()
    return {"seconds": time.perf_counter() - start, "peak_mib": max(0.0, peak_rss_mib() - baseline)}


def _threads(case: dict[str, Any]) -> None:
    import torch

    if case.get("threads"):
        torch.set_num_threads(case["threads"])


def _inputs(b: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, DIM, generator=g), torch.randn(b, DIM, generator=g)


def _single_child(case: dict[str, Any]) -> dict[str, Any]:
    import torch

    from contrastkit.losses import clip_loss, siglip_loss

    _threads(case)
    a0, b0 = _inputs(case["b"])
    if case["impl"] == "floor":
        def floor() -> None:
            grad_b = torch.zeros_like(b0)
            for start in range(0, a0.shape[0], FLOOR_BLOCK):
                block = a0[start:start + FLOOR_BLOCK]
                scores = block @ b0.T  # (rows, B): the forward product; reused as the stand-in dS
                _ = scores @ b0  # dA rows
                grad_b.addmm_(scores.T, block)  # dB

        return _measure(case, floor, None)

    def run(m: int = case["b"]) -> float:
        a, b = a0[:m].clone().requires_grad_(True), b0[:m].clone().requires_grad_(True)
        if case["impl"] == "siglip":
            t, bias = (torch.tensor(v, requires_grad=True) for v in (SIGLIP_T, SIGLIP_BIAS))
            loss = siglip_loss(a, b, t, bias)
        else:
            t = torch.tensor(LOG_SCALE, requires_grad=True)
            efficient = case["impl"] == "clip memory-efficient"
            loss = clip_loss(a, b, t, memory_efficient=efficient, block_size=case.get("block") if efficient else None)
        loss.backward()
        return loss.item()

    # warm up on 64 rows so lazy initialisation stays out of the peak-memory baseline
    return _measure(case, run, lambda: run(64))


def _ring_worker(rank: int, case: dict[str, Any], folder: str) -> None:
    import torch
    import torch.distributed as dist

    from contrastkit.distributed import all_gather_with_grad
    from contrastkit.losses import siglip_loss_ring
    from contrastkit.losses.siglip import default_chunk_size, prepare_siglip, sigmoid_pair_sum
    from contrastkit.process_group import ProcessGroup

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/init", rank=rank, world_size=2)
    group = ProcessGroup(rank, 2, torch.device("cpu"))
    n = case["b"] // 2
    a_all, b_all = _inputs(case["b"])
    a0, b0 = a_all[rank * n:(rank + 1) * n], b_all[rank * n:(rank + 1) * n]

    def run(m: int = n) -> float:
        a, b = a0[:m].clone().requires_grad_(True), b0[:m].clone().requires_grad_(True)
        t, bias = (torch.tensor(v, requires_grad=True) for v in (SIGLIP_T, SIGLIP_BIAS))
        if case["impl"] == "ring":
            loss = siglip_loss_ring(a, b, t, bias, group)
        else:  # the gathered form: this process's rows against every process's b rows
            an, bn, scale, bias_value = prepare_siglip(a, b, t, bias, None, "gathered")
            all_bn = all_gather_with_grad(bn)  # (B, D)
            chunk = m if case["impl"] == "gathered" else default_chunk_size(m)
            loss = sigmoid_pair_sum(an, all_bn, scale, bias_value, positive_offset=rank * m, chunk_size=chunk,
                                    recompute=True) / m
        loss.backward()
        return loss.item()

    result = _measure(case, run, lambda: run(64))
    Path(folder, f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


def _ring_child(case: dict[str, Any]) -> dict[str, Any]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_ring_worker, args=(case, folder), nprocs=2, join=True)
        results = [json.loads(Path(folder, f"rank{r}.json").read_text()) for r in range(2)]
    return {"seconds": max(r["seconds"] for r in results), "peak_mib": max(r["peak_mib"] for r in results)}


def _progress(row: dict[str, Any]) -> dict[str, Any]:
    """Print a finished case to stderr at once (the tables come at the end), then return it."""
    took = f"{row['seconds']:.4g} s, {row['peak_mib']:.4g} MiB" if "seconds" in row else row.get("error", "?")
    print(f"  done: {row['impl']} B={row['b']:,}: {took}", file=sys.stderr, flush=True)
    return row


def single_rows(sizes: list[int], repeats: int, threads: int | None) -> list[dict[str, Any]]:
    from contrastkit.losses.siglip import default_chunk_size

    script, rows = Path(__file__), []
    for b in sizes:
        repeats_b = 1 if b >= BIG else repeats
        floor = _progress(in_child(script, {"impl": "floor", "b": b, "repeats": repeats_b, "threads": threads}))
        floor["how"] = f"3 products, {min(b, FLOOR_BLOCK):,}-row blocks"
        rows.append(floor)
        for impl in ("clip direct", "clip memory-efficient", "siglip"):
            case = {"impl": impl, "b": b, "repeats": repeats_b, "threads": threads}
            if impl == "clip direct" and 2 * 4 * b * b > DIRECT_CLIP_LIMIT:
                rows.append({**case, "how": "direct", "error": f"skipped: two {b:,} x {b:,} float32 matrices "
                                                              f"({2 * 4 * b * b / 2**30:.0f} GiB)"})
                continue
            if impl == "clip memory-efficient":
                case["block"] = _clip_block(b)
            result = _progress(in_child(script, case))
            result["ratio"] = result.get("seconds", math.nan) / floor.get("seconds", math.nan)
            chunk = default_chunk_size(b)
            result["how"] = {"clip direct": "direct",
                             "clip memory-efficient": f"{case.get('block', 0):,}-row blocks",
                             "siglip": f"{min(chunk, b):,}-row chunks" + (" (one)" if chunk >= b else "")}[impl]
            rows.append(result)
    for row in rows:
        row["size"] = f"B={row['b']:,}"
    return rows


def ring_rows(sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    from contrastkit.losses.siglip import default_chunk_size

    script, rows = Path(__file__), []
    for b in sizes:
        n = b // 2
        chunk = min(default_chunk_size(n), n)
        ring = _progress(in_child(script, {"impl": "ring", "b": b, "repeats": repeats, "ring": True}))
        ring["how"] = f"{chunk:,} x {n:,} scores at a time"
        rows.append(ring)
        for impl, how in (("gathered", f"{n:,} x {b:,} scores"),
                          ("gathered chunked", f"{min(default_chunk_size(n), n):,} x {b:,} scores at a time")):
            result = _progress(in_child(script, {"impl": impl, "b": b, "repeats": repeats, "ring": True}))
            result["how"] = how
            result["memory_vs_ring"] = result.get("peak_mib", math.nan) / max(ring.get("peak_mib", math.nan), 1e-9)
            rows.append(result)
    for row in rows:
        row["size"] = f"B={row['b']:,} (n={row['b'] // 2:,})"
    return rows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        case = json.loads(sys.argv[2])
        print(json.dumps(_ring_child(case) if case.get("ring") else _single_child(case)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="B = 4,096 only, one repeat (a smoke run)")
    parser.add_argument("--sizes", type=int, nargs="+", help="single-process batch sizes B (default 4096 16384)")
    parser.add_argument("--ring-sizes", type=int, nargs="+", help="global batch sizes of the ring table (even; "
                                                                  "default 4096 16384)")
    parser.add_argument("--repeats", type=int, help="timed calls per case (default 3; 1 with --quick)")
    parser.add_argument("--skip-ring", action="store_true", help="no 2-process table")
    parser.add_argument("--threads", type=int, help="torch threads of the one-process cases (default: torch's)")
    args = parser.parse_args()
    sizes = args.sizes or ([4096] if args.quick else [4096, 16384])
    ring_sizes = args.ring_sizes or ([4096] if args.quick else [4096, 16384])
    repeats = args.repeats or (1 if args.quick else 3)
    bad = [s for s in sizes + ring_sizes if s < 128] + [s for s in ring_sizes if s % 2]
    if bad or repeats < 1:
        parser.error(f"sizes must be >= 128 (ring sizes even) and --repeats >= 1, got {bad or repeats}")
    threads = f"{args.threads} thread(s)" if args.threads else "torch's default threads"
    print(f"CLIP and SigLIP losses, D = {DIM}, float32, forward + backward, one process ({threads}); "
          f"ratio = loss / floor")
    print_table(single_rows(sizes, repeats, args.threads), [("impl", "case"), ("size", "size"), ("how", "how"),
                                              ("seconds", "seconds"), ("peak_mib", "peak MiB"), ("ratio", "ratio"),
                                              ("error", "error")])
    if not args.skip_ring:
        print()
        print(f"SigLIP on 2 gloo processes (1 thread each), D = {DIM}: per-process peak memory, ring vs gathered")
        print_table(ring_rows(ring_sizes, repeats), [("impl", "case"), ("size", "global batch"), ("how", "how"),
                                                     ("seconds", "seconds"), ("peak_mib", "peak MiB"),
                                                     ("memory_vs_ring", "memory / ring"), ("error", "error")])


if __name__ == "__main__":
    main()
