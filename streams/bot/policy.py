"""When the bot answers and when it hands off: pure, no I/O (docs/bot.md).

`decide` takes what the classifier found, what the bot remembers of the conversation, the
knowledge index and the fund records the message names, and returns an Answer or a Handoff.
The thresholds were chosen on bench/data/bot_tune.jsonl and reported on bench/data/bot_test.jsonl
(bench/bot.py); a wrong answer is worse than a hand-off, so each floor is set where the
precision of answered messages on the tuning set is at least 0.98.

Never answered, whatever the scores: a complaint or suggestion, an angry, anxious or negative
customer, a request for a person, a third question on the same thing after two answers, an
intent outside ANSWERABLE, a fund the message names ambiguously or that has no record, a
NAV that is not current (session/tradingdays.py), anything but the NAV of a fund another
company manages, and an article that does not account for the question's words.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from session import suitability
from session.kbsearch import SYNONYMS, Index, tokens
from session.tradingdays import nav_is_current
from streams.bot import progress
from streams.nlu.entities import fund_spans
from streams.nlu.features import normalize, to_simplified, without_funds


@dataclass(frozen=True)
class Thresholds:
    category: float = 0.80  # the classifier's category probability
    intent: float = 0.50  # the intent's probability among the category's intents
    margin: float = 0.60  # top category probability minus the second
    coverage: float = 0.50  # share of the query's IDF weight the article holds (kbsearch)
    # The runner-up article's BM25 score over the best one's: above it the two are too close
    # to tell apart (定投 set-up vs change), and a person decides. 1.0 turns it off.
    runner_up: float = 0.9
    # The best article for the intent must not be beaten over the whole base: when another
    # article holds more of the question's words than the one the classifier's intent picks,
    # intent and words disagree and one of them is wrong.
    agree: bool = True


THRESHOLDS = Thresholds()

# Intents the bot may answer, and from what.
FUND_INTENTS = frozenset({"nav_return"})
KB_INTENTS = frozenset(
    {
        "nav_return",
        "product_info",
        "fees",
        "purchase",
        "redemption_howto",
        "redemption_arrival",
        "sip",
        "dividend",
        "card_binding",
        "password_reset",
        "contact_change",
        "account_open_close",
        "risk_assessment",
        "identity_verification",
        "login_failure",
        "app_malfunction",
    }
)
ANSWERABLE = FUND_INTENTS | KB_INTENTS
# How-tos whose article holds for any fund (with the fund's own fee or T+n added when named);
# a named fund with any other intent asks about that fund (its holdings, manager, risk), and
# a generic article would answer a question that was not asked.
FUND_GENERIC_INTENTS = frozenset(
    {"fees", "redemption_arrival", "redemption_howto", "purchase", "sip", "dividend"}
)
UNHELPFUL_LIMIT = 2  # bot turns that did not help before a person takes over

# A customer telling the bot its answer did not help.
_NOT_HELPED = re.compile(
    r"没用|不对|没解决|不是这个|不是我要|看不懂|还是不行|答非所问|没帮助|说了等于没说"
)
# Buying advice and personal account facts need a person (or suitability, docs/bot.md).
_PERSONAL = re.compile(
    r"我的(?:账户|订单|持仓|份额|余额|资金|钱|赎回|申购|交易|基金|定投|计划)"
    r"|我.{0,4}(?:买|赎回|申购|转换|卖)的|适合我|推荐|该不该|要不要|能不能买|值得买|会涨|会跌"
    r"|哪个好|哪只好|哪个更|哪只更|选哪|买哪"
    # "what is my …": a fact about this customer's own account, whatever it is about
    # "what is / where is my …": a fact about this customer's own account or order, whatever
    # it is about ("我的风险测评是几级", "我的分红到账了吗"); "我的手机号换了怎么改" is a how-to
    r"|我的.{0,10}(?:是什么|是多少|多少|是几|几级|哪一?级|结果|记录|明细|是否|有没有|了吗|了没"
    r"|没到|到了吗|成功没|怎么样|情况|状态)"
)
# The customer's own data: 我的 (or 我 with a question about a value) and an attribute of
# their account, whatever words stand between ("我的风险等级是C几", "我名下绑了几张银行卡",
# "我现在测出来是几级"): only a person, looking at the account, can answer it. A how-to that
# merely starts with 我 ("我忘记密码了怎么办", "我的手机号换了怎么改") is still the article's.
_ACCOUNT_ATTR = (
    r"(?:风险等级|风险承受|承受能力|风险测评|测评|等级|级别|份额|持仓|持有|收益|盈亏|亏损|亏了|赚了"
    r"|订单|交易记录|记录|流水|银行卡|卡号|卡|余额|资产|账户|帐户|分红|定投|扣款|手机号|密码"
    r"|基金|钱|款)"
)
_MY_DATA = re.compile(r"我的.{0,8}?" + _ACCOUNT_ATTR)
_ME_DATA = re.compile(r"我.{0,8}?" + _ACCOUNT_ATTR)
_VALUE_ASK = re.compile(
    r"是多少|多少|是几|几[级张个号笔份次]|[a-z]几|是什么|是啥|什么等级|什么级别|哪一?[级张个笔只类]"
    r"|了吗|了没|没有|成功|对不对|对吗|不对|查一下|查下|看一下|看下|看看|为什么|怎么回事|还有"
)
_HOW_TO = re.compile(
    r"怎么(?:办|操作|弄|改|修改|更改|设置|查|查看|看|开通|开|绑定?|解绑|换|更换|重置|找回|赎回|买|卖"
    r"|取消|调整|做|申请|处理|填|登录|注销|转换|暂停|停止|恢复|提高|降低)(?!了)"
    r"|如何|怎样(?!了)|咋(?:办|弄|整|改|操作)|在哪|哪里|去哪|流程|步骤|会怎样|会不会"
    r"|我(?:想|要|需要|打算)[^，,。？?]{0,4}(?:调整|修改|改|更改|设置|开通|取消|更换|换|绑定|解绑"
    r"|赎回|卖|买|申购|转换|重置|找回|注销|销户|重新|重做|做)"
)


# The customer's own things without 我 (round 9): the state of a specific order, plan, card,
# account, share or sum now or in the past, asked as a yes/no or status question ("昨天买的份额
# 确认了吗", "定投计划还在执行吗", "帮我查查昨天那笔申购成功没有"): only the account can say, so
# a person. A rule question about such things in general ("赎回一般几天到账", "申购后多久确认")
# is still the article's. The words come from bot_tune's and bot_test's questions only.
_THING = (
    r"(?:订单|申购|认购|赎回|买的|购买|卖的|定投|计划|转换|划款|转账|汇款|银行卡|卡|账户|帐户|账号"
    r"|份额|钱|款|扣款|到账|分红|基金|交易|那笔|这笔)"
)
_STATE_ASK = re.compile(
    r"了吗|了没|(?<!有)没有(?=$|[？?，,。！!\s]|呢|啊|呀)|还在.{0,8}吗|成功(?:了|没)|到了吗|到没到|还有效|还能用|是不是已经"
    r"|已经.{0,6}了吗|还没"
)
_STATE = re.compile(
    f"{_THING}.{{0,12}}?(?:{_STATE_ASK.pattern})|(?:{_STATE_ASK.pattern}).{{0,6}}?{_THING}"
)
# "How long does it usually take", "how do I": the rule, not this customer's order. 怎么 that
# asks why ("怎么还没到账") is a status question, not a how-to.
_GENERAL = re.compile(
    r"一般|通常|多久|几天|多长时间|什么时候会|怎么(?![还没不])|如何|能不能|可以吗"
)


def own_state(simple: str) -> bool:
    """A yes/no or status question about the state of the customer's own thing, without 我
    (rule 8): "昨天买的份额确认了吗", not "申购一般多久确认"."""
    low = simple.lower()
    return bool(_STATE.search(low)) and not _GENERAL.search(low)


def personal_data(simple: str) -> bool:
    """A question about this customer's own account (streams/bot/policy.py rule 8)."""
    low = simple.lower()
    mine = _MY_DATA.search(low) or (_ME_DATA.search(low) and _VALUE_ASK.search(low))
    if bool(mine) and not (_HOW_TO.search(low) and not _VALUE_ASK.search(low)):
        return True
    return own_state(low)


