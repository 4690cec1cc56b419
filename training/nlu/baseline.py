"""The design document's keyword sketch, exactly as written, for side-by-side comparison.

Its flaw is kept on purpose: every message that matches no keyword is sent to 技术故障类.
"""

from __future__ import annotations

DESIGN_NAMES = {
    "产品咨询类": "product",
    "交易操作类": "transaction",
    "账户管理类": "account",
    "投诉与建议类": "complaint",
    "技术故障类": "technical",
}


def classify_question(question: str) -> str:
    """简单的问题分类逻辑示例(实际系统可能使用NLP模型) — verbatim from the design document."""
    question = question.lower()
    if any(keyword in question for keyword in ["净值", "收益率", "产品特点"]):
        return "产品咨询类"
    elif any(keyword in question for keyword in ["赎回", "申购", "定投", "交易"]):
        return "交易操作类"
    elif any(keyword in question for keyword in ["密码", "账户", "身份验证"]):
        return "账户管理类"
    elif any(keyword in question for keyword in ["投诉", "不满", "建议"]):
        return "投诉与建议类"
    else:
        return "技术故障类"


def classify(text: str) -> str:
    """The baseline's answer as one of our category keys."""
    return DESIGN_NAMES[classify_question(text)]
