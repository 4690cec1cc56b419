"""The understanding stage on clear examples: category, intent, sentiment, `also`, `unclear`."""

import json

import pytest

from streams.nlu import Analysis, Understanding
from streams.nlu.understand import CATEGORIES


@pytest.fixture(scope="module")
def u() -> Understanding:
    return Understanding.load()


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("融通领先成长混合A今天净值多少？", "product"),
        ("七日年化多少", "product"),
        ("赎回的钱什么时候到账", "transaction"),
        ("怎么设置定投", "transaction"),
        ("忘记交易密码了怎么办", "account"),
        ("手机号换了怎么改", "account"),
        ("app一打开就闪退", "technical"),
        ("登不上 一直提示系统繁忙", "technical"),
        ("申购失败了怎么办", "technical"),  # 交易失败 is 技术故障类 in the design document
        ("你们客服态度太差了 我要投诉", "complaint"),
        ("垃圾基金 亏了30% 坑死人了", "complaint"),
    ],
)
def test_category_on_clear_examples(u, text, category):
    a = u.analyze(text)
    assert a.top_category == category
    assert a.category == category


def test_intents(u):
    assert u.analyze("我的基金赎回三天了还没到账").intent == "redemption_arrival"
    assert u.analyze("忘记交易密码了").intent == "password_reset"
    assert u.analyze("今天净值多少").intent == "nav_return"
    assert u.analyze("app登录不了").intent == "login_failure"


def test_complaint_about_redemption_is_also_transaction(u):
    a = u.analyze("赎回一个星期了钱还没到账 你们是骗子吧 我要投诉到证监会")
    assert a.category == "complaint"
    assert "transaction" in a.also
    assert a.sentiment == "negative" and a.anger


def test_sentiment_flags(u):
    calm = u.analyze("请问申购费率是多少")
    assert calm.sentiment == "neutral" and not calm.anger and not calm.anxiety
    assert -0.5 < calm.sentiment_score <= 1.0
    angry = u.analyze("什么垃圾服务 气死我了 我要投诉")
    assert angry.sentiment == "negative" and angry.anger and angry.sentiment_score < -0.5
    anxious = u.analyze("钱赎回了一直没到账 急用钱 怎么办啊")
    assert anxious.sentiment == "negative" and anxious.anxiety


def test_bare_human_request_and_greeting_are_unclear(u):
    a = u.analyze("转人工")
    assert a.category == "unclear" and a.wants_human and a.intent == "human_request"
    assert u.analyze("你好").category == "unclear"
    assert not u.analyze("怎么设置定投").wants_human


def test_threshold_turns_low_confidence_into_unclear(u):
    strict = Understanding(u.bundle, threshold=1.01)
    a = strict.analyze("七日年化多少")
    assert a.category == "unclear"
    assert a.top_category == "product"
    lax = Understanding(u.bundle, threshold=0.0)
    assert lax.analyze("七日年化多少").category == "product"


def test_probabilities_and_serialisation(u):
    a = u.analyze("领先成长C类的赎回费怎么收 我持有了20天")
    assert isinstance(a, Analysis)
    assert abs(sum(a.scores.values()) - 1.0) < 1e-3
    assert a.confidence == pytest.approx(max(a.scores.values()), abs=1e-3)
    assert set(a.scores) >= set(CATEGORIES)
    d = json.loads(json.dumps(a.to_dict(), ensure_ascii=False))
    assert d["entities"]["funds"][0]["code"] == "016264"
    assert set(d["entities"]) == {
        "funds",
        "unknown_share_classes",
        "fund_codes",
        "amounts",
        "dates",
        "order_ids",
        "pii",
    }


def test_batch_matches_single(u):
    texts = ["今天净值多少", "", "登不上", "赎回多久到账 😭😭"]
    batch = u.analyze_batch(texts)
    assert [b.top_category for b in batch] == [u.analyze(t).top_category for t in texts]
    assert batch[1].category == "unclear" or batch[1].confidence < 1.0


def test_load_is_cached():
    assert Understanding.load() is Understanding.load()