# Someone else in the customer's account: a person, at once (fraud, a stolen phone).
_SECURITY = re.compile(r"被(?:别人|人|盗)|盗用|冒用|盗刷|冒充|不是我本人|不是本人操作|陌生人")
# A figure the customer disputes ("领先成长C的净值算错了吧"): answering with the same figure
# again is the wrong answer; it is a complaint about our data, for a person.
_DISPUTE = re.compile(r"算错|搞错|弄错|有误|对不上|不准确|不对吧|不对啊|不对劲|是不是错")


# "What suits me", "recommend me a fund": a recommendation, under the suitability rules.
_RECOMMEND = re.compile(
    r"适合我|给我推荐|推荐(?:一|几)?[只个款]?|买(?:什么|哪只|哪个|哪些)基金|有(?:什么|哪些).{0,6}基金.{0,4}(?:可以买|能买|适合)"
)
RECOMMEND_MAX = 5
# "Where is my redemption", "has my purchase been confirmed": the customer's own order.
_ORDER_Q = re.compile(
    r"(?:我的|我.{0,6}(?:买|赎回|申购|卖)的).{0,8}(?:赎回|申购|定投|订单|基金|钱|款)?.{0,10}"
    r"(?:到账|到了|到哪|进度|状态|确认|成功|怎么样|多久|什么时候|还没)"
    r"|(?:赎回|申购|订单).{0,6}(?:到哪一步|进度|状态|到账了吗|确认了吗|成功了吗)"
)
_KIND_WORDS = (
    ("redemption", ("赎回", "卖", "到账", "钱", "款")),
    ("plan", ("定投",)),
    ("subscription", ("申购", "买", "确认", "份额")),
)
ASSESS_LINK = {"label": "去测评", "url": "rtfund://account/risk-assessment"}

