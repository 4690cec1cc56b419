"""The understanding stage: category, intent, sentiment and entities of a customer message."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from schemas.vocabulary import CATEGORIES
from streams.nlu import sentiment as senti
from streams.nlu.boundaries import names_failure
from streams.nlu.entities import extract
from streams.nlu.features import to_simplified
from streams.nlu.model import MODEL_DIR, LinearBundle

ALSO_MIN = 0.2  # a second category this likely is listed in `also`

# Topic cues for complaints: what the complaint is about, for the agent (`also`).
_TOPIC_CUES: dict[str, tuple[str, ...]] = {
    "transaction": (
        "赎回",
        "到账",
        "到帐",
        "申购",
        "买入",
        "卖出",
        "定投",
        "扣款",
        "撤单",
        "转换",
        "分红方式",
        "取现",
        "转出",
        "份额",
        "手续费",
        "扣钱",
        "扣了",
        "银行卡",
        "绑卡",
        "退款",
    ),
    "product": ("净值", "收益", "亏", "跌", "基金经理", "业绩", "分红", "费率", "管理费", "回撤"),
    "account": (
        "密码",
        "实名",
        "身份证",
        "手机号",
        "开户",
        "销户",
        "风险测评",
        "测评",
        "冻结",
        "个人信息",
    ),
    "technical": (
        "登录",
        "登陆",
        "登不",
        "闪退",
        "app",
        "系统",
        "页面",
        "验证码",
        "打不开",
        "卡死",
        "网站",
        "官网",
        "崩",
        "人脸",
        "刷脸",
        "报错",
        "bug",
    ),
}
_HUMAN = re.compile(
    r"转人工|人工客服|人工服务|找人工|要人工|接人工|转接人工|^\s*人工\s*[!！。.?？]*\s*$|人工人工|真人"
    r"|活人|客服电话|打电话给我|给我回(?:个)?电话|联系我|human|real person|agent please|转接",
    re.I,
)


@dataclass(frozen=True)
class Analysis:
    category: str
    confidence: float
    scores: dict[str, float]
    also: list[str]
    intent: str
    intent_confidence: float
    sentiment: str
    sentiment_score: float
    anger: bool
    anxiety: bool
    entities: dict[str, Any]
    wants_human: bool
    top_category: str = ""  # the best of the five real categories, even when `unclear`
    negative_probability: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its recursive deep copy was a tenth of a worker's time.
        # The values are JSON types built for this analysis alone, so a shallow copy of the
        # containers is enough.
        out = {name: getattr(self, name) for name in _ANALYSIS_FIELDS}
        for name in ("scores", "entities", "extra"):
            out[name] = dict(out[name])
        out["also"] = list(out["also"])
        return out


_ANALYSIS_FIELDS = tuple(f.name for f in fields(Analysis))
_lock = threading.Lock()
_cache: dict[Path, Understanding] = {}


class Understanding:
    def __init__(self, bundle: LinearBundle, threshold: float | None = None) -> None:
        self.bundle = bundle
        meta = bundle.meta
        self.threshold = float(
            meta.get("unclear_threshold", 0.5) if threshold is None else threshold
        )
        self.negative_threshold = float(meta.get("negative_threshold", 0.5))
        self.allowed: dict[str, list[str]] = meta.get("allowed_intents", {})
        cat = bundle.heads["category"]
        self._cat_labels = list(cat.labels)
        self._real_idx = [self._cat_labels.index(c) for c in CATEGORIES if c in self._cat_labels]
        ih = bundle.heads["intent"]
        self._intent_labels = list(ih.labels)
        self._cat_slice = (cat.start, cat.end, cat.temperature)
        self._intent_slice = (ih.start, ih.end, ih.temperature)
        self._intent_mask: dict[str, np.ndarray] = {}
        for c, ints in self.allowed.items():
            m = np.zeros(len(self._intent_labels), dtype=bool)
            for i in ints:
                if i in self._intent_labels:
                    m[self._intent_labels.index(i)] = True
            self._intent_mask[c] = m

    @classmethod
    def load(cls, directory: Path | str | None = None) -> Understanding:
        d = Path(directory) if directory else MODEL_DIR
        with _lock:
            u = _cache.get(d)
            if u is None:
                u = cls(LinearBundle.load(d))
                _cache[d] = u
        return u

    def analyze(self, text: str) -> Analysis:
        """One message: the same result as ``analyze_batch([text])[0]``, without batch overhead."""
        if not isinstance(text, str):
            text = str(text)
        z = self.bundle.logits_one(text)
        pc, pi = self._softmax(z, self._cat_slice), self._softmax(z, self._intent_slice)
        sig = self._sig
        return self._one(text, pc, pi, sig(z, "negative"), sig(z, "anger"), sig(z, "anxiety"))

    def _softmax(self, z: np.ndarray, sl: tuple[int, int, float]) -> np.ndarray:
        v = z[sl[0] : sl[1]] / sl[2]
        e = np.exp(v - v.max())
        return np.asarray(e / e.sum())

    def _sig(self, z: np.ndarray, head: str) -> float:
        h = self.bundle.heads[head]
        x = float(z[h.start]) / h.temperature
        return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0

    def analyze_batch(self, texts: list[str]) -> list[Analysis]:
        if not texts:
            return []
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        b = self.bundle
        z = b.logits_batch(texts)
        pc = b.probs(z, "category")
        pi = b.probs(z, "intent")
        pn = b.probs(z, "negative")
        pa = b.probs(z, "anger")
        px = b.probs(z, "anxiety")
        out: list[Analysis] = []
        for n, text in enumerate(texts):
            out.append(self._one(text, pc[n], pi[n], float(pn[n]), float(pa[n]), float(px[n])))
        return out

    def _one(
        self, text: str, pc: np.ndarray, pi: np.ndarray, p_neg: float, p_anger: float, p_anx: float
    ) -> Analysis:
        # Six numbers: plain Python lists are cheaper than numpy calls at this size.
        pcl: list[float] = pc.tolist()
        labels = self._cat_labels
        scores = {c: round(v, 4) for c, v in zip(labels, pcl, strict=True)}
        real = [pcl[i] for i in self._real_idx]
        top = CATEGORIES[real.index(max(real))]
        confidence = max(pcl)
        raw_top = labels[pcl.index(confidence)]
        low = to_simplified(text).lower()
        # 交易失败 is 技术故障类 (the design document's list, streams/nlu/boundaries.py): a
        # transaction question that names a failure is a fault, at the model's confidence.
        failed_transaction = top == "transaction" and names_failure(low)
        if failed_transaction:
            top = raw_top = "technical"
        category = raw_top if confidence >= self.threshold else "unclear"

        wants_human = bool(_HUMAN.search(low))

        # Intent: the best intent compatible with the category (or the top real one).
        ctx = category if category != "unclear" else raw_top
        mask = self._intent_mask.get(ctx)
        pim = pi * mask if mask is not None and mask.any() else pi
        ii = int(pim.argmax())
        intent = self._intent_labels[ii]
        intent_conf = float(pi[ii] / max(float(pim.sum()), 1e-9))
        if wants_human and category == "unclear":
            intent = "human_request"
        if failed_transaction and "transaction_failure" in self._intent_labels:
            intent = "transaction_failure"
            intent_conf = float(pi[self._intent_labels.index(intent)] / max(float(pim.sum()), 1e-9))

        # Other categories the message is also about.
        also: list[str] = []
        head = category
        for v, c in sorted(zip(pcl, labels, strict=True), reverse=True):
            if c not in (head, "unclear") and v >= ALSO_MIN:
                also.append(c)
        if head == "complaint":
            for c, cues in _TOPIC_CUES.items():
                if c not in also and any(w in low for w in cues):
                    also.append(c)
            also = [c for c in also if c != "complaint"]

        negative = p_neg >= self.negative_threshold
        score = senti.sentiment_score(p_neg, senti.positive_strength(low))
        return Analysis(
            category=category,
            confidence=round(confidence, 4),
            scores=scores,
            also=also,
            intent=intent,
            intent_confidence=round(intent_conf, 4),
            sentiment=senti.label(negative, score),
            sentiment_score=round(score, 4),
            anger=p_anger >= 0.5,
            anxiety=p_anx >= 0.5,
            entities=extract(text),
            wants_human=wants_human,
            top_category=top,
            negative_probability=round(p_neg, 4),
        )
