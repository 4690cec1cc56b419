"""Entities in a customer message: funds (matched against the catalogue), codes, share classes,
amounts, dates, order numbers, and personal data spans (from schemas.pii) for masking."""

from __future__ import annotations

import re
from typing import Any

from schemas.pii import find_pii
from streams.nlu.catalogue import Catalogue, Fund, load_catalogue
from streams.nlu.features import to_simplified

_CODE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(?![0-9])")
# A share-class letter after a fund name: any letter with 类/份额/级 ("E类"), else only the
# letters fund companies use (A, B, C, D, E, F, H, I, Y) standing alone, so "a股", "app",
# "r3" or "t+1" are not read as classes.
_LETTER = r"(?:([a-z])\s*(?:类|份额|级)|([a-fhiy])(?![a-z0-9+股]))"
_CLASS_AFTER = re.compile(
    r"\s*(?:混合|债券|指数|股票|货币|型|基金|\(lof\)|lof)*\s*" + _LETTER, re.I
)
# More classes of the same fund named after the first: "A和C", "A/C", "a、c两类", "A跟C".
_CLASS_MORE = re.compile(
    r"\s*(?:和|与|跟|及|或者|或|还是|以及|、|/|,|，|&|and)\s*(?:的)?\s*" + _LETTER, re.I
)
_CLASS_ALONE = re.compile(r"(?<![a-z])([a-z])\s*(?:类|份额)", re.I)
# A name matched short of the fund's full name ("融通新能源" in "融通新能源汽车C"): the rest of
# the name's characters may stand between it and the class letter.
_NAME_REST_MAX = 10
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


def _letter(m: re.Match[str]) -> str:
    return (m.group(1) or m.group(2)).upper()


def _classes(text_low: str, start: int, end: int, family: list[Fund]) -> list[str]:
    """Every share class written with this name match, in order ("领先成长A和C" -> A, C)."""
    return _mention(text_low, start, end, family)[0]


def _mention(text_low: str, start: int, end: int, family: list[Fund]) -> tuple[list[str], int]:
    """The share classes written with this name match, and where the mention ends (after the
    rest of the name and the last class letter)."""
    out: list[str] = []
    # A class letter inside the matched alias ("领先成长a", "融通债c") was part of the match.
    last = text_low[end - 1 : end]
    if last in ("a", "b", "c") and end - 1 > start and not text_low[end - 2 : end - 1].isascii():
        out.append(last.upper())
    else:
        rest = set("".join(f.name.lower() + f.full_name.lower() for f in family))
        pos = end
        while pos < len(text_low) and pos - end < _NAME_REST_MAX and text_low[pos] in rest:
            if text_low[pos].isascii():
                break
            pos += 1
        m = _CLASS_AFTER.match(text_low, pos)
        if not m:
            # No class letter: the mention goes on only as far as it still spells one of
            # the fund's names ("融通蓝筹" + "成长" in "融通蓝筹成长最新净值", "融通巨潮" + "100").
            names = [n.lower() for f in family for n in (f.name, f.full_name)]
            pos = min(len(text_low), end + _NAME_REST_MAX)
            while pos > end and not any(text_low[start:pos] in n for n in names):
                pos -= 1
            return out, pos
        out.append(_letter(m))
        end = m.end()
    m = _CLASS_MORE.match(text_low, end)
    while m:
        out.append(_letter(m))
        end = m.end()
        m = _CLASS_MORE.match(text_low, end)
    return list(dict.fromkeys(out)), end


def fund_spans(text: str, catalogue: Catalogue | None = None) -> list[tuple[int, int]]:
    """Where the message names a fund: each name or alias with the rest of the fund's name
    and the class letters after it ("新能源汽车C", "领先成长A和C类"), as (start, end) in
    `to_simplified(text).lower()` (which has the same length as `text`)."""
    cat = catalogue or load_catalogue()
    low = to_simplified(text).lower()
    spans = []
    for a, b, cands in cat.match_names(low):
        family = _family(cands, cat)
        # and back as far as the text before it still spells a name ("融通" + "稳健添瑞A")
        names = [n.lower() for f in family for n in (f.name, f.full_name)]
        while a > 0 and any(low[a - 1 : b] in n for n in names):
            a -= 1
        spans.append((a, _mention(low, a, b, family)[1]))
    return spans


def _family(cands: list[Fund], cat: Catalogue) -> list[Fund]:
    """The matched funds and their other share classes (same name without the letter)."""
    bases = {f.base_name for f in cands}
    return [*cands, *(g for g in cat.funds if g.base_name in bases and g not in cands)]


def _default(cands: list[Fund]) -> Fund:
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

    # A share class the fund does not have ("新蓝筹C"): no record answers it, so the caller
    # must not fall back to the class that exists.
    unknown: list[dict[str, str]] = []
    no_class: list[list[Fund]] = []  # families named without a letter after the name
    for start, end, cands in cat.match_names(low):
        family = _family(cands, cat)
        classes = _classes(low, start, end, family)
        if not classes:
            no_class.append(family)
            add(_default(cands))
        for cls in classes:
            sib = [g for g in family if g.share_class == cls]
            if sib:
                add(sib[0])
            else:
                unknown.append({"name": family[0].base_name, "share_class": cls})

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

    # "领先成长的C类", "C类领先成长": one fund named without a letter after it, and class
    # words elsewhere in the message name its classes.
    if len(no_class) == 1 and len(funds) == 1:
        alone = list(dict.fromkeys(m.group(1).upper() for m in _CLASS_ALONE.finditer(low)))
        if alone:
            family = no_class[0]
            funds.clear()
            seen.clear()
            for cls in alone:
                sib = [g for g in family if g.share_class == cls]
                if sib:
                    add(sib[0])
                else:
                    unknown.append({"name": family[0].base_name, "share_class": cls})

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
        "unknown_share_classes": unknown,
        "fund_codes": codes,
        "amounts": amounts,
        "dates": dates,
        "order_ids": orders,
        "pii": [{"kind": p.kind, "start": p.start, "end": p.end} for p in pii],
    }
