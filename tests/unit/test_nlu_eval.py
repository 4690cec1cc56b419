"""The keyword baseline as written in the design document, and the eval command."""

import json

from training.nlu import baseline
from training.nlu.cli import eval_main
from training.nlu.evaluate import metrics, parse_category, parse_negative


def test_baseline_is_the_design_document_sketch():
    assert baseline.classify_question("我想查询融通领先成长混合A的年化收益率") == "产品咨询类"
    assert baseline.classify_question("我的基金赎回为什么还没到账") == "交易操作类"
    assert baseline.classify("忘记密码") == "account"
    assert baseline.classify("我要投诉") == "complaint"
    # its known flaw: anything without a keyword is a technical fault
    assert baseline.classify("你好") == "technical"
    # first matching rule wins: a complaint about NAV is filed as a product question
    assert baseline.classify("净值跌成这样 我要投诉") == "product"


def test_parsers_accept_design_names_and_loose_booleans():
    assert parse_category("产品咨询类") == "product"
    assert parse_category("投诉与建议类") == "complaint"
    assert parse_category("technical") == "technical"
    assert parse_category("unclear") is None
    assert parse_category("whatever") is None
    for v in (True, 1, "true", "1", "是"):
        assert parse_negative(v) is True
    for v in (False, 0, "false", "0", "否"):
        assert parse_negative(v) is False
    assert parse_negative(None) is None


def test_metrics_by_hand():
    gold = ["product", "product", "complaint", "technical"]
    pred = ["product", "complaint", "complaint", "technical"]
    m = metrics(gold, pred, [False, None, True, False], [False, True, True, True])
    assert m["accuracy"] == 0.75
    assert m["per_class"]["product"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": 0.6667,
        "support": 2,
    }
    assert m["confusion"]["product"]["complaint"] == 1
    # the line without `negative` is left out: tp=1, fp=1, fn=0
    assert m["negative_n"] == 3 and m["negative_f1"] == 0.6667


def test_eval_cli_json(tmp_path, capsys):
    f = tmp_path / "e.jsonl"
    lines = [
        {"text": "融通领先成长混合A今天净值多少", "category": "产品咨询类", "negative": False},
        {"text": "赎回的钱什么时候到账", "category": "transaction", "negative": "false"},
        {"text": "忘记交易密码了", "category": "账户管理类"},
        {"text": "客服态度太差 我要投诉", "category": "complaint", "negative": 1},
        {"text": "app闪退", "category": "技术故障类", "negative": "是"},
        {"text": "ignored", "category": "???"},
    ]
    f.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\nnot json\n")
    assert eval_main([str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "accuracy",
        "macro_f1",
        "negative_f1",
        "per_class",
        "confusion",
        "messages_per_s",
        "baseline",
    ):
        assert key in out
    for key in ("accuracy", "macro_f1", "negative_f1", "per_class", "confusion", "messages_per_s"):
        assert key in out["baseline"]
    assert out["n"] == 5 and out["skipped"] == 2
    assert out["negative_n"] == 4
    assert out["accuracy"] >= 0.8
    assert set(out["per_class"]) == {"product", "transaction", "account", "complaint", "technical"}


def test_eval_cli_text_report(tmp_path, capsys):
    f = tmp_path / "e.jsonl"
    f.write_text(
        json.dumps({"text": "怎么设置定投", "category": "交易操作类"}, ensure_ascii=False) + "\n"
    )
    assert eval_main([str(f), "--threshold", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "macro-F1" in out and "confusion" in out
    assert eval_main([str(tmp_path / "missing.jsonl")]) == 2


def test_parser_accepts_loose_category_spellings():
    """Hand-made eval files spell the design categories loosely; each maps to its key, and
    labels outside the five categories are still skipped."""
    assert parse_category("投诉建议类") == "complaint"
    assert parse_category("技术故障") == "technical"
    assert parse_category("账户类") == "account"
    assert parse_category("交易类") == "transaction"
    assert parse_category("Product inquiry") == "product"
    assert parse_category("其他") is None
    assert parse_category("unclear") is None


def test_sentiment_label_is_a_fallback_for_the_negative_flag(tmp_path):
    """A line without `negative` but with `sentiment` counts towards the negative-class F1."""
    from training.nlu.evaluate import load_eval

    f = tmp_path / "s.jsonl"
    rows = [
        {"text": "客服态度太差", "category": "投诉与建议类", "sentiment": "负面"},
        {"text": "净值多少", "category": "产品咨询类", "sentiment": "中性"},
        {"text": "怎么定投", "category": "交易操作类"},
    ]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    _, _, neg, _ = load_eval(f)
    assert neg == [True, False, None]