# A figure the customer wants (how much, which rank): only a record can give it, never an article.
_FIGURE = re.compile(r"多少|几何|排名|排第几|涨了|跌了|收益率")
# What a NAV record answers; anything else about a named fund (its yield, rank, size,
# manager, holdings) is not in the record.
_NAV_WORDS = re.compile(r"净值|nav", re.IGNORECASE)
# A NAV of another day than the latest, or a figure over time: the record holds only the
# latest one.
_NAV_DAY = re.compile(
    r"上周|上个?月|上一?个?交易日|前天|昨天|周[一二三四五六日天]|星期|礼拜|\d+月\d+[日号]"
    r"|\d{4}[-/.]\d{1,2}|历史|去年|年初|那天|当天"
    # a NAV other than the latest one: its highest, lowest, average, or over a period
    r"|最高|最低|以来|平均|高点|低点|涨幅|跌幅|走势|区间|年|月"
)
# English dates and periods ("on Nov 1st", "yesterday", "11/01", "YTD"): the same as above.
_NAV_DAY_EN = re.compile(
    r"(?<![a-z])(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s*\d"
    r"|\d{1,2}(?:st|nd|rd|th)?\s*(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
    r"|(?<![a-z])(?:yesterday|last|previous|prior|past|ago|since|history|historical|ytd|mtd"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday|week|month|year|inception"
    r"|highest|lowest|high|low|average|trend|on|at|as of)(?![a-z])"
    r"|\d{1,4}\s*[-/.]\s*\d{1,2}(?:\s*[-/.]\s*\d{1,4})?",
    re.IGNORECASE,
)
# What a question for the latest unit NAV holds besides the fund (its name, code and class):
# the words that plainly ask for that figure, taken from the answerable NAV questions of
# bench/data/bot_tune.jsonl and bot_test.jsonl, and the parts of a fund's name a customer
# adds or drops (混合, 主题基金). A NAV question with anything else left (累计, 估值, 涨了,
# 收益, 排名, a date in any language) asks for something the record does not say as asked,
# and goes to a person: a whitelist, because every clean set found a new word the list of
# what to refuse lacked (最高, 以来, then 累计, "on Nov 1st").
_NAV_PLAIN = re.compile(
    "|".join(
        sorted(
            (
                "单位净值|净值|最新|今天|今日|现在|是多少钱|是多少|多少钱|多少|一份|查一下|查下"
                "|查询|查|一下|请问|帮我|能告诉我|告诉我|混合|债券|指数|股票|主题|基金|型|lof|类"
                "|份额|的|了"
                # greetings and polite particles
                "|你好|您好|喂|请|麻烦|谢谢|亲|呀|啊|吗|呢|哦|吧|嘛|啦|呐|呗|哈"
            ).split("|"),
            key=len,
            reverse=True,
        )
    )
    + r"|(?<![a-z])(?:currently|current|latest|please|what's|today|price|whats|what|unit|the"
    r"|nav|now|pls|for|of|is|'s)(?![a-z])"
    r"|[a-z](?:类|份额)|[\s?？!！.。,，、:：~～()（）]+"
)
_CODE6 = re.compile(r"(?<!\d)\d{6}(?!\d)")


def nav_rest(text: str) -> str:
    """What is left of a NAV question once the fund and the plain words asking for its latest
    unit NAV are taken out: "" for "领先成长A最新净值是多少？", "累计" for "领先成长A累计净值多少"."""
    low = list(to_simplified(text).lower())
    for a, b in fund_spans(text):
        low[a:b] = " " * (b - a)
    return _NAV_PLAIN.sub("", _CODE6.sub(" ", "".join(low)))


# Asking what a figure means, not for a figure: an article, not a record.
_CONCEPT = re.compile(
    r"什么意思|啥意思|是什么|怎么算|怎么看|怎么计算|区别|含义|怎么理解|如何理解|怎样理解|指的是|指什么"
    r"|what\s+(?:does|do|is)\s+.{1,40}?\s+mean|meaning\s+of|(?<![a-z])define(?![a-z])|definition",
    re.IGNORECASE,
)


# Where a question can end with no mark after it, before another one (_split_asking): 吗, 呢,
# and 多少 that is not 多少钱 / 多少天 / 多少份….
_ASK_END = re.compile(r"吗|呢|多少(?![钱个天份元块次年月日号笔只%％])")


