"""交易失败 is 技术故障类 after the model too (streams/nlu/boundaries.py)."""

from __future__ import annotations

from streams.nlu import boundaries
from streams.nlu.understand import Understanding
from training.nlu import relabel


def test_a_transfer_that_failed_is_a_technical_fault_even_where_the_model_reads_a_transaction() -> (
    None
):
    u = Understanding.load()
    text = "今天转账到银行卡怎么不成功？"
    scores = u.analyze(text).scores
    # The model alone files it under transaction: the rule is what moves it.
    assert max(("transaction", "technical"), key=lambda c: scores[c]) == "transaction"
    a = u.analyze(text)
    assert (a.category, a.top_category, a.intent) == (
        "technical",
        "technical",
        "transaction_failure",
    )
    assert u.analyze_batch([text])[0].category == "technical"


def test_what_a_failure_would_cause_and_a_plain_transaction_question_stay_where_they_are() -> None:
    u = Understanding.load()
    assert not boundaries.names_failure("定投扣款失败会怎么样")
    assert u.analyze("我的基金赎回为什么还没到账").category == "transaction"
    assert u.analyze("赎回怎么操作").category == "transaction"


def test_the_rule_moves_only_transaction_questions() -> None:
    # An eligibility refusal is an account matter (docs/model-card.md), failure word or not.
    a = Understanding.load().analyze("花呗申请失败")
    assert a.category == "account"


def test_training_and_inference_hold_the_corpora_and_the_model_to_one_pattern() -> None:
    assert relabel._FAILED is boundaries.FAILED
    assert relabel._HYPOTHETICAL is boundaries.HYPOTHETICAL
