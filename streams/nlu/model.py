"""The trained linear model as a compact, numpy-only artefact.

Files in streams/nlu/model/:
- ``nlu.npz``: ``idf`` (F,) float32, ``W`` (F, K) float16 stacked weights of every head,
  ``b`` (K,) float32;
- ``nlu.json``: vocabulary (feature string per row of W), heads (name, kind, column range,
  labels, temperature), thresholds, training metadata.

One TF-IDF representation feeds every head (category, intent, negative, anger, anxiety), so a
message is featurised once and scored with a single gather-and-sum over W.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streams.nlu.features import analyze

MODEL_DIR = Path(__file__).resolve().parent / "model"
# 1 + log(tf), the sublinear term frequency, for the counts a message can have.
_SUBLINEAR = [0.0] + [1.0 + math.log(c) for c in range(1, 256)]


def _tf(c: int) -> float:
    return _SUBLINEAR[c] if c < 256 else 1.0 + math.log(c)


@dataclass(frozen=True)
class Head:
    name: str
    kind: str  # "softmax" | "sigmoid"
    start: int
    end: int
    labels: tuple[str, ...]
    temperature: float


class LinearBundle:
    def __init__(
        self,
        vocab: list[str],
        idf: np.ndarray,
        W: np.ndarray,
        b: np.ndarray,
        heads: list[Head],
        meta: dict[str, Any],
    ) -> None:
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.vocab_list = vocab
        self.idf = idf.astype(np.float32)
        self.W = W.astype(np.float32)
        self.b = b.astype(np.float32)
        self.heads = {h.name: h for h in heads}
        self.meta = meta

    # -- persistence -------------------------------------------------------------------
    def save(self, directory: Path = MODEL_DIR) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            directory / "nlu.npz", idf=self.idf, W=self.W.astype(np.float16), b=self.b
        )
        doc = {
            "format": 1,
            "heads": [h.__dict__ | {"labels": list(h.labels)} for h in self.heads.values()],
            "meta": self.meta,
            "vocab": self.vocab_list,
        }
        (directory / "nlu.json").write_text(
            json.dumps(doc, ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path = MODEL_DIR) -> LinearBundle:
        doc = json.loads((directory / "nlu.json").read_text(encoding="utf-8"))
        with np.load(directory / "nlu.npz") as z:
            idf, W, b = z["idf"], z["W"], z["b"]
        heads = [
            Head(h["name"], h["kind"], h["start"], h["end"], tuple(h["labels"]), h["temperature"])
            for h in doc["heads"]
        ]
        return cls(doc["vocab"], idf, W, b, heads, doc["meta"])

    # -- inference ---------------------------------------------------------------------
    def logits_batch(self, texts: list[str]) -> np.ndarray:
        """Raw scores (N, K) for every head's columns (TF-IDF, sublinear tf, L2, then W)."""
        get = self.vocab.get
        idx: list[int] = []
        tf: list[int] = []
        lengths: list[int] = []
        for t in texts:
            n0 = len(idx)
            for tok, c in Counter(analyze(t)).items():
                j = get(tok)
                if j is not None:
                    idx.append(j)
                    tf.append(c)
            lengths.append(len(idx) - n0)
        out = np.tile(self.b, (len(texts), 1))
        if not idx:
            return out
        all_idx = np.asarray(idx, dtype=np.int64)
        vals = (1.0 + np.log(np.asarray(tf, dtype=np.float32))) * self.idf[all_idx]
        lens = np.asarray(lengths)
        nonempty = np.flatnonzero(lens)
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))[nonempty]
        norms = np.sqrt(np.add.reduceat(vals * vals, starts))
        vals /= np.repeat(norms, lens[nonempty])
        contrib = self.W[all_idx] * vals[:, None]
        out[nonempty] += np.add.reduceat(contrib, starts, axis=0)
        return out

    def logits_one(self, text: str) -> np.ndarray:
        """Raw scores (K,) of one message; the same arithmetic as :meth:`logits_batch`.

        One message at a time is the latency path of the pipeline; list comprehensions, a
        table for 1 + log(tf) and ``take`` keep the per-call overhead of numpy small.
        """
        get = self.vocab.get
        counts = Counter(analyze(text))
        js = [get(t) for t in counts]
        idx = [j for j in js if j is not None]
        if not idx:
            return self.b.copy()
        tfs = [_tf(c) for c, j in zip(counts.values(), js, strict=True) if j is not None]
        ia = np.array(idx, dtype=np.intp)
        vals = np.array(tfs, dtype=np.float32) * self.idf.take(ia)
        vals /= math.sqrt(float(vals @ vals))
        return np.asarray(vals @ self.W.take(ia, axis=0) + self.b)

    def probs(self, logits: np.ndarray, head: str) -> np.ndarray:
        """Calibrated probabilities of one head: (N, n_labels) softmax or (N,) sigmoid."""
        h = self.heads[head]
        z = logits[:, h.start : h.end] / h.temperature
        if h.kind == "sigmoid":
            return np.asarray(1.0 / (1.0 + np.exp(-z[:, 0])))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))