# Products and platforms that are not ours: our articles describe our app and our funds, so a
# question about them gets a person (a fund of another company that is in our catalogue is
# replaced by normalize() before this runs, so its NAV is still answered).
_ELSEWHERE = re.compile(
    r"华夏|易方达|广发|南方基金|嘉实|博时|汇添富|富国|天弘|招商|工银|建信|中欧|兴全|兴证全球|景顺"
    r"|鹏华|交银|银华|大成|国泰|华安|诺安|万家|前海开源|余额宝|支付宝|蚂蚁|天天基金|理财通|京东金融"
    r"|银行理财|理财产品|股票账户|股票怎么|可转债|国债|逆回购|期货|保险|信用卡|lof|fof|养老"
)
# Where one message asks several things: an answer to one would leave the others unanswered.
_CLAUSES = re.compile(r"[?？;；。!！\n]+|另外|还有|顺便|而且|以及|同时|再问|并且")
# A comma starts a new question when what follows it asks something ("开户要什么材料，身份证
# 过期了怎么更新"); otherwise it is the same question going on ("定投扣款日我卡里没钱，会怎样").
_COMMA = re.compile(r"[,，、]+")
_ASKS = re.compile(
    r"吗|么|怎|如何|多少|几|哪|什么|啥|咋|是否|能否|可否|有没有|能不能|会不会|要不要|为何|可以不"
)

# The fund company whose funds these are: a record names its manager (`manager`, docs/bot.md);
# one that does not is ours when its name starts with our name, as every one of ours does.
HOUSE = "融通"


def ours(rec: dict[str, Any]) -> bool:
    """A fund we manage (rule 10: of another company's fund only the NAV is answered)."""
    return str(rec.get("manager") or rec.get("name") or "").startswith(HOUSE)


# Article answers by evidence (rule 14): every word of the question must be found in the
# article the bot gives (its title, sample questions, intents or body: what kbsearch indexes)
# or be one of these generic question words, which ask how, when, where or how long without
# saying about what. Taken from the answerable article questions of bench/data/bot_tune.jsonl
# and bot_test.jsonl (the words they use that their article does not hold); none from a fresh
# set. Anything else ("材料" beside an ID-renewal article, "开" beside the 定投-change one) is a
# question the article does not answer.
GENERIC_WORDS = frozenset(
    (
        "需要 要 需 操作 操作步骤 步骤 流程 方法 办法 具体 一般 大概 大约 知道 想 想要 打算 意思 理解"
        " 区别 一样 不一样 不同 为啥 怎么回事 回事 哪个 哪种 哪天 哪儿 几天 几次 几个 多长 多长时间"
        " 长时间 多久 时候 什么时候 页面 准备 做 用 到 上 里 去 来 能 会 可以 可不可以 能不能 不能"
        " 会不会 不会 要不要 不要 是否 有没有 吗 一次 每个 分别 还是 不了 之后 以后 前 后 点 提示"
        " 请问 麻烦 一下 下 个 该 应该 得 行 行不行 怎么样 正常 情况 问题 处理 搞 弄 办"
    ).split()
)
# A word no article is indexed by ("罚款", "属于", "要求") cannot point to any article: it is
# left to the coverage floor, where it weighs as much as the rarest word of the base. True
# makes such a word count against the article too (unless jieba cut it across two words and
# none of its characters is new): no wrong answer fewer on any set, 2 to 14 right answers fewer
# on each set (docs/bot.md).
STRICT_EVIDENCE = False
# What jieba cuts across two words ("定投能设吗" -> 投能, "我想开个定投" -> 想开):
# a token none of whose characters is new (each in the article or one of these) is accounted.
GENERIC_CHARS = frozenset(
    "个能是想要会的了吗呢吧不没一下做用到上里去来哪几多么啥咋请把给让我你还再就都也先后得该交"
)
# The words that tell sibling articles apart (articles sharing an intent: 定投 set-up vs
# change): starting something versus changing or stopping it. An article takes the kinds its
# title and sample questions use; a question using a kind that a sibling takes and the chosen
# article does not is the sibling's (or both), never the chosen one's. From bot_tune and
# bot_test's 定投 questions (开个, 开通, 设置, 能设; 改成, 修改, 换, 暂停, 停一下, 终止).
_ACTION_KINDS = (
    (
        "start",
        re.compile(
            r"(?<!打)开(?![户始心放盘头])|设置|设定|(?<![假建])设(?![备])|新建|新增|创建|建立"
            r"|(?<![么咋])办(?!法)|开通"
        ),
    ),
    ("change", re.compile(r"改|变更|调整|暂停|终止|停|取消|撤销|(?<!交)换")),
)


@dataclass
class Memory:
    """What the bot keeps on the conversation hash between turns (session/lua/bot.lua)."""

    handed_off: bool = False
    turns: int = 0
    unhelpful: int = 0
    last_intent: str = ""
    given: list[str] = field(default_factory=list)  # article ids / fund codes already given


@dataclass(frozen=True)
class Answer:
    text: str
    intent: str
    sources: list[dict[str, Any]]
    action: dict[str, str] | None = None
    memory: Memory = field(default_factory=Memory)
    products: list[dict[str, str]] = field(
        default_factory=list
    )  # a recommendation's [{code, risk}]
    # A recommendation (listed or refused): what cs.audit.v1 records.
    recommendation: dict[str, Any] | None = None
    subscribe: str | None = None  # an order id whose later status changes this conversation hears


@dataclass(frozen=True)
class Handoff:
    reason: str  # customer_request, complaint, emotion, unhelpful, not_confident, …
    intent: str


