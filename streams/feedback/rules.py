"""What the feedback stage decides, pure: which answers need a callback, when it is due,
what the survey says on each channel."""

from __future__ import annotations

from typing import Any, Final

# Zendesk counts 1-3 of 5 as bad; the design document asks for a callback when the customer
# was unhappy. We call back at 2 or less, or on a comment that reads as a complaint whatever
# the score (a 4 with "but the agent was rude" still deserves a call).
CALLBACK_AT_MOST: Final = 2
CALLBACK_DUE_MS: Final = 24 * 3_600_000
COMPLAINT_WORDS: Final = (
    "投诉",
    "不满",
    "不满意",
    "差评",
    "太差",
    "很差",
    "差劲",
    "态度差",
    "态度不好",
    "态度恶劣",
    "不专业",
    "敷衍",
    "没解决",
    "没有解决",
    "未解决",
    "不解决",
    "垃圾",
    "骗",
    "坑",
    "推诿",
    "踢皮球",
    "举报",
    "监管",
    "12378",
)
_NOT: Final = ("没有不满", "并无不满", "不是投诉", "没有投诉")


def complaint_like(comment: str, analysis: dict[str, Any] | None = None) -> str | None:
    """Why a comment reads as a complaint (the matched word, or what the classifier found),
    or None."""
    text = comment.strip()
    if not text:
        return None
    if any(n in text for n in _NOT):
        return None
    for w in COMPLAINT_WORDS:
        if w in text:
            return f"comment mentions {w}"
    if analysis:
        # The classifier was trained on questions: it files praise ("很满意") under 投诉与建议
        # too, so the category counts only with a negative sentiment.
        if analysis.get("anger"):
            return "comment reads as angry"
        if analysis.get("category") == "complaint" and analysis.get("sentiment") == "negative":
            return "comment classified as a negative complaint"
    return None


def callback_reason(score: int, comment: str, analysis: dict[str, Any] | None = None) -> str | None:
    """Why this answer opens a callback, or None when it does not."""
    if score <= CALLBACK_AT_MOST:
        why = f"satisfaction score {score}/5"
        extra = complaint_like(comment, analysis)
        return f"{why}; {extra}" if extra else why
    extra = complaint_like(comment, analysis)
    return f"complaint in the survey comment ({extra}), score {score}/5" if extra else None


def callback_id(survey_id: str) -> str:
    return f"cb-{survey_id}"


PROMPTS: Final = {
    "chat": "本次服务已结束。请您为本次服务打分（1-5 分，5 分为非常满意）：",
    "app": "本次服务已结束。请您为本次服务打分（1-5 分，5 分为非常满意）。",
    "email": (
        "您好！您咨询的问题已处理完毕。\n\n"
        "请直接回复本邮件，第一行写一个数字为本次服务打分：1（非常不满意）到 5（非常满意），"
        "可在数字后附上您的意见，例如：“4 回复很及时”。\n\n"
        "评价在 {hours} 小时内有效。感谢您的反馈！"
    ),
    "phone": "感谢您的来电。请按 1 到 5 键为本次服务评分，5 为非常满意。",
}


def prompt(channel: str, window_ms: int) -> str:
    return PROMPTS.get(channel, PROMPTS["chat"]).format(hours=window_ms // 3_600_000)
