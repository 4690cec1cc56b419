"""Train the understanding model from every training/nlu/data/corpus_*.jsonl.

Reproducible: fixed seeds, deterministic held-out split by a hash of the text (~15 %, never
trained on, written to training/nlu/data/heldout.jsonl). Out-of-fold predictions on the training
split calibrate each head (temperature scaling) and tune the `unclear` and negative thresholds.
The result is exported as a numpy-only artefact (see streams.nlu.model).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from schemas.vocabulary import QUEUES
from streams.nlu.features import analyze
from streams.nlu.model import MODEL_DIR, Head, LinearBundle
from training.nlu.augment import augment

# The corpora and eval sets: beside the training code, outside the installed package.
DATA_DIR = Path(__file__).resolve().parent / "data"
CATEGORIES = QUEUES  # the five categories and "unclear", the model's labels
INTENTS = (
    "nav_return",
    "product_info",
    "fees",
    "purchase",
    "redemption_howto",
    "redemption_arrival",
    "sip",
    "dividend",
    "card_binding",
    "password_reset",
    "identity_verification",
    "contact_change",
    "account_open_close",
    "risk_assessment",
    "login_failure",
    "app_malfunction",
    "transaction_failure",
    "complaint_service",
    "complaint_returns",
    "complaint_other",
    "suggestion",
    "human_request",
    "greeting_other",
)
HELDOUT_PERCENT = 15
N_AUG = 4
SEED = 20241123
MISROUTE_COST = 2.0  # a wrong automatic category costs twice what an `unclear` (human triage) does
# Real customers' text on which the negative threshold is chosen (issue 14): real customers show
# frustration with fewer words than our corpora, so the threshold that is best on our own
# out-of-fold predictions flags too few of them. Both real dev sets, pooled: two labellers and
# two kinds of customer (consumer credit; bank, deposit and fund), so the choice suits neither
# one alone. Never a frozen test set, which chooses nothing.
CALIBRATION_FILES = (Path("real") / "atec_dev.jsonl", Path("real") / "web_dev.jsonl")

_KEY = re.compile(r"[\s\W_]+", re.UNICODE)


def split_key(text: str) -> str:
    return _KEY.sub("", text).lower()


def is_heldout(text: str) -> bool:
    h = hashlib.md5(split_key(text).encode("utf-8")).hexdigest()
    return int(h[:8], 16) % 100 < HELDOUT_PERCENT


def _bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "y", "是", "t")
    return bool(v)


def eval_keys(data_dir: Path = DATA_DIR) -> set[str]:
    """Keys of every line of the real-text eval sets (data/real/), which training never sees."""
    keys: set[str] = set()
    for path in sorted((data_dir / "real").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                keys.add(split_key(str(json.loads(line).get("text", ""))))
    return keys


def load_corpus(data_dir: Path = DATA_DIR) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rows: list[dict[str, Any]] = []
    per_file: dict[str, int] = {}
    # A corpus line that equals an eval line is dropped: the eval sets stay unseen.
    seen: set[str] = eval_keys(data_dir)
    for path in sorted(data_dir.glob("corpus_*.jsonl")):
        n = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            text = str(r.get("text", "")).strip()
            cat = r.get("category")
            intent = r.get("intent")
            if not text or cat not in CATEGORIES or intent not in INTENTS:
                continue
            k = split_key(text) or text
            if k in seen:
                continue
            seen.add(k)
            rows.append(
                {
                    "text": text,
                    "category": cat,
                    "intent": intent,
                    "negative": _bool(r.get("negative", False)),
                    "anger": _bool(r.get("anger", False)),
                    "anxiety": _bool(r.get("anxiety", False)),
                    "source": path.name,
                }
            )
            n += 1
        per_file[path.name] = n
    return rows, per_file


def _fit_temperature(logits: np.ndarray, y: np.ndarray, kind: str) -> float:
    best, best_t = float("inf"), 1.0
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 61)):
        z = logits / t
        if kind == "sigmoid":
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            p = np.clip(p, 1e-7, 1 - 1e-7)
            nll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        else:
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            nll = -np.mean(logp[np.arange(len(y)), y])
        if nll < best:
            best, best_t = float(nll), float(t)
    return best_t


def _expand(rows: list[dict[str, Any]], n_aug: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    texts: list[str] = []
    src: list[int] = []
    for i, r in enumerate(rows):
        texts.append(r["text"])
        src.append(i)
        variants = {r["text"]}
        for _ in range(n_aug):
            v = augment(r["text"], rng, negative=r["negative"])
            if v not in variants:
                variants.add(v)
                texts.append(v)
                src.append(i)
    return texts, src


def _heads_targets(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {
        "category": np.array([CATEGORIES.index(r["category"]) for r in rows]),
        "intent": np.array([INTENTS.index(r["intent"]) for r in rows]),
        "negative": np.array([int(r["negative"]) for r in rows]),
        "anger": np.array([int(r["anger"]) for r in rows]),
        "anxiety": np.array([int(r["anxiety"]) for r in rows]),
    }


def _fit_all(X: Any, targets: dict[str, np.ndarray], C: float) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    models: dict[str, Any] = {}
    for name, y in targets.items():
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
        clf.fit(X, y)
        models[name] = clf
    return models


def _logits(clf: Any, X: Any) -> np.ndarray:
    z = clf.decision_function(X)
    return np.asarray(z.reshape(-1, 1) if z.ndim == 1 else z)


def train(
    data_dir: Path = DATA_DIR,
    model_dir: Path = MODEL_DIR,
    C: float = 5.0,
    n_aug: int = N_AUG,
    folds: int = 5,
    log: Any = print,
) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    t0 = time.time()
    rows, per_file = load_corpus(data_dir)
    held = [r for r in rows if is_heldout(r["text"])]
    tr = [r for r in rows if not is_heldout(r["text"])]
    log(f"corpus: {len(rows)} messages from {per_file}; train {len(tr)}, held-out {len(held)}")
    with (data_dir / "heldout.jsonl").open("w", encoding="utf-8") as fh:
        for r in held:
            out = {k: r[k] for k in ("text", "category", "intent", "negative", "anger", "anxiety")}
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")

    # Out-of-fold predictions on the training split, grouped so that augmented variants of a
    # message never sit on both sides of a fold.
    order = list(range(len(tr)))
    random.Random(SEED).shuffle(order)
    fold_of = np.empty(len(tr), dtype=int)
    for pos, i in enumerate(order):
        fold_of[i] = pos % folds
    targets_all = _heads_targets(tr)
    oof: dict[str, np.ndarray] = {}
    for k in range(folds):
        fit_rows = [r for i, r in enumerate(tr) if fold_of[i] != k]
        val_idx = np.where(fold_of == k)[0]
        texts, src = _expand(fit_rows, n_aug, SEED + k)
        vec = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, min_df=2, dtype=np.float32)
        X = vec.fit_transform(texts)
        y = {n: t[src] for n, t in _heads_targets(fit_rows).items()}
        models = _fit_all(X, y, C)
        Xv = vec.transform([tr[i]["text"] for i in val_idx])
        for name, clf in models.items():
            z = _logits(clf, Xv)
            if name not in oof:
                oof[name] = np.zeros((len(tr), z.shape[1]), dtype=np.float64)
            full = np.zeros((len(val_idx), oof[name].shape[1]))
            full[:, : z.shape[1]] = z
            if name in ("category", "intent") and z.shape[1] != oof[name].shape[1]:
                raise RuntimeError("a class is missing from a training fold")
            oof[name][val_idx] = full
        log(f"  fold {k + 1}/{folds} done ({time.time() - t0:.0f}s)")

    temps: dict[str, float] = {}
    for name in ("category", "intent", "negative", "anger", "anxiety"):
        kind = "sigmoid" if name in ("negative", "anger", "anxiety") else "softmax"
        temps[name] = _fit_temperature(oof[name], targets_all[name], kind)

    # Category calibration report and the `unclear` threshold.
    z = oof["category"] / temps["category"]
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    pred = p.argmax(axis=1)
    conf = p.max(axis=1)
    ytrue = targets_all["category"]
    oof_acc = float((pred == ytrue).mean())
    best_u, threshold = -1e9, 0.5
    for t in np.linspace(0.2, 0.9, 71):
        acc = conf >= t
        u = float(((pred == ytrue) & acc).sum() - MISROUTE_COST * ((pred != ytrue) & acc).sum())
        if u > best_u:
            best_u, threshold = u, float(t)
    # Negative threshold: the one that maximises out-of-fold F1 for the negative class.
    pn = 1.0 / (1.0 + np.exp(-oof["negative"][:, 0] / temps["negative"]))
    yn = targets_all["negative"]
    best_f, neg_threshold = -1.0, 0.5
    for t in np.linspace(0.2, 0.8, 61):
        pr = pn >= t
        tp = float((pr & (yn == 1)).sum())
        f = 2 * tp / max(1.0, float(pr.sum() + (yn == 1).sum()))
        if f > best_f:
            best_f, neg_threshold = f, float(t)
    ece = _ece(conf, pred == ytrue)
    log(
        f"out-of-fold: category accuracy {oof_acc:.3f}, ECE {ece:.3f}, T={temps['category']:.2f},"
        f" unclear threshold {threshold:.2f}, negative threshold {neg_threshold:.2f}"
        f" (F1 {best_f:.3f})"
    )

    # Final model on the whole training split.
    texts, src = _expand(tr, n_aug, SEED)
    vec = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, min_df=2, dtype=np.float32)
    X = vec.fit_transform(texts)
    models = _fit_all(X, {n: t[src] for n, t in targets_all.items()}, C)
    vocab_map = vec.vocabulary_
    vocab = [""] * len(vocab_map)
    for tok, j in vocab_map.items():
        vocab[j] = tok
    cols: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    heads: list[Head] = []
    start = 0
    for name, clf in models.items():
        coef = np.asarray(clf.coef_, dtype=np.float32)
        icpt = np.asarray(clf.intercept_, dtype=np.float32)
        kind = "sigmoid" if coef.shape[0] == 1 and name != "category" else "softmax"
        labels: tuple[str, ...] = (
            CATEGORIES if name == "category" else INTENTS if name == "intent" else (name,)
        )
        labels = tuple(labels[i] for i in clf.classes_) if kind == "softmax" else labels
        cols.append(coef.T)
        biases.append(icpt)
        heads.append(Head(name, kind, start, start + coef.shape[0], labels, temps[name]))
        start += coef.shape[0]
    W = np.concatenate(cols, axis=1)
    b = np.concatenate(biases)
    allowed: dict[str, list[str]] = {}
    for (c, i), n in Counter((r["category"], r["intent"]) for r in tr).items():
        if n >= 2:
            allowed.setdefault(c, []).append(i)
    meta = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "corpus": per_file,
        "n_train": len(tr),
        "n_train_augmented": len(texts),
        "n_heldout": len(held),
        "C": C,
        "n_aug": n_aug,
        "features": len(vocab),
        "unclear_threshold": round(threshold, 3),
        "negative_threshold": round(neg_threshold, 3),
        "oof_category_accuracy": round(oof_acc, 4),
        "oof_category_ece": round(ece, 4),
        "oof_negative_f1": round(best_f, 4),
        "allowed_intents": {c: sorted(v) for c, v in allowed.items()},
    }
    cal_files = [data_dir / f for f in CALIBRATION_FILES]
    cal = _real_negative_threshold(cal_files, vec, models["negative"], temps)
    if cal is not None:
        source = " + ".join(str(f) for f in CALIBRATION_FILES)
        meta["negative_threshold_oof"] = meta["negative_threshold"]
        meta["negative_threshold"] = round(cal[0], 3)
        meta["negative_threshold_source"] = source
        log(f"negative threshold {cal[0]:.2f} on {source} (F1 there {cal[1]:.3f})")
    bundle = LinearBundle(vocab, vec.idf_.astype(np.float32), W, b, heads, meta)
    bundle.save(model_dir)
    log(
        f"saved {model_dir} ({len(vocab)} features, {W.shape[1]} outputs) in {time.time() - t0:.0f}s"
    )
    return meta


def _real_negative_threshold(
    paths: list[Path], vec: Any, clf: Any, temps: dict[str, float]
) -> tuple[float, float] | None:
    """The negative threshold that maximises negative F1 on the real-text calibration sets
    pooled, or None when none is present. Searched over the same grid as the out-of-fold one."""
    rows = [
        json.loads(x)
        for path in paths
        if path.exists()
        for x in path.read_text(encoding="utf-8").splitlines()
        if x.strip()
    ]
    texts = [str(r["text"]) for r in rows]
    y = np.array([_bool(r.get("negative", False)) for r in rows])
    if not texts or not y.any():
        return None
    z = _logits(clf, vec.transform(texts))[:, 0] / temps["negative"]
    p = 1.0 / (1.0 + np.exp(-z))
    best_f, best_t = -1.0, 0.5
    for t in np.linspace(0.2, 0.8, 61):
        pr = p >= t
        tp = float((pr & y).sum())
        f = 2 * tp / max(1.0, float(pr.sum() + y.sum()))
        if f > best_f:
            best_f, best_t = f, float(t)
    return best_t, best_f


def _ece(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    e = 0.0
    for lo in np.linspace(0, 1, bins, endpoint=False):
        m = (conf >= lo) & (conf < lo + 1.0 / bins)
        if m.any():
            e += float(m.mean()) * abs(float(correct[m].mean()) - float(conf[m].mean()))
    return e