Decision = Answer | Handoff


def margin(analysis: dict[str, Any]) -> float:
    scores = sorted((analysis.get("scores") or {}).values(), reverse=True)
    if len(scores) < 2:
        return float(analysis.get("confidence") or 0.0)
    return float(scores[0] - scores[1])


def _funds(analysis: dict[str, Any]) -> list[str]:
    ents = analysis.get("entities") or {}
    codes = [f.get("code") for f in ents.get("funds") or [] if f.get("code")]
    codes += list(ents.get("fund_codes") or [])
    return list(dict.fromkeys(c for c in codes if c))


def fund_codes(analysis: dict[str, Any]) -> list[str]:
    """The fund codes a message names (the stage fetches their records)."""
    return _funds(analysis)


def nav_text(rec: dict[str, Any]) -> str:
    nav = rec["nav"]
    sample = "（样例数据，非真实行情）" if rec.get("sample") and "样例" not in nav["source"] else ""
    return (
        f"{rec['name']}（{rec['code']}）单位净值 {nav['value']:.4f} 元，"
        f"净值日期 {nav['date']}，数据来源：{nav['source']}{sample}。"
        "基金过往业绩不代表未来表现，投资有风险。"
    )


def decide(
    analysis: dict[str, Any],
    text: str,
    memory: Memory,
    index: Index,
    funds: dict[str, dict[str, Any]],
    now_ms: int,
    channel: str,
    th: Thresholds = THRESHOLDS,
    customer: dict[str, Any] | None = None,
    catalogue: list[dict[str, Any]] | None = None,
    orders: list[dict[str, Any]] | None = None,
) -> Decision:
    """`customer`: the customer view of the message (risk_tolerance, risk_assessed_at);
    `catalogue`: every fund record, given when the message may ask for a recommendation;
    `orders`: a verified customer's orders (newest first), given when it may ask about one."""
    intent = str(analysis.get("intent") or "unknown")
    category = str(analysis.get("category") or "unclear")
    if analysis.get("wants_human") or intent == "human_request":
        return Handoff("customer_request", intent)
    if category == "complaint" or intent.startswith("complaint") or intent == "suggestion":
        return Handoff("complaint", intent)
    if analysis.get("anger") or analysis.get("anxiety") or analysis.get("sentiment") == "negative":
        return Handoff("emotion", intent)
    unhelpful = memory.unhelpful
    if memory.turns and (_NOT_HELPED.search(text) or intent == memory.last_intent):
        unhelpful += 1
    if unhelpful >= UNHELPFUL_LIMIT:
        return Handoff("unhelpful", intent)
    if _NOT_HELPED.search(text):
        return Handoff("unhelpful", intent)
    if _ORDER_Q.search(text) and orders is not None:
        return order_status(analysis, text, orders, funds, now_ms, intent, memory, unhelpful)
    if _RECOMMEND.search(text) and catalogue is not None:
        return recommend(customer or {}, catalogue, now_ms, intent, memory, unhelpful)
    if _SECURITY.search(text):
        return Handoff("security", intent)
    if _DISPUTE.search(to_simplified(text)):
        return Handoff("disputed", intent)
    if intent not in ANSWERABLE or _PERSONAL.search(text) or personal_data(to_simplified(text)):
        return Handoff("out_of_scope", intent)
    conf = float(analysis.get("confidence") or 0.0)
    iconf = float(analysis.get("intent_confidence") or 0.0)
    if conf < th.category or iconf < th.intent or margin(analysis) < th.margin:
        return Handoff("not_confident", intent)
    if any(c not in funds for c in _funds(analysis)):
        return Handoff("unknown_fund", intent)  # a code or name we hold no record of
    if (analysis.get("entities") or {}).get("unknown_share_classes"):
        # "新蓝筹C": a class the fund does not have; its other class is not what was asked.
        return Handoff("unknown_fund", intent)
    if _ELSEWHERE.search(normalize(text)):
        return Handoff("out_of_scope", intent)
    simple = to_simplified(text)
    query = without_funds(text)
    if several_questions(query, index, channel, th) or nav_and_more(query):
        return Handoff("several_questions", intent)

    def remember(given: str) -> Memory:
        return Memory(
            turns=memory.turns + 1,
            unhelpful=unhelpful,
            last_intent=intent,
            given=[*memory.given, given],
        )

    codes = _funds(analysis)
    concept = not codes and _CONCEPT.search(simple)
    if intent in FUND_INTENTS and (codes or _FIGURE.search(simple)) and not concept:
        if not codes:
            return Handoff("ambiguous_fund", intent)  # "今天净值多少": of which fund?
        if not _NAV_WORDS.search(simple):
            return Handoff("out_of_scope", intent)  # its yield, rank, size: not in the record
        if _NAV_DAY.search(simple) or _NAV_DAY_EN.search(simple):
            return Handoff("nav_date", intent)  # "上周五的净值": not the one we hold
        if len(codes) != 1:
            return Handoff("ambiguous_fund", intent)
        if nav_rest(text):
            return Handoff("nav_other", intent)  # "累计净值", "估值": not the latest unit NAV
        rec = funds.get(codes[0])
        if rec is None:
            return Handoff("unknown_fund", intent)
        if not nav_is_current(rec["nav"]["date"], now_ms, rec.get("type") or ""):
            return Handoff("stale_nav", intent)
        if f"fund:{rec['code']}" in memory.given:
            return Handoff("unhelpful", intent)
        return Answer(
            nav_text(rec),
            intent,
            [{"kind": "fund", "id": rec["code"], "date": rec["nav"]["date"]}],
            memory=remember(f"fund:{rec['code']}"),
        )
    if any(not ours(funds[c]) for c in codes if c in funds):
        # Another company's fund in our catalogue: its NAV is ours to give (above), nothing
        # else is: our fee, purchase and redemption articles describe our funds and our app.
        return Handoff("other_manager", intent)
    if codes and intent not in FUND_GENERIC_INTENTS:
        return Handoff("fund_specific", intent)
    hits = [
        h
        for h in index.search(query, 5, channel=channel, intents=[intent])
        if f"kb:{h.id}" not in memory.given
    ]
    if not hits or hits[0].coverage < th.coverage:
        # Asked again and nothing new to say: that turn did not help either.
        return Handoff("unhelpful" if unhelpful else "no_article", intent)
    if len(hits) > 1 and (
        hits[1].score > th.runner_up * hits[0].score or hits[1].coverage >= hits[0].coverage
    ):
        # The runner-up is as good a match, or holds every word the best one does: the
        # question's words do not tell the two apart ("定投怎么弄": set-up or change?).
        return Handoff("ambiguous_article", intent)
    if th.agree:
        best = index.search(query, 1, channel=channel)
        if best and best[0].id != hits[0].id and best[0].coverage > hits[0].coverage:
            return Handoff("ambiguous_article", intent)
    # The article must account for the whole question (a whitelist, like the NAV's).
    if clause_not_covered(query, hits[0].id, index):
        return Handoff("several_questions", intent)  # "开户要什么材料；身份证过期了怎么更新"
    if sibling_conflict(query, hits[0].id, index, channel):
        return Handoff("ambiguous_article", intent)  # "怎么开个定投计划" is not 定投's change
    if unsupported(query, hits[0].id, index):
        return Handoff("unsupported", intent)  # words the article does not speak to
    art = index.articles[hits[0].id]
    body = str(art["body"])
    extra = ""
    # One fund's own fee or T+n is added only when one fund (one share class) is named: with
    # "A和C" the first class's figures would answer for both.
    one = codes[0] if len(codes) == 1 else None
    if intent == "fees" and one in funds and funds[codes[0]].get("fees"):
        rec = funds[codes[0]]
        extra = (
            f"\n{rec['name']}："
            + "；".join(f"{k} {v}" for k, v in rec["fees"].items())
            + f"（{rec['nav'].get('source', '')}）"
        )
    elif intent == "redemption_arrival" and one in funds:
        rec = funds[codes[0]]
        if rec.get("redemption_arrival"):
            extra = f"\n{rec['name']}为{rec.get('type', '')}基金，赎回一般{rec['redemption_arrival']}个工作日到账。"
    sources: list[dict[str, Any]] = [
        {"kind": "article", "id": art["id"], "version": art.get("version"), "title": art["title"]}
    ]
    if extra:
        rec = funds[codes[0]]
        sources.append({"kind": "fund", "id": rec["code"], "date": rec["nav"]["date"]})
    action = art.get("action")
    link = f"\n{action['label']}：{action['url']}" if action else ""
    return Answer(
        f"{body}{extra}{link}\n（来自知识库：{art['title']}）",
        intent,
        sources,
        action=action,
        memory=remember(f"kb:{art['id']}"),
    )


