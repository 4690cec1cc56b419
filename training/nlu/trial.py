"""Measure a change to the training data before paying for `make model`.

``python -m training.nlu.trial [--without corpus_x] [--with FILE ... [--take N]] [--dev FILE ...]``
trains only the category and negative heads the way `train.py` does (the same corpora, split,
augmentation, features and C; no calibration) and prints, for each dev file, category
macro-F1 and negative-class F1 at a grid of thresholds. Every round of issue 14 measured its
variants this way; before this module each round rebuilt the harness by hand.

``--with`` takes a corpus file or an eval-format one (training/nlu/data/pools/: real text that
may be measured with but never shipped; docs/model-card.md's learning curve).

Never pass a frozen set (``*_frozen.jsonl``) as ``--dev``: frozen sets choose nothing, and the
harness refuses them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from schemas.vocabulary import CATEGORIES
from training.nlu.evaluate import metrics, parse_category, parse_negative
from training.nlu.train import CATEGORIES as LABELS  # the five and `unclear`, the model's
from training.nlu.train import (
    DATA_DIR,
    N_AUG,
    SEED,
    _expand,
    _fit_all,
    _heads_targets,
    _logits,
    eval_keys,
    is_heldout,
    load_corpus,
    split_key,
)

THRESHOLDS = (0.2, 0.25, 0.3, 0.4, 0.5, 0.6)
DEFAULT_DEV = (
    DATA_DIR / "real" / "atec_dev.jsonl",
    DATA_DIR / "real" / "web_dev.jsonl",
    DATA_DIR / "realistic_eval.jsonl",
    DATA_DIR / "heldout.jsonl",
)


# An eval-format file (design-document category names, no intent) used as extra training text
# gets one generic intent per category: the harness measures the category and negative heads only.
_GENERIC_INTENT = {
    "product": "product_info",
    "transaction": "purchase",
    "account": "account_open_close",
    "complaint": "complaint_other",
    "technical": "app_malfunction",
}


def as_corpus_rows(path: Path, take: int | None = None) -> list[dict[str, Any]]:
    """Lines of a corpus- or eval-format file as training rows, shuffled with a fixed seed and
    cut to ``take`` when given."""
    rows: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        cat = parse_category(r.get("category"))
        if cat not in _GENERIC_INTENT:
            continue
        rows.append(
            {
                "text": str(r["text"]),
                "category": cat,
                "intent": r.get("intent") or _GENERIC_INTENT[cat],
                "negative": bool(parse_negative(r.get("negative"))),
                "anger": bool(r.get("anger", False)),
                "anxiety": bool(r.get("anxiety", False)),
                "source": path.name,
            }
        )
    random.Random(1).shuffle(rows)
    return rows[:take] if take is not None else rows


def read_set(path: Path) -> tuple[list[str], list[str | None], list[bool | None]]:
    texts: list[str] = []
    cats: list[str | None] = []
    negs: list[bool | None] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        texts.append(str(r.get("text", "")))
        cats.append(parse_category(r.get("category")))
        negs.append(parse_negative(r.get("negative")))
    return texts, cats, negs


def macro_f1(gold: list[str], pred: list[str]) -> float:
    """The eval report's macro-F1 (training/nlu/evaluate.py), for the five categories."""
    return float(metrics(gold, pred, [None] * len(gold), [False] * len(gold))["macro_f1"])


def binary_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    tp = float((gold & pred).sum())
    return 2 * tp / max(1.0, float(gold.sum() + pred.sum()))


