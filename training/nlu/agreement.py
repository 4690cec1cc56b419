"""How far a second labeller agrees with the first, beside how far the model does.

``python -m training.nlu.agreement``: for every real dev set with a second labelling in
data/agreement/ (same ids, labelled blind by the same guide, training/nlu/LABELLING.md), prints
the second labeller's figures against the first (the ceiling a model can be measured to), and
the model's against each; then the same on the lines the second labeller marked "sure".
Issue 14 asks for macro-F1 0.90: this says whether the labels themselves would allow it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from streams.nlu.understand import Understanding
from training.nlu.evaluate import metrics, parse_category, parse_negative
from training.nlu.train import DATA_DIR


def _rows(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def _figures(gold: list[str], pred: list[str], ng: list[bool], np_: list[bool]) -> dict[str, Any]:
    m = metrics(gold, pred, list(ng), np_)
    return {k: m[k] for k in ("n", "accuracy", "macro_f1", "negative_f1")}


def agreement(data_dir: Path = DATA_DIR) -> dict[str, Any]:
    u = Understanding.load()
    out: dict[str, Any] = {}
    for second in sorted((data_dir / "agreement").glob("*_b.jsonl")):
        first = data_dir / "real" / (second.name.removesuffix("_b.jsonl") + ".jsonl")
        a, b = _rows(first), _rows(second)
        if [r["id"] for r in a] != [r["id"] for r in b]:
            raise SystemExit(f"{second}: ids differ from {first}")
        ca = [parse_category(r["category"]) or "" for r in a]
        cb = [parse_category(r["category"]) or "" for r in b]
        na = [bool(parse_negative(r["negative"])) for r in a]
        nb = [bool(parse_negative(r["negative"])) for r in b]
        analyses = u.analyze_batch([str(r["text"]) for r in a])
        cm = [x.top_category for x in analyses]
        nm = [x.sentiment == "negative" for x in analyses]
        sure = [i for i, r in enumerate(b) if r.get("confidence") == "sure"]

        def on(idx: list[int], xs: list[Any]) -> list[Any]:
            return [xs[i] for i in idx]

        out[first.name] = {
            "second_vs_first": _figures(ca, cb, na, nb),
            "model_vs_first": _figures(ca, cm, na, nm),
            "model_vs_second": _figures(cb, cm, nb, nm),
            "sure_lines": {
                "second_vs_first": _figures(on(sure, ca), on(sure, cb), on(sure, na), on(sure, nb)),
                "model_vs_first": _figures(on(sure, ca), on(sure, cm), on(sure, na), on(sure, nm)),
            },
        }
    return out


if __name__ == "__main__":
    json.dump(agreement(), sys.stdout, ensure_ascii=False, indent=1)
    print()
    sys.exit(0)
