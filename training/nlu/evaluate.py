"""`omnirouter eval FILE.jsonl`: the model against the design document's keyword baseline.

Input lines: {"text", "category", "negative"?}; category is our key or the design document's
name (产品咨询类 …). Lines whose category is neither (or `unclear`) are skipped and counted; lines
without `negative` are left out of the negative-class figure only.

Category figures use the model's argmax over the five real categories (an eval set has no
`unclear` label, so abstaining could only count as wrong); the figures with the `unclear`
threshold applied are reported alongside (`with_threshold`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from streams.nlu.understand import CATEGORIES, Understanding
from training.nlu import baseline

_TRUE = {"1", "true", "yes", "y", "t", "是", "对", "负面", "消极", "negative", "neg"}
_FALSE = {
    "0",
    "false",
    "no",
    "n",
    "f",
    "否",
    "不是",
    "非负面",
    "neutral",
    "positive",
    "none",
    "",
    "中性",
    "正面",
    "积极",
}


def parse_negative(v: Any) -> bool | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return bool(v)
    s = str(v).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    return None


def parse_category(v: Any) -> str | None:
    if not isinstance(v, str):
        return None
    s = v.strip()
    if s in CATEGORIES:
        return s
    if s.lower() in CATEGORIES:
        return s.lower()
    if s in baseline.DESIGN_NAMES:
        return baseline.DESIGN_NAMES[s]
    for name, key in baseline.DESIGN_NAMES.items():  # 产品咨询 without 类, etc.
        if s and (s in name or name.startswith(s)):
            return key
    # Looser spellings a hand-made eval file may use: 投诉建议类, 技术故障, 账户类, "Product
    # inquiry", "tech"... decided by the first cue found.
    low = s.lower()
    for cues, key in _LOOSE:
        if any(c in low for c in cues):
            return key
    return None


_LOOSE: tuple[tuple[tuple[str, ...], str], ...] = (
    (("投诉", "建议", "complain", "suggest"), "complaint"),
    (("技术", "故障", "tech"), "technical"),
    (("账户", "帐户", "账号", "account"), "account"),
    (("交易", "操作", "transact", "trade"), "transaction"),
    (("产品", "咨询", "product"), "product"),
)


def load_eval(path: Path | str) -> tuple[list[str], list[str], list[bool | None], int]:
    texts: list[str] = []
    gold: list[str] = []
    neg: list[bool | None] = []
    skipped = 0
    for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if not isinstance(r, dict):
            skipped += 1
            continue
        cat = parse_category(r.get("category"))
        text = r.get("text")
        if cat is None or not isinstance(text, str):
            skipped += 1
            continue
        texts.append(text)
        gold.append(cat)
        # `negative` is the flag; a file that carries a `sentiment` label instead is read from it.
        neg.append(parse_negative(r.get("negative", r.get("sentiment"))))
    return texts, gold, neg, skipped


def metrics(
    gold: list[str],
    pred: list[str],
    neg_gold: list[bool | None],
    neg_pred: list[bool],
    labels: tuple[str, ...] = CATEGORIES,
) -> dict[str, Any]:
    n = len(gold)
    cols = [*labels, "unclear"] if "unclear" in pred else list(labels)
    confusion = {g: dict.fromkeys(cols, 0) for g in labels}
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p if p in cols else "unclear"] += 1
    per_class: dict[str, dict[str, float]] = {}
    f1s: list[float] = []
    for c in labels:
        tp = confusion[c][c]
        fp = sum(confusion[g][c] for g in labels if g != c)
        fn = sum(v for k, v in confusion[c].items() if k != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[c] = {
            "precision": round(prec, 4),
            "recall": round(rec, 4),
            "f1": round(f1, 4),
            "support": tp + fn,
        }
        if tp + fn:
            f1s.append(f1)
    acc = sum(g == p for g, p in zip(gold, pred, strict=True)) / n if n else 0.0
    pairs = [(g, p) for g, p in zip(neg_gold, neg_pred, strict=True) if g is not None]
    neg_f1: float | None = None
    if pairs:
        tp = sum(1 for g, p in pairs if g and p)
        fp = sum(1 for g, p in pairs if not g and p)
        fn = sum(1 for g, p in pairs if g and not p)
        neg_f1 = round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else 1.0
    return {
        "n": n,
        "accuracy": round(acc, 4),
        "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else 0.0,
        "negative_f1": neg_f1,
        "negative_n": len(pairs),
        "per_class": per_class,
        "confusion": confusion,
    }


def evaluate(path: Path | str, threshold: float | None = None) -> dict[str, Any]:
    texts, gold, neg, skipped = load_eval(path)
    u = Understanding.load()
    if threshold is not None:
        u = Understanding(u.bundle, threshold=threshold)
    u.analyze_batch(texts[:8])  # warm-up (jieba dictionary, caches)
    t0 = time.perf_counter()
    analyses = u.analyze_batch(texts)
    dt = time.perf_counter() - t0
    neg_pred = [a.sentiment == "negative" for a in analyses]
    result = metrics(gold, [a.top_category for a in analyses], neg, neg_pred)
    result["messages_per_s"] = round(len(texts) / dt, 1) if dt > 0 else None
    result["prediction"] = "argmax over the five categories"
    thr = metrics(gold, [a.category for a in analyses], neg, neg_pred)
    unclear = sum(1 for a in analyses if a.category == "unclear")
    result["with_threshold"] = {
        "threshold": u.threshold,
        "unclear": unclear,
        "accuracy": thr["accuracy"],
        "macro_f1": thr["macro_f1"],
        "accuracy_on_confident": round(
            sum(a.category == g for a, g in zip(analyses, gold, strict=True))
            / max(1, len(texts) - unclear),
            4,
        ),
        "per_class": thr["per_class"],
    }
    t0 = time.perf_counter()
    base_pred = [baseline.classify(t) for t in texts]
    bdt = time.perf_counter() - t0
    # The keyword sketch has no sentiment: it counts a message as negative when it files it under
    # 投诉与建议类.
    base = metrics(gold, base_pred, neg, [p == "complaint" for p in base_pred])
    base["messages_per_s"] = round(len(texts) / bdt, 1) if bdt > 0 else None
    result["baseline"] = base
    result["skipped"] = skipped
    result["file"] = str(path)
    return result


def format_report(r: dict[str, Any]) -> str:
    b = r["baseline"]
    lines = [
        f"eval {r['file']}: {r['n']} messages ({r['skipped']} skipped), negative labelled on "
        f"{r['negative_n']}",
        "category = argmax over the five categories (no `unclear` in eval labels)",
        "",
        f"{'':24}{'model':>10}{'baseline':>10}",
        f"{'accuracy':24}{r['accuracy']:>10.4f}{b['accuracy']:>10.4f}",
        f"{'macro-F1':24}{r['macro_f1']:>10.4f}{b['macro_f1']:>10.4f}",
        f"{'negative-class F1':24}{_f(r['negative_f1']):>10}{_f(b['negative_f1']):>10}",
        f"{'messages/s':24}{r['messages_per_s']:>10.0f}{b['messages_per_s']:>10.0f}",
        "",
        f"{'per class':14}{'model P':>9}{'R':>7}{'F1':>7}   {'base P':>7}{'R':>7}{'F1':>7}{'n':>6}",
    ]
    for c, m in r["per_class"].items():
        bm = b["per_class"][c]
        lines.append(
            f"{c:14}{m['precision']:>9.3f}{m['recall']:>7.3f}{m['f1']:>7.3f}   "
            f"{bm['precision']:>7.3f}{bm['recall']:>7.3f}{bm['f1']:>7.3f}{m['support']:>6}"
        )
    for title, conf in (("model", r["confusion"]), ("baseline", b["confusion"])):
        cols = list(next(iter(conf.values())).keys())
        lines += ["", f"confusion ({title}; rows gold, columns predicted)"]
        lines.append(f"{'':14}" + "".join(f"{c[:11]:>12}" for c in cols))
        for g, row in conf.items():
            lines.append(f"{g:14}" + "".join(f"{row[c]:>12}" for c in cols))
    w = r["with_threshold"]
    lines += [
        "",
        f"with the unclear threshold {w['threshold']:.2f}: {w['unclear']} unclear, accuracy "
        f"{w['accuracy']:.4f} (unclear counted wrong), macro-F1 {w['macro_f1']:.4f}, accuracy on "
        f"the confident ones {w['accuracy_on_confident']:.4f}",
    ]
    return "\n".join(lines)


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"
