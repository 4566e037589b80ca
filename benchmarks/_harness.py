"""Shared benchmark plumbing: run a case in a fresh child process, report median seconds and peak memory.

A case runs in its own process so its peak memory is the growth of the process's peak resident set
(``ru_maxrss``) over a baseline taken after imports, input creation and a small warm-up call
(``tracemalloc`` does not see torch's allocations). Time is the median of the repeats after one
full-size warm-up call.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # ru_maxrss: KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def measure(run: Callable[[], Any], warm_up: Callable[[], Any] | None, repeats: int) -> dict[str, float]:
    """Median seconds of ``run`` over ``repeats`` (after a full warm-up) and its peak-memory growth."""
    if warm_up is not None:
        warm_up()
    baseline = peak_rss_mib()
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peak_mib": max(0.0, peak_rss_mib() - baseline)}


def in_child(script: Path, case: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    """Run ``script --child '<case json>'`` in a fresh interpreter; it prints one JSON line as its result."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, str(script), "--child", json.dumps(case)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {**case, "error": " | ".join(tail) or f"exit code {done.returncode}"}
    return {**case, **json.loads(done.stdout.strip().splitlines()[-1])}


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Print ``rows`` as an aligned text table; ``columns`` are (key, header) pairs."""
    cells = [[h for _, h in columns]]
    for row in rows:
        cells.append([_fmt(row.get(k)) for k, _ in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for i, r in enumerate(cells):
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
