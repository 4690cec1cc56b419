"""The one-message fast path agrees with the batch path, and the realistic eval set stays clean."""

import json

import numpy as np
import pytest

from streams.nlu import Understanding
from streams.nlu.entities import extract
from streams.nlu.understand import CATEGORIES
from training.nlu.evaluate import load_eval
from training.nlu.train import DATA_DIR, split_key

TEXTS = [
    "融通领先成长混合A今天净值多少？",
    "赎回提示系统异常，钱到底去哪了！！",
    "银行卡换了，定投扣款卡怎么换成新卡",
    "转人工",
    "",
    "   ",
    "啊" * 300,  # a character far more often than the sublinear-tf table covers
    "我的手机13812345678，邮箱a.b@example.com，订单号20241118000123",
]


@pytest.fixture(scope="module")
def u() -> Understanding:
    return Understanding.load()


def test_logits_one_equals_batch_row(u):
    """logits_one computes the same TF-IDF dot product as logits_batch, message by message."""
    batch = u.bundle.logits_batch(TEXTS)
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(u.bundle.logits_one(t), batch[i], rtol=1e-4, atol=1e-4)


def test_analyze_equals_analyze_batch(u):
    """analyze(text) returns what analyze_batch([text])[0] returns: labels, flags, entities."""
    for t, b in zip(TEXTS, u.analyze_batch(TEXTS), strict=True):
        a = u.analyze(t)
        assert (a.category, a.top_category, a.intent, a.sentiment) == (
            b.category,
            b.top_category,
            b.intent,
            b.sentiment,
        )
        assert (a.anger, a.anxiety, a.wants_human, a.also) == (
            b.anger,
            b.anxiety,
            b.wants_human,
            b.also,
        )
        assert a.entities == b.entities
        assert a.confidence == pytest.approx(b.confidence, abs=1e-3)


def test_entities_without_digits_still_found():
    """Skipping the digit patterns on digit-free text keeps Chinese amounts, dates, e-mail."""
    e = extract("昨天买了两万元，邮箱是abc@example.com")
    assert "两万元" in e["amounts"]
    assert "昨天" in e["dates"]
    assert [p["kind"] for p in e["pii"]] == ["email"]
    assert e["fund_codes"] == [] and e["order_ids"] == []


def test_realistic_eval_is_independent_and_covers_all_categories():
    """realistic_eval.jsonl parses with the design-document names, covers the five categories,
    labels `negative` on every line, and shares no message with any training corpus."""
    path = DATA_DIR / "realistic_eval.jsonl"
    texts, gold, neg, skipped = load_eval(path)
    assert skipped == 0 and len(texts) >= 300
    assert set(gold) == set(CATEGORIES)
    assert all(n is not None for n in neg)
    train_keys = set()
    for corpus in DATA_DIR.glob("corpus_*.jsonl"):
        for line in corpus.read_text(encoding="utf-8").splitlines():
            if line.strip():
                train_keys.add(split_key(json.loads(line)["text"]))
    assert not [t for t in texts if split_key(t) in train_keys]


def test_segmenter_matches_jieba_on_every_corpus_message():
    """The in-house DAG pass yields exactly jieba.lcut(HMM=False)'s words of two or more
    characters, on every message of every corpus and on edge cases (ASCII runs, placeholders)."""
    from streams.nlu import features

    texts = ["abc def 我的app", "a b c 1 2 3", "", "\r\n基金\r\n", "ETF#C&D.E_F%G-H 融通ⒻⒸ0"]
    for corpus in DATA_DIR.glob("*.jsonl"):
        for line in corpus.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["text"])
    norms = [features.normalize(t) for t in texts]
    assert [features._words(n) for n in norms] == [features._jieba_words(n) for n in norms]


def test_real_eval_sets_are_apart_from_training():
    """The real-text sets (training/nlu/data/real/) parse, cover the five categories, label
    `negative` everywhere, share no message with each other or with any training corpus, and
    each frozen one still has the content it was committed with."""
    import hashlib

    real = DATA_DIR / "real"
    pinned = {
        "atec_test_frozen.jsonl": "153d2f499839b115c45f5ef07922813c0adc9f21913f992e57f8b6f1260a6304",
        "web_test_frozen.jsonl": "5f4fdc92fb2fd9c571d734faa8194ab95f9387d9eae3b5c1e766a46ec45adf0b",
    }
    for name, sha in pinned.items():
        assert hashlib.sha256((real / name).read_bytes()).hexdigest() == sha, name
    train_keys = set()
    for corpus in DATA_DIR.glob("corpus_*.jsonl"):
        for line in corpus.read_text(encoding="utf-8").splitlines():
            if line.strip():
                train_keys.add(split_key(json.loads(line)["text"]))
    seen: set[str] = set()
    for path in sorted(real.glob("*.jsonl")):
        texts, gold, neg, skipped = load_eval(path)
        assert skipped == 0 and set(gold) == set(CATEGORIES)
        assert all(n is not None for n in neg)
        keys = {split_key(t) for t in texts}
        assert not keys & train_keys
        assert not keys & seen
        seen |= keys


def test_traditional_characters_beyond_the_hand_table():
    """OpenCC's character table covers what the hand-written pairs miss (講, 註, 隻, 檔, 寶,
    責), the hand-written pairs still decide where the two differ, and the features of a
    message written in traditional characters are those of its simplified form. Conversion is
    character by character: a phrase rule such as 回覆 -> 回复 is not applied (覆 is simplified
    too)."""
    from streams.nlu.features import _T2S, analyze, to_simplified

    assert to_simplified("講兩句就掛電話，這隻基金註銷帳戶現金寶你們要負責") == (
        "讲两句就挂电话,这只基金注销帐户现金宝你们要负责"
    )
    assert all(to_simplified(t) == s for t, s in _T2S.items())
    assert analyze("這檔基金風險等級多少？講清楚") == analyze("这档基金风险等级多少?讲清楚")
