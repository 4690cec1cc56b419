"""Sentiment lexicons (written for this project) and how model scores become flags.

The lexicons do two jobs: they add cue tokens to the features (so a word of anger the corpus
never used still pushes the model the right way), and they give the positive side of the score,
which the corpus barely labels.
"""

from __future__ import annotations

import math
import re

NEGATIVE = (
    "垃圾",
    "坑",
    "骗",
    "亏",
    "失望",
    "差劲",
    "太差",
    "很差",
    "烂",
    "生气",
    "气死",
    "烦",
    "恶心",
    "无语",
    "醉了",
    "破app",
    "什么破",
    "滚",
    "搞笑",
    "搞什么",
    "不满",
    "后悔",
    "心疼",
    "倒霉",
    "太慢",
    "怎么还",
    "还没",
    "到底",
    "凭什么",
    "一直不",
    "没人",
    "不理",
    "投诉",
    "离谱",
    "过分",
    "忽悠",
    "割韭菜",
    "韭菜",
    "崩了",
    "卡死",
    "闪退",
    "太坑",
    "跌惨",
    "亏惨",
    "亏麻",
    "绿油油",
    "全绿",
    "扯",
    "糟糕",
    "郁闷",
    "难受",
    "受不了",
    "不靠谱",
    "吞",
    "黑心",
    "坑人",
    "不负责",
    "推卸",
    "踢皮球",
    "敷衍",
    "拖",
    "没下文",
    "不专业",
    "太烂",
    "不好用",
    "难用",
    "卡顿",
    "有病",
    "什么玩意",
    "坑爹",
    "呵呵",
    "服了",
    "害我",
    "怎么回事",
    "白等",
    "等了半天",
    # Frustration real customers write without angry words (issue 14): "明明…", "怎么又…".
    "明明",
    "居然",
    "竟然",
    "怎么又",
    "又扣",
    "扣了两次",
    "突然",
    "乱扣",
    "无缘无故",
    "😡",
    "😤",
    "😠",
    "💢",
    "😭",
    "😢",
    "😞",
    "👎",
    "🙄",
)
ANGER = (
    "垃圾",
    "骗子",
    "骗钱",
    "坑人",
    "坑爹",
    "滚",
    "气死",
    "恶劣",
    "凭什么",
    "什么破",
    "证监会",
    "12378",
    "报警",
    "赔偿",
    "搞什么",
    "傻",
    "混蛋",
    "投诉",
    "黑心",
    "欺骗",
    "无耻",
    "太过分",
    "还有脸",
    "去死",
    "什么玩意",
    "有病",
    "破服务",
    "破app",
    "吞我",
    "要个说法",
    "给个说法",
    "曝光",
    "媒体",
    "律师",
    "起诉",
    "法院",
    "维权",
    "!!!",
    "😡",
    "😤",
    "😠",
    "💢",
    "🤬",
)
ANXIETY = (
    "急",
    "着急",
    "担心",
    "怎么办",
    "焦虑",
    "睡不着",
    "害怕",
    "慌",
    "救命",
    "急用",
    "吓死",
    "吓",
    "不见了",
    "会不会",
    "是不是出",
    "安全吗",
    "还能拿回",
    "拿不回",
    "血汗钱",
    "养老钱",
    "救急",
    "等着用",
    "交房租",
    "看病",
    "手术",
    "学费",
    "在哪",
    "钱呢",
    "不会吧",
    "怎么回事",
    "😭",
    "😰",
    "😱",
    "😟",
    "🙏",
)
POSITIVE = (
    "谢谢",
    "感谢",
    "多谢",
    "满意",
    "好评",
    "赞",
    "给力",
    "不错",
    "点赞",
    "辛苦了",
    "棒",
    "专业",
    "耐心",
    "及时",
    "解决了",
    "很好",
    "太好了",
    "开心",
    "赚了",
    "涨了",
    "thank",
    "thx",
    "great",
    "good",
    "👍",
    "😊",
    "😄",
    "❤",
    "🌹",
    "🎉",
)


def _rx(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)))


_LEXICON_RX = (
    ("neg", _rx(NEGATIVE)),
    ("anger", _rx(ANGER)),
    ("anx", _rx(ANXIETY)),
    ("pos", _rx(POSITIVE)),
)


def cue_tokens(norm: str) -> list[str]:
    """Lexicon cue features for a simplified, lower-case text."""
    out: list[str] = []
    for name, rx in _LEXICON_RX:
        hits = len(rx.findall(norm))
        if hits:
            out.append(f"L:{name}")
            if hits >= 2:
                out.append(f"L:{name}2")
    if norm.count("?") + norm.count("!") >= 3:
        out.append("L:punct3")
    return out


def positive_strength(norm: str) -> float:
    hits = len(_LEXICON_RX[3][1].findall(norm))
    return min(1.0, 0.5 * hits)


def sentiment_score(p_negative: float, positive: float) -> float:
    """A score in [-1, 1]: -1 certainly negative, +1 clearly positive, 0 neutral."""
    s = (1.0 - p_negative) * positive - p_negative
    return max(-1.0, min(1.0, s))


def label(negative: bool, score: float) -> str:
    if negative:
        return "negative"
    return "positive" if score >= 0.3 else "neutral"


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z > -50 else 0.0