def measure(
    rows: list[dict[str, Any]], devs: list[Path], C: float, n_aug: int, seed: int = SEED
) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from streams.nlu.features import analyze

    tr = [r for r in rows if not is_heldout(r["text"])]
    texts, src = _expand(tr, n_aug, seed)
    vec = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, min_df=2, dtype=np.float32)
    X = vec.fit_transform(texts)
    targets = _heads_targets(tr)
    models = _fit_all(X, {k: targets[k][src] for k in ("category", "negative")}, C)
    cat_clf, neg_clf = models["category"], models["negative"]
    labels = [LABELS[i] for i in cat_clf.classes_]
    out: dict[str, Any] = {"n_train": len(tr), "features": len(vec.vocabulary_)}
    pooled: dict[str, list[Any]] = {"gold": [], "pred": [], "yn": [], "pn": []}
    for path in devs:
        dev_texts, cats, negs = read_set(path)
        Xd = vec.transform(dev_texts)
        z = _logits(cat_clf, Xd)
        real = [j for j, lab in enumerate(labels) if lab in CATEGORIES]
        pred = [labels[real[int(k)]] for k in z[:, real].argmax(axis=1)]
        scored = [(g, p) for g, p in zip(cats, pred, strict=True) if g in CATEGORIES]
        gold_c = [g for g, _ in scored]
        pred_c = [p for _, p in scored]
        pn = 1.0 / (1.0 + np.exp(-_logits(neg_clf, Xd)[:, 0]))
        keep = np.array([n is not None for n in negs])
        yn = np.array([bool(n) for n in negs])[keep]
        neg_f1 = {f"{t:g}": round(binary_f1(yn, pn[keep] >= t), 3) for t in THRESHOLDS}
        if path.parent.name == "real":
            pooled["gold"] += gold_c
            pooled["pred"] += pred_c
            pooled["yn"].append(yn)
            pooled["pn"].append(pn[keep])
        out[path.name] = {
            "n": len(scored),
            "accuracy": round(float(np.mean([g == p for g, p in scored])), 3),
            "macro_f1": round(macro_f1(gold_c, pred_c), 3),
            "negative_f1": neg_f1,
        }
    if pooled["yn"]:
        # The real dev sets together: two labellers, two kinds of customer; what a threshold
        # is chosen on (train.py's CALIBRATION_FILES).
        yn_all, pn_all = np.concatenate(pooled["yn"]), np.concatenate(pooled["pn"])
        out["real_dev_pooled"] = {
            "n": len(pooled["gold"]),
            "macro_f1": round(macro_f1(pooled["gold"], pooled["pred"]), 3),
            "negative_f1": {f"{t:g}": round(binary_f1(yn_all, pn_all >= t), 3) for t in THRESHOLDS},
        }
    return out


def averaged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of several runs' figures, with each figure's min-max spread beside it."""
    out: dict[str, Any] = {"n_train": runs[0]["n_train"], "seeds": len(runs)}
    for name, first in runs[0].items():
        if not isinstance(first, dict):
            continue
        per = [r[name] for r in runs]
        macro = [p["macro_f1"] for p in per]
        neg = {t: [p["negative_f1"][t] for p in per] for t in first["negative_f1"]}
        out[name] = {
            "n": first["n"],
            "macro_f1": round(float(np.mean(macro)), 3),
            "macro_f1_spread": [min(macro), max(macro)],
            "negative_f1": {t: round(float(np.mean(v)), 3) for t, v in neg.items()},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.nlu.trial", description=__doc__)
    p.add_argument("--without", action="append", default=[], help="corpus file name to leave out")
    p.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        type=Path,
        help="an extra corpus file (same format as corpus_*.jsonl)",
    )
    p.add_argument(
        "--take",
        type=int,
        default=None,
        help="only the first N lines of each --with file after a seeded shuffle (a learning curve)",
    )
    p.add_argument("--dev", action="append", type=Path, default=None, help="a dev set to report")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="average over N augmentation seeds (the spread is"
        " reported): one changed line reshuffles every later line's augmentation",
    )
    p.add_argument("--C", type=float, default=5.0)
    p.add_argument("--aug", type=int, default=N_AUG)
    a = p.parse_args(argv)
    devs = a.dev or [d for d in DEFAULT_DEV if d.exists()]
    frozen = [d for d in devs if "frozen" in d.name]
    if frozen:
        print(f"refused: {frozen[0]} is frozen and chooses nothing", file=sys.stderr)
        return 2
    t0 = time.time()
    rows, _ = load_corpus(DATA_DIR)
    rows = [r for r in rows if r["source"] not in set(a.without)]
    if a.extra:
        seen = {split_key(r["text"]) for r in rows} | eval_keys(DATA_DIR)
        for f in a.extra:
            extra = as_corpus_rows(f, a.take)
            rows += [r for r in extra if split_key(r["text"]) not in seen]
            seen |= {split_key(r["text"]) for r in extra}
    runs = [measure(rows, devs, a.C, a.aug, SEED + k) for k in range(a.seeds)]
    result = runs[0] if a.seeds == 1 else averaged(runs)
    result["seconds"] = round(time.time() - t0, 1)
    result["corpora"] = sorted({r["source"] for r in rows})
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
