"""The classify stage: what a message is about, how the customer feels, what it mentions.

Delegates to the trained understanding model in streams/nlu when its artefacts are present.
The keyword fallback exists so a checkout without a trained model still routes; it says
"unclear" rather than guessing, so such messages reach a generalist rather than the wrong
specialist.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)


class Classifier(Protocol):
    """Analyses a batch of texts at once (one matrix product for the whole batch)."""

    def __call__(self, texts: list[str]) -> list[dict[str, Any]]: ...


_FALLBACK = (
    ("complaint", ("投诉", "不满", "垃圾", "骗", "坑", "差劲", "太慢")),
    ("technical", ("登不上", "登录不了", "闪退", "打不开", "系统繁忙", "报错", "验证码")),
    ("transaction", ("赎回", "申购", "定投", "到账", "转换", "撤单", "买入", "卖出")),
    ("account", ("密码", "手机号", "身份", "实名", "开户", "销户", "风险测评", "银行卡")),
    ("product", ("净值", "收益", "费率", "手续费", "风险等级", "基金经理", "分红", "七日年化")),
)
_NEGATIVE = ("投诉", "垃圾", "骗", "坑", "急", "怎么还没", "生气", "差劲", "！！", "??", "？？")


def keyword_classify(text: str) -> dict[str, Any]:
    t = text.lower()
    category = next((c for c, words in _FALLBACK if any(w in t for w in words)), "unclear")
    negative = any(w in t for w in _NEGATIVE)
    return {
        "category": category,
        "confidence": 0.5 if category != "unclear" else 0.0,
        "also": [],
        "intent": "unknown",
        "sentiment": "negative" if negative else "neutral",
        "sentiment_score": -0.5 if negative else 0.0,
        "anger": False,
        "anxiety": False,
        "entities": {},
        "wants_human": "人工" in t,
        "model": "keyword-fallback",
    }


def keyword_classify_batch(texts: list[str]) -> list[dict[str, Any]]:
    return [keyword_classify(t) for t in texts]


@lru_cache(maxsize=1)
def load_classifier() -> Classifier:
    try:
        from streams.nlu import Understanding

        understanding = Understanding.load()
    except Exception as exc:  # no trained artefacts in this checkout
        log.warning("classify.fallback", reason=repr(exc))
        return keyword_classify_batch

    def classify(texts: list[str]) -> list[dict[str, Any]]:
        if len(texts) == 1:  # the latency path: no batch overhead for a lone message
            analyses = [understanding.analyze(texts[0])]
        else:
            analyses = understanding.analyze_batch(texts)
        out = []
        for a in analyses:
            d = a.to_dict()
            d.setdefault("model", "nlu")
            out.append(d)
        return out

    # jieba loads its dictionary lazily (about 1.4 s); pay that at start-up, not on the first
    # customer's message.
    classify(["融通领先成长混合A净值多少"])
    return classify
