"""Throughput of the NLU fast path on one core: batch and one-by-one.

    .venv/bin/python bench/nlu.py [--n 20000]

Pins itself to one CPU when the OS allows it, loads the committed artefact, and runs the
held-out messages (repeated) through Understanding.analyze_batch and .analyze.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from benchinfo import cpu_model  # bench/ is sys.path[0] when a benchmark runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--file", type=Path, default=None, help="JSONL with `text` (default held-out)")
    p.add_argument("--single", type=int, default=10000, help="messages for the one-by-one run")
    a = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    from streams.nlu import Understanding
    from training.nlu.baseline import classify

    data = a.file or Path(__file__).resolve().parent.parent / "training/nlu/data/heldout.jsonl"
    base = [json.loads(x)["text"] for x in data.read_text(encoding="utf-8").splitlines() if x]
    texts = (base * (a.n // len(base) + 1))[: a.n]
    t0 = time.perf_counter()
    u = Understanding.load()
    u.analyze_batch(texts[:64])
    load_s = time.perf_counter() - t0

    # Wall-clock and CPU-time rates: on a shared machine the CPU-time figure is what one
    # dedicated core would do; the wall-clock one includes time stolen by other processes.
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), a.batch):
        u.analyze_batch(texts[i : i + a.batch])
    batch_rate = len(texts) / (time.perf_counter() - t0)
    batch_cpu = len(texts) / (time.process_time() - c0)

    m = min(len(texts), a.single)
    t0, c0 = time.perf_counter(), time.process_time()
    for t in texts[:m]:
        u.analyze(t)
    single_rate = m / (time.perf_counter() - t0)
    single_cpu = m / (time.process_time() - c0)

    t0 = time.perf_counter()
    for t in texts:
        classify(t)
    base_rate = len(texts) / (time.perf_counter() - t0)

    avg_len = sum(map(len, texts)) / len(texts)
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores (pinned to 1), "
        f"python {platform.python_version()}"
    )
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average (1 min) at the end: {load1:.2f} (other processes share the cores)")
    print(f"messages: {len(texts)} ({data.name} repeated, mean {avg_len:.0f} chars)")
    print(f"load + warm-up: {load_s:.2f} s")
    print(
        f"analyze_batch (batch {a.batch}): {batch_rate:,.0f} messages/s wall, "
        f"{batch_cpu:,.0f}/s per CPU-second"
    )
    print(
        f"analyze one by one:        {single_rate:,.0f} messages/s wall, "
        f"{single_cpu:,.0f}/s per CPU-second"
    )
    print(f"keyword baseline:          {base_rate:,.0f} messages/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
