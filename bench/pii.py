"""PII masking cost per character: schemas.pii.find_pii (no cap) and mask (what every log
field goes through, capped at MASK_SCAN_CHARS) on ordinary and hostile text.

    .venv/bin/python bench/pii.py [--repeat 5] [--json]

Inputs at 1k, 10k and 100k characters: a customer's message with numbers and an address in
it, repeated to length; a run of letters (what made the old email pattern quadratic); a
digit run; a run of "a@"; letters with spaces and dots. Best of `repeat` runs, in ns per
input character. Linear cost shows as a flat ns/char across the sizes; mask() falls with
the size because it scans only MASK_SCAN_CHARS of each value.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchinfo import machine  # bench/ is sys.path[0] when a benchmark runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas import pii

SIZES = (1_000, 10_000, 100_000)
MESSAGE = (
    "您好，我叫李雷，想赎回融通领先成长混合A（161606）5000元，手机13812345678，"
    "香港电话 +852 9123 4567，邮箱 li.lei@example.com，卡号6222 0212 3456 7890 128。"
)
INPUTS: dict[str, Callable[[int], str]] = {
    "message": lambda n: (MESSAGE * (n // len(MESSAGE) + 1))[:n],
    "letters": lambda n: "a" * n,
    "digits": lambda n: "1" * n,
    "a@ run": lambda n: ("a@" * n)[:n],
    "words.dots": lambda n: ("abc.def ghi-" * n)[:n],
}


def ns_per_char(fn: Callable[[str], object], text: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn(text)
        best = min(best, time.perf_counter_ns() - t0)
    return best / len(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for name, make in INPUTS.items():
        for n in SIZES:
            text = make(n)
            rows.append(
                {
                    "input": name,
                    "chars": n,
                    "find_pii_ns_per_char": round(
                        ns_per_char(lambda t: pii.find_pii(t, names=True), text, args.repeat), 1
                    ),
                    "mask_ns_per_char": round(ns_per_char(pii.mask, text, args.repeat), 1),
                }
            )
    if args.json:
        print(json.dumps({"machine": machine(), "cap": pii.MASK_SCAN_CHARS, "rows": rows}))
        return
    print(f"machine: {machine()}")
    print(f"mask() scans at most {pii.MASK_SCAN_CHARS} chars per value")
    print(f"{'input':<12} {'chars':>8} {'find_pii ns/char':>17} {'mask ns/char':>13}")
    for r in rows:
        print(
            f"{r['input']:<12} {r['chars']:>8} {r['find_pii_ns_per_char']:>17} "
            f"{r['mask_ns_per_char']:>13}"
        )


if __name__ == "__main__":
    main()
