"""Train-time data augmentation: the noise real customer messages carry.

Random typos and homophones, dropped or doubled punctuation, emoji, traditional characters,
mixed English, chatty openings and closings, fund names swapped for other catalogue names or
codes. Deterministic for a given seed.
"""

from __future__ import annotations

import random

from streams.nlu.catalogue import load_catalogue
from streams.nlu.features import to_traditional

# Common input-method slips and homophones seen in customer chat (written for this project).
HOMOPHONES: dict[str, list[str]] = {
    "账": ["帐"],
    "帐": ["账"],
    "的": ["得", "地"],
    "在": ["再"],
    "再": ["在"],
    "登录": ["登陆"],
    "净值": ["净直", "静值", "净植"],
    "赎回": ["熟回", "赎会", "属回"],
    "收益": ["收溢", "受益"],
    "年化": ["年华"],
    "定投": ["定头", "订投"],
    "申购": ["申够", "身购"],
    "密码": ["密马", "秘码"],
    "验证码": ["验证吗", "严正码"],
    "基金": ["鸡金", "基经"],
    "怎么": ["咋", "怎莫", "zen么"],
    "什么": ["啥", "神马", "什莫"],
    "没有": ["没", "木有"],
    "吗": ["嘛", "么"],
    "呢": ["捏"],
    "银行卡": ["银行k", "yhk"],
    "手续费": ["手续废", "收续费"],
    "客服": ["kf", "客户"],
    "投诉": ["头诉", "投述"],
    "到账": ["到帐", "道账"],
    "已经": ["以经", "已近"],
    "那个": ["那哥"],
    "这个": ["这哥", "zhe个"],
    "可以": ["可已", "ky"],
    "知道": ["zd"],
    "一下": ["一哈", "下"],
    "为什么": ["为啥", "why"],
    "谢谢": ["3q", "xx", "谢了"],
}
ENGLISH: dict[str, list[str]] = {
    "基金": ["fund"],
    "赎回": ["redeem"],
    "申购": ["buy"],
    "净值": ["NAV", "nav"],
    "手续费": ["fee"],
    "密码": ["password"],
    "登录": ["login", "log in"],
    "账户": ["account"],
    "银行卡": ["bank card"],
    "客服": ["CS"],
    "定投": ["SIP"],
    "收益": ["return"],
    "手机号": ["phone number"],
    "验证码": ["code"],
    "投诉": ["complain"],
    "闪退": ["crash"],
}
EMOJI = ["😊", "🙏", "🤔", "😂", "💰", "😅", "[捂脸]", "[疑问]"]
EMOJI_NEG = ["😭", "😡", "😤", "😢", "💢", "[流泪]", "[发怒]", "😰"]
OPENERS = [
    "你好",
    "您好",
    "请问",
    "你好 请问",
    "在吗",
    "客服",
    "hi",
    "喂",
    "打扰一下",
    "亲",
    "咨询下",
]
CLOSERS = ["谢谢", "谢谢！", "？", "??", "。。。", "在线等", "麻烦了", "thanks", "!!"]
PUNCT = "，。？！,.?! ~、"


def _swap_funds(text: str, rng: random.Random) -> str:
    cat = load_catalogue()
    for start, end, _ in sorted(cat.match_names(text), reverse=True):
        f = rng.choice(cat.funds)
        repl = rng.choice([f.name, f.code, *f.aliases] if f.aliases else [f.name, f.code])
        text = text[:start] + repl + text[end:]
    return text


def _typo(text: str, rng: random.Random, table: dict[str, list[str]]) -> str:
    keys = [k for k in table if k in text]
    if not keys:
        return text
    k = rng.choice(keys)
    return text.replace(k, rng.choice(table[k]), 1)


def augment(text: str, rng: random.Random, negative: bool = False) -> str:
    t = text
    if rng.random() < 0.5:
        t = _typo(t, rng, HOMOPHONES)
    if rng.random() < 0.2:
        t = _typo(t, rng, HOMOPHONES)
    if rng.random() < 0.15:
        t = _typo(t, rng, ENGLISH)
    if rng.random() < 0.3:
        t = _swap_funds(t, rng)
    r = rng.random()
    if r < 0.35:
        t = "".join(c for c in t if c not in PUNCT) or t
    elif r < 0.5:
        t = t.replace("？", "？？").replace("?", "???").replace("！", "！！！")
    if rng.random() < 0.15:
        t = to_traditional(t)
    if rng.random() < 0.2:
        t = rng.choice(OPENERS) + rng.choice(["", " ", "，"]) + t
    if rng.random() < 0.2:
        t = t + rng.choice(["", " "]) + rng.choice(CLOSERS)
    if rng.random() < 0.12:
        t = t + rng.choice(EMOJI_NEG if negative else EMOJI)
    if rng.random() < 0.08 and len(t) > 6:
        i = rng.randrange(1, len(t) - 1)
        t = t[:i] + t[i + 1 :]  # a dropped character
    return t