def several_questions(text: str, index: Index, channel: str, th: Thresholds) -> bool:
    """Two or more clauses, each with an article of its own above the floor, and not the same
    one ("定投怎么设置？最低多少？" is one question; "赎回多久到账？另外定投怎么改" is two)."""
    clauses = [c for c in _CLAUSES.split(text) if c.strip()]
    if len(clauses) < 2:
        return False
    tops = set()
    for c in clauses:
        hit = index.search(c, 1, channel=channel)
        if hit and hit[0].coverage >= th.coverage:
            tops.add(hit[0].id)
    return len(tops) > 1


def unsupported(query: str, aid: str, index: Index) -> list[str]:
    """The words of `query` (simplified, lower-cased) that article `aid` does not account for:
    not among its indexed words or in its text ("买" in 买入), not generic question words
    (GENERIC_WORDS), not a word of starting or changing when the article is about that kind
    (改成 beside 分红方式及修改), not part of an accounted word (续费 of 手续费). A word no article
    is indexed by is left to the coverage floor (STRICT_EVIDENCE)."""
    terms, text = index.terms(aid), index.text(aid)
    kinds = _article_kinds(index, aid)

    def found(t: str) -> bool:
        return (
            t in terms
            or t in GENERIC_WORDS
            or t in text
            or bool(action_kinds(t) and action_kinds(t) <= kinds)
        )

    # The characters of the query that accounted words cover: jieba's search mode also
    # emits the parts of a long word (手续费 -> 手续, 续费; 记不住 -> 不住), and a part of an
    # accounted word (or of a customer's word whose synonym is accounted) is accounted.
    low = query.lower()
    mask = [False] * len(low)
    for w in [*tokens(query), *(k for k, v in SYNONYMS.items() if k in low and found(v))]:
        if not found(SYNONYMS.get(w, w)):
            continue
        for m in re.finditer(re.escape(w), low):
            mask[m.start() : m.end()] = [True] * len(w)
    out = []
    for t in tokens(query):
        if found(t):
            continue
        if any(all(mask[m.start() : m.end()]) for m in re.finditer(re.escape(t), low)):
            continue
        if not index.known(t) and (
            not STRICT_EVIDENCE or all(c in text or c in GENERIC_CHARS for c in t)
        ):
            continue
        out.append(t)
    return out


