"""Time of the CPC phone probe (contrastkit.evaluate.sequence_probes.phone_probe) on random frames.

The case the module docstring quotes: 500 utterances x 100 frames of 256 random features, 40 classes, so 50,000
labelled train frames of which the default 20,000 are fitted, scored on 5,000 test frames (measured about 1 s on
the project's 2-core CPU). A timing, so a benchmark and not a test.

Usage: python benchmarks/phone_probe.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from contrastkit.evaluate.sequence_probes import phone_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train = rng.normal(size=(500, 100, 256)).astype(np.float32)
    labels = rng.integers(0, 40, size=(500, 100))
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = phone_probe(train, labels, train[:50], labels[:50])
        seconds.append(time.perf_counter() - start)
    print(f"phone probe, 50,000 x 256 random frames (fitted on {out['train_frames']:,}, scored on "
          f"{out['test_frames']:,}): median {statistics.median(seconds):.2f} s of {args.repeats} "
          f"(accuracy {out['accuracy']:.3f}, chance {out['chance']:.3f})")


if __name__ == "__main__":
    main()
