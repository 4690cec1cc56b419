"""Chinese full-text search over the knowledge base: jieba tokens, BM25 ranking, a coverage score.

Pure (no I/O): `session/knowledge.py` builds an index from the articles in Redis and rebuilds
it when their revision changes. Tokens are jieba's search-mode cut (`lcut_for_search`, which
also emits the shorter words inside long ones: 基金净值 -> 基金, 净值, 基金净值) of the
simplified, lower-cased text, minus a short stopword list. An article is indexed by its title
(counted twice), its sample questions, its intents' names and its body.

Two numbers per hit:
- `score`: Okapi BM25 (k1 1.2, b 0.75), used to rank;
- `coverage`: the share of the query's IDF weight that the article contains, in [0, 1]. It is
  comparable across queries, so the bot's retrieval floor is set on it (docs/bot.md); a query
  whose important words no article has gets a low coverage however its BM25 score looks.

Measured on bench/data/kb_queries.jsonl by bench/knowledge.py (recall@3, MRR; docs/bot.md).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, KeysView, Sequence
from dataclasses import dataclass
from typing import Any

import jieba

K1 = 1.2
B = 0.75

_STOP = frozenset(
    "的 了 吗 呢 啊 吧 呀 么 嘛 哦 我 你 您 他 她 它 我们 你们 请问 请 一下 是 在 有 和 与 及 或 就"
    " 都 也 还 要 想 能 会 可以 怎么 怎样 如何 什么 哪 哪里 哪些 多少 几 为什么 这个 那个 这 那 个"
    " 吗 么 呢 一个 现在 今天 已经 没有 不 没 好 谢谢 麻烦 问 问下 问一下 下 帮 帮我 给 让 把 被 对"
    " 啥 咋 咋整 咋办 怎么办 怎么弄 弄 整 亲 呗 啦 嘞 哈 要怎么 得".split()
)
# Customers' words for what the articles say in other words: both sides of the index are
# mapped to the article's word, so "卖掉基金" finds 赎回 and "不一样" finds 区别. Chosen from
# the misses on bench/data/bot_tune.jsonl and kb_queries.jsonl, never from a fresh set.
SYNONYMS = {
    "不一样": "区别",
    "不同": "区别",
    "差别": "区别",
    "卖出": "赎回",
    "卖掉": "赎回",
    "卖": "赎回",
    "注销": "销户",
    "记不住": "忘记",
    "记不得": "忘记",
    "想不起来": "忘记",
    "忘了": "忘记",
    "到期": "过期",
    "登不上": "登录",
    "登陆": "登录",
    "最少": "最低",
    "回款": "到账",
    "收费": "费用",
    "手续费": "费用",
    "解除绑定": "解绑",
    "换绑": "更换",
    "找回": "忘记",  # 找回密码 is what the articles call 忘记密码 (reset it)
    "新建": "开通",
    "新增": "开通",
    "创建": "开通",
}
# Words of the trade that jieba's general dictionary splits ("定投" -> 定, 投): each one found
# in a text is added as a token of its own, on both sides. Not added to jieba's dictionary,
# which the classifier's features read (streams/nlu/features.py) and must not change under it.
TERMS = (
    "定投",
    "交易密码",
    "登录密码",
    "赎回费",
    "申购费",
    "管理费",
    "托管费",
    "销售服务费",
    "七日年化",
    "万份收益",
    "红利再投资",
    "现金分红",
    "单位净值",
    "累计净值",
    "风险测评",
    "风险等级",
    "预留手机号",
    "实名认证",
)
_PUNCT = re.compile(r"^[\W_]+$", re.UNICODE)
_lock = threading.Lock()
_ready = False


def _init() -> None:
    global _ready
    with _lock:
        if not _ready:
            jieba.setLogLevel(60)
            jieba.initialize()
            _ready = True


def tokens(text: str) -> list[str]:
    """The search tokens of `text` (simplified characters are assumed; lower-cased here)."""
    if not _ready:
        _init()
    low = text.lower()
    out = []
    for t in jieba.lcut_for_search(low):
        t = t.strip()
        if t and t not in _STOP and not _PUNCT.match(t):
            out.append(SYNONYMS.get(t, t))
    out += [t for t in TERMS if t in low and t not in out]
    return out


def article_text(article: dict[str, Any]) -> list[str]:
    title = article.get("title") or ""
    parts = [title, title, *(article.get("questions") or []), article.get("body") or ""]
    return tokens(" ".join(parts)) + [str(i) for i in article.get("intents") or []]


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    coverage: float


class Index:
    """BM25 over a fixed set of articles; build a new one when the articles change."""

    def __init__(self, articles: Iterable[dict[str, Any]]):
        self.articles: dict[str, dict[str, Any]] = {}
        self._tf: dict[str, Counter[str]] = {}
        self._len: dict[str, int] = {}
        self._text: dict[str, str] = {}
        df: Counter[str] = Counter()
        for a in articles:
            aid = str(a["id"])
            toks = article_text(a)
            self.articles[aid] = a
            self._tf[aid] = Counter(toks)
            self._len[aid] = len(toks)
            self._text[aid] = " ".join(
                [a.get("title") or "", *(a.get("questions") or []), a.get("body") or ""]
            ).lower()
            df.update(set(toks))
        n = len(self.articles)
        self._avg = (sum(self._len.values()) / n) if n else 1.0
        # BM25+ style idf kept positive; an unseen term weighs as much as the rarest.
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self._unseen = math.log(1 + (n + 0.5) / 0.5)

    def __len__(self) -> int:
        return len(self.articles)

    def terms(self, aid: str) -> KeysView[str]:
        """The search tokens an article is indexed by (title, sample questions, intents, body)."""
        return self._tf[aid].keys()

    def known(self, term: str) -> bool:
        """Whether any article is indexed by `term`."""
        return term in self._idf

    def text(self, aid: str) -> str:
        """The article's indexed text, lower-cased (title, sample questions, body)."""
        return self._text[aid]

    def siblings(self, aid: str, channel: str | None = None) -> list[str]:
        """The other articles sharing an intent with `aid` (for `channel`): the ones a
        question must tell it apart from ("定投" set-up vs change)."""
        mine = set(self.articles[aid].get("intents") or [])
        return [
            o
            for o, a in self.articles.items()
            if o != aid
            and mine & set(a.get("intents") or [])
            and not (channel and a.get("channels") and channel not in a["channels"])
        ]

    def search(
        self,
        query: str,
        limit: int = 5,
        *,
        channel: str | None = None,
        intents: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Best articles for `query`; `channel` keeps articles for that channel (an article
        with no channels is for all), `intents` keeps articles tagged with one of them."""
        q = list(dict.fromkeys(tokens(query)))
        if not q or not self.articles:
            return []
        weights = {t: self._idf.get(t, self._unseen) for t in q}
        total = sum(weights.values())
        hits = []
        for aid, tf in self._tf.items():
            a = self.articles[aid]
            if channel and a.get("channels") and channel not in a["channels"]:
                continue
            if intents is not None and not set(intents) & set(a.get("intents") or []):
                continue
            score = 0.0
            covered = 0.0
            norm = K1 * (1 - B + B * self._len[aid] / self._avg)
            for t in q:
                f = tf.get(t)
                if f:
                    score += weights[t] * f * (K1 + 1) / (f + norm)
                    covered += weights[t]
            if score > 0:
                hits.append(Hit(aid, round(score, 4), round(covered / total, 4)))
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits[:limit]