def action_kinds(text: str) -> set[str]:
    """Whether `text` (simplified) speaks of starting something or of changing or stopping it."""
    return {kind for kind, rx in _ACTION_KINDS if rx.search(text)}


def _article_kinds(index: Index, aid: str) -> set[str]:
    a = index.articles[aid]
    return action_kinds(
        to_simplified(" ".join([a.get("title") or "", *(a.get("questions") or [])]))
    )


def sibling_conflict(query: str, aid: str, index: Index, channel: str) -> bool:
    """The question's distinguishing words (start vs change) point to a sibling of `aid`
    (an article sharing its intent) that `aid` itself does not cover."""
    asked = action_kinds(query)
    if not asked:
        return False
    foreign = asked - _article_kinds(index, aid)
    return any(foreign & _article_kinds(index, s) for s in index.siblings(aid, channel))


def _asks(part: str) -> bool:
    """A part that asks something: a question word, or a request for a figure or NAV."""
    return bool(_ASKS.search(part) or _FIGURE.search(part))


def _split_asking(part: str) -> list[str]:
    """`part` split where one question ends and another begins with no mark between (round 9):
    at whitespace, and after 吗 / 呢 / 多少, when both sides ask something ("领先成长净值多少
    赎回费多少"); a side that asks nothing ("领先成长A 净值多少") stays with its neighbour."""
    out: list[str] = []
    for chunk in part.split():
        start = 0
        for m in _ASK_END.finditer(chunk):
            if _asks(chunk[start : m.end()]) and _asks(chunk[m.end() :]):
                out.append(chunk[start : m.end()])
                start = m.end()
        for piece in (chunk[start:],) if start else (chunk,):
            if out and not (_asks(out[-1]) and _asks(piece)):
                out[-1] += " " + piece
            else:
                out.append(piece)
    return out


def question_parts(query: str) -> list[str]:
    """The clauses of `query`: split at ？！；。, 另外 / 还有…, at commas, and between two asking
    parts at whitespace or at nothing (_split_asking)."""
    return [
        q
        for c in _CLAUSES.split(query)
        for p in _COMMA.split(c)
        for q in _split_asking(p)
        if q.strip()
    ]


def nav_and_more(query: str) -> bool:
    """A request for a NAV and any other question in one message (round 9): two questions
    ("领先成长净值多少 赎回费多少"), whatever the intent."""
    parts = question_parts(query)
    nav = [p for p in parts if _NAV_WORDS.search(p) and _FIGURE.search(p)]
    return bool(nav) and any(_asks(p) for p in parts if p not in nav)


def clause_not_covered(query: str, aid: str, index: Index) -> bool:
    """Several clauses (split at ？！；。, 另外 / 还有…, at commas, and between two asking parts
    at whitespace or at nothing), one of which asks something (a question word) with words
    article `aid` does not account for."""
    parts = question_parts(query)
    if len(parts) < 2:
        return False
    return any(_asks(p) and unsupported(p, aid, index) for p in parts)


def looks_like_order_question(text: str) -> bool:
    return bool(_ORDER_Q.search(text))


def order_status(
    analysis: dict[str, Any],
    text: str,
    orders: list[dict[str, Any]],
    funds: dict[str, dict[str, Any]],
    now_ms: int,
    intent: str,
    memory: Memory,
    unhelpful: int,
) -> Decision:
    """The order the customer means: one it names, else its newest of the kind the words say."""
    named = set((analysis.get("entities") or {}).get("order_ids") or [])
    pick = [o for o in orders if o["order_id"] in named]
    if not pick:
        kinds = [k for k, words in _KIND_WORDS if any(w in text for w in words)]
        pick = [o for o in orders if not kinds or o["kind"] == kinds[0]]
    if not pick:
        return Handoff("no_order", intent)
    order = pick[0]
    if order["status"] == "failed":
        return Handoff("order_failed", intent)  # a person looks into it (cs.tasks.v1)
    fund = funds.get(order["fund_code"])
    return Answer(
        progress.status_answer(order, fund, now_ms),
        intent,
        [{"kind": "order", "id": order["order_id"], "status": order["status"]}],
        memory=Memory(
            turns=memory.turns + 1,
            unhelpful=unhelpful,
            last_intent=intent,
            given=[*memory.given, f"order:{order['order_id']}"],
        ),
        subscribe=order["order_id"],
    )


