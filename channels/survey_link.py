"""The one-click survey link of an email survey: signed, expiring, good for one answer.

    <public url>/v1/surveys/{survey_id}/rate?exp=<ms>&sig=<hex>

`sig` is HMAC-SHA256(OMNIROUTER_SURVEY_LINK_SECRET, "survey-link|{survey_id}|{exp}"): the link
is its own credential (no login: the customer clicks it in a mail), and it names one survey
and its deadline, nothing else. The delivery service writes it into the survey mail; the
gateway checks it on both the page (GET) and the answer (POST). A GET only shows the page with
five buttons: mail gateways that "click" every link to scan it record nothing. The answer is
taken once (session/surveys.py), so a second click or a forwarded mail gets 409.
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape
from urllib.parse import quote, urlencode


class LinkRefused(Exception):
    """The link is not one we signed, or its deadline passed."""

    def __init__(self, status: int, code: str, message: str, field: str):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def signature(secret: str, survey_id: str, exp: int) -> str:
    msg = f"survey-link|{survey_id}|{exp}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def url(base: str, secret: str, survey_id: str, exp: int) -> str:
    query = urlencode({"exp": exp, "sig": signature(secret, survey_id, exp)})
    return f"{base.rstrip('/')}/v1/surveys/{quote(survey_id, safe='')}/rate?{query}"


def check(
    secret: str | None, survey_id: str, exp_raw: str | None, sig: str | None, now: int
) -> int:
    """The link's deadline (ms) when the link is ours and still good; LinkRefused otherwise.
    A bad signature is 401 (the link is the credential), a passed deadline 410."""
    if not secret:
        raise LinkRefused(404, "survey_links_disabled", "survey links are not enabled", "sig")
    if not exp_raw or not exp_raw.isdigit() or len(exp_raw) > 15:
        raise LinkRefused(401, "bad_signature", "the link has no valid deadline", "exp")
    exp = int(exp_raw)
    expected = signature(secret, survey_id, exp)
    if not sig or not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
        raise LinkRefused(401, "bad_signature", "this link was not issued by us", "sig")
    if now > exp:
        raise LinkRefused(410, "survey_expired", f"this link was good until {exp} (ms)", "exp")
    return exp


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:30rem;margin:2rem auto;padding:0 1rem}"
    "button{font-size:1.2rem;margin:.2rem;padding:.5rem .9rem}textarea{width:100%;height:4rem}"
)


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def form_page(action: str) -> str:
    """Five buttons and an optional comment, posted to the same signed link (no script)."""
    buttons = "".join(
        f'<button type="submit" name="score" value="{n}" data-testid="rate-{n}">{n} 分</button>'
        for n in range(1, 6)
    )
    return page(
        "服务评价",
        "<p>请为本次服务打分：1 分非常不满意，5 分非常满意。</p>"
        f'<form method="post" action="{escape(action)}" data-testid="survey-form">'
        '<p><textarea name="comment" maxlength="2000" placeholder="意见（可不填）"'
        ' data-testid="rate-comment"></textarea></p>'
        f"<p>{buttons}</p></form>",
    )


def thanks_page(score: int) -> str:
    return page(
        "感谢您的评价",
        f'<p data-testid="rate-done" data-score="{score}">您的评分：{score} 分。</p>',
    )


def refusal_page(code: str, message: str, field: str) -> str:
    text = {
        "survey_already_answered": "这次服务已经评价过了，每次服务只能评价一次。",
        "survey_expired": "评价已过期。",
        "survey_not_found": "找不到这次评价。",
        "bad_signature": "链接无效。",
        "invalid_field": "请选择 1 到 5 分。",
    }.get(code, message)
    return page(
        "无法评价",
        f'<p data-testid="rate-error" data-code="{escape(code)}" data-field="{escape(field)}">'
        f"{escape(text)}</p><p><small>{escape(code)}: {escape(message)}</small></p>",
    )
