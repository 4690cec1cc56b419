"""Entities in a customer message: funds (matched against the catalogue), codes, share classes,
amounts, dates, order numbers, and personal data spans (from schemas.pii) for masking."""

from __future__ import annotations

import re
from typing import Any

from schemas.pii import find_pii
from streams.nlu.catalogue import Catalogue, Fund, load_catalogue
from streams.nlu.features import to_simplified

_CODE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(?![0-9])")
_CLASS_AFTER = re.compile(
    r"\s*(?:混合|债券|指数|股票|货币|型|基金|\(lof\)|lof)*\s*([abc])(?:类|份额|级|$|[^a-z])", re.I
)
_CLASS_ALONE = re.compile(r"(?<![a-z])([abc])\s*(?:类|份额)", re.I)
_CN_NUM = "零一二两三四五六七八九十百千万亿"
_AMOUNT = re.compile(
    rf"(?:\d+(?:,\d{{3}})*(?:\.\d+)?|[{_CN_NUM}]+)\s*(?:[万千百亿]?(?:元|块钱|块|份)|[万千亿]|rmb|yuan)"
    r"|(?:¥|￥|rmb\s?)\s*\d+(?:,\d{3})*(?:\.\d+)?",
    re.I,
)
_DATE = re.compile(
    r"\d{4}[-/.年]\d{1,2}[-/.月]\d{1,2}[日号]?"
    r"|\d{1,2}月\d{1,2}[日号]"
    r"|(?<!\d)\d{1,2}[日号](?![码\d])"
    r"|(?:上|下|这|本)?(?:周|星期|礼拜)[一二三四五六日天]"
    r"|(?:今天|昨天|前天|大前天|明天|后天|上周|上个月|本月|这个月|月底|月初|年底|T\+\d)",
    re.I,
)
_ORDER = re.compile(
    r"(?:订单|单号|流水号|申请编号|申请单|交易编号|业务编号|确认单号|order)\s*(?:号|编号|no\.?|id)?\s*[:：#]?\s*([A-Za-z]{0,4}\d{8,24})",
    re.I,
)
_ANY_DIGIT = re.compile(r"\d")
_ORDER_BARE = re.compile(r"(?<![0-9])(20\d{2}[01]\d[0-3]\d\d{6,10})(?![0-9])")


def _pick_class(text_low: str, end: int, start: int) -> str | None:
    m = _CLASS_AFTER.match(text_low, end)
    if m and m.start(1) - end <= 6:
        return m.group(1).upper()
    # A class letter written inside the matched name ("领先成长a") was part of the match.
    last = text_low[end - 1 : end]
    if last in ("a", "b", "c") and end - 1 > start:
        return last.upper()
    return None


def _resolve(cands: list[Fund], cls: str | None) -> Fund:
    if cls:
        for f in cands:
            if f.share_class == cls:
                return f
        # An alias of one class with a different letter written after it: find the sibling.
    pref = [f for f in cands if f.share_class == "A"]
    return pref[0] if pref else cands[0]


def extract(text: str, catalogue: Catalogue | None = None) -> dict[str, Any]:
    cat = catalogue or load_catalogue()
    low = to_simplified(text).lower()
    # Most messages carry no digits: then there is no personal data, code, order number or
    # digit amount to look for, and the regex passes over them are skipped.
    has_digit = _ANY_DIGIT.search(text) is not None
    pii = find_pii(text) if has_digit or "@" in text else []
    pii_spans = [(p.start, p.end) for p in pii]

    def in_pii(a: int, b: int) -> bool:
        return any(a < e and b > s for s, e in pii_spans)

    funds: list[dict[str, str]] = []
    seen: set[str] = set()

    def add(f: Fund) -> None:
        if f.code not in seen:
            seen.add(f.code)
            funds.append({"code": f.code, "name": f.name, "share_class": f.share_class})

    for start, end, cands in cat.match_names(low):
        cls = _pick_class(low, end, start)
        f = _resolve(cands, cls)
        if cls and f.share_class != cls:
            sib = [g for g in cat.funds if g.base_name == f.base_name and g.share_class == cls]
            f = sib[0] if sib else f
        add(f)

    codes: list[str] = []
    for m in _CODE.finditer(text) if has_digit else ():
        if in_pii(m.start(), m.end()):
            continue
        code = m.group(1)
        if code not in codes:
            codes.append(code)
        known = cat.by_code(code)
        if known is not None:
            add(known)

    if len(funds) == 1 and funds[0]["share_class"] == "A":
        alone = _CLASS_ALONE.search(low)
        if alone:
            cls = alone.group(1).upper()
            base = cat.by_code(funds[0]["code"])
            sib = [
                g
                for g in cat.funds
                if base and g.base_name == base.base_name and g.share_class == cls
            ]
            if sib:
                funds[0] = {"code": sib[0].code, "name": sib[0].name, "share_class": cls}

    orders: list[str] = []
    order_spans: list[tuple[int, int]] = []
    for m in _ORDER.finditer(text) if has_digit else ():
        orders.append(m.group(1))
        order_spans.append(m.span(1))
    for m in _ORDER_BARE.finditer(text) if has_digit else ():
        if m.group(1) not in orders and not in_pii(m.start(), m.end()):
            orders.append(m.group(1))
            order_spans.append(m.span(1))

    def in_order(a: int, b: int) -> bool:
        return any(a < e and b > s for s, e in order_spans)

    amounts = [
        m.group().strip()
        for m in _AMOUNT.finditer(text)
        if not in_pii(m.start(), m.end()) and not in_order(m.start(), m.end())
    ]
    dates = [
        m.group()
        for m in _DATE.finditer(text)
        if not in_pii(m.start(), m.end()) and not in_order(m.start(), m.end())
    ]
    return {
        "funds": funds,
        "fund_codes": codes,
        "amounts": amounts,
        "dates": dates,
        "order_ids": orders,
        "pii": [{"kind": p.kind, "start": p.start, "end": p.end} for p in pii],
    }