def looks_like_recommendation(text: str) -> bool:
    return bool(_RECOMMEND.search(text))


def recommend(
    customer: dict[str, Any],
    catalogue: list[dict[str, Any]],
    now_ms: int,
    intent: str,
    memory: Memory,
    unhelpful: int,
) -> Answer:
    """Only products at or below the customer's risk tolerance, with the risk notice; none
    without a valid assessment (session/suitability.py). Always audited."""
    status, funds = suitability.suitable(customer, catalogue, now_ms)
    tol, assessed = customer.get("risk_tolerance"), customer.get("risk_assessed_at")
    mem = Memory(
        turns=memory.turns + 1,
        unhelpful=unhelpful,
        last_intent=intent,
        given=[*memory.given, "recommendation"],
    )
    if status != "valid":
        why = "已过期" if status == "expired" else "尚未完成"
        login = "" if customer.get("identified") else "请先登录账户，并"
        text = (
            f"为您推荐产品前需要有效的风险测评（您的测评{why}，有效期一年）。"
            f"{login}在APP“我的-风险测评”中完成测评后，即可查看适合您的产品。"
            f"\n{ASSESS_LINK['label']}：{ASSESS_LINK['url']}"
        )
        products: list[dict[str, str]] = []
        sources: list[dict[str, Any]] = [{"kind": "suitability", "id": status}]
    else:
        funds = sorted(funds, key=lambda f: (-int(str(f["risk"])[1:]), f["code"]))[:RECOMMEND_MAX]
        until = (
            dt.date.fromisoformat(str(assessed))
            + dt.timedelta(days=suitability.ASSESSMENT_VALID_DAYS)
        ).isoformat()
        lines = [
            f"{n}. {f['name']}（{f['code']}，{f['risk']}，{f.get('type', '')}）"
            + ("（样例数据）" if f.get("sample") else "")
            for n, f in enumerate(funds, 1)
        ]
        top = "R" + str(tol)[1:]
        text = (
            f"根据您的风险测评结果（{tol}，{assessed} 测评，有效至 {until}），"
            f"以下产品的风险等级不超过{top}：\n" + "\n".join(lines) + f"\n{suitability.RISK_NOTICE}"
            if lines
            else f"目前没有风险等级不超过{top}的产品可以推荐。{suitability.RISK_NOTICE}"
        )
        products = [{"code": f["code"], "risk": f["risk"]} for f in funds]
        sources = [{"kind": "suitability", "id": str(tol), "date": str(assessed)}] + [
            {"kind": "fund", "id": f["code"], "date": f["nav"]["date"]} for f in funds
        ]
    return Answer(
        text,
        intent,
        sources,
        action=None if status == "valid" else ASSESS_LINK,
        memory=mem,
        products=products,
        recommendation={
            "customer_id": customer.get("id"),
            "risk_tolerance": tol,
            "risk_assessed_at": assessed,
            "assessment": status,
            "products": products,
        },
    )


def summary(texts: list[str], bot_texts: list[str], reason: str, intent: str) -> str:
    """One line for the agent: what the customer asked, what the bot said, why it handed off."""
    asked = " / ".join(t[:60] for t in texts[-3:]) or "（无文字）"
    said = f"；机器人已答 {len(bot_texts)} 次" if bot_texts else ""
    return f"客户：{asked}{said}；转人工原因：{REASONS.get(reason, reason)}；意图：{intent}"


REASONS = {
    "customer_request": "客户要求人工",
    "complaint": "投诉或建议",
    "emotion": "客户情绪激动或焦虑",
    "unhelpful": "机器人回答未解决问题",
    "not_confident": "机器人没有把握",
    "out_of_scope": "机器人不处理此类问题",
    "ambiguous_fund": "基金不明确",
    "unknown_fund": "无该基金数据",
    "stale_nav": "净值数据不是最新",
    "no_article": "知识库无对应答案",
    "nav_date": "客户问的是其他日期的净值",
    "nav_other": "客户问的不是最新单位净值（如累计净值、估值、涨跌）",
    "fund_specific": "问的是某只基金的具体情况",
    "security": "疑似账户安全问题",
    "disputed": "客户质疑数据有误",
    "ambiguous_article": "知识库有多篇相近答案，无法确定",
    "unsupported": "知识库文章未涵盖问题的全部内容",
    "other_manager": "问的是其他基金公司的产品（只答净值）",
    "several_questions": "一条消息里有多个问题",
    "no_text": "无文字内容",
    "no_order": "未找到客户的相关订单",
    "order_failed": "订单未成功，需人工跟进",
}

HANDOFF_NOTICE = "正在为您转接人工客服，请稍候，您无需重复描述问题。"
