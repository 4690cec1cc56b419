"""Train and evaluate the NLU model: ``python -m training.nlu.cli train|eval ...``.

`make model` and `make eval` call this; `omnirouter train|eval` delegates here when run from a
checkout (the installed package carries no training code).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def train_main(argv: list[str]) -> int:
    from streams.nlu.model import MODEL_DIR
    from training.nlu.train import DATA_DIR, N_AUG, train

    p = argparse.ArgumentParser(prog="omnirouter train", description="train the NLU model")
    p.add_argument("--data", type=Path, default=DATA_DIR, help="folder with corpus_*.jsonl")
    p.add_argument("--out", type=Path, default=MODEL_DIR, help="artefact folder")
    p.add_argument("--C", type=float, default=5.0, help="inverse regularisation strength")
    p.add_argument("--aug", type=int, default=N_AUG, help="augmented variants per message")
    a = p.parse_args(argv)
    train(a.data, a.out, C=a.C, n_aug=a.aug, log=lambda m: print(m, file=sys.stderr))
    return 0


def eval_main(argv: list[str]) -> int:
    from training.nlu.evaluate import evaluate, format_report

    p = argparse.ArgumentParser(prog="omnirouter eval", description="evaluate the NLU model")
    p.add_argument("file", type=Path, help="JSONL with text, category, negative")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--threshold", type=float, default=None, help="override the unclear threshold")
    a = p.parse_args(argv)
    if not a.file.exists():
        print(f"no such file: {a.file}", file=sys.stderr)
        return 2
    r = evaluate(a.file, threshold=a.threshold)
    if a.json:
        print(json.dumps(r, ensure_ascii=False))
    else:
        print(format_report(r))
    return 0


if __name__ == "__main__":  # python -m training.nlu.cli train|eval ...
    cmd, *rest = sys.argv[1:] or ["eval"]
    sys.exit(train_main(rest) if cmd == "train" else eval_main(rest))
