"""The corpora follow the design document's lists (交易失败 is 技术故障类, 账户绑定 is 交易操作类),
and the shipped model's negative threshold was chosen on real text, never on the frozen set."""

import json

from streams.nlu.model import MODEL_DIR
from training.nlu.relabel import decide, relabel
from training.nlu.train import CALIBRATION_FILES


def test_no_corpus_line_is_left_for_the_rules_to_move():
    """Every training line already carries the label the documented rules give it."""
    assert relabel(write=False) == []


def test_rules_on_the_boundaries():
    """A failed purchase is technical, a rule question about failure is not, a card binding is a
    transaction and a phone-number binding stays account."""

    def row(text: str, category: str) -> dict[str, str]:
        return {"text": text, "category": category, "intent": "purchase"}

    assert decide(row("申购失败了 钱退回来了吗", "transaction")) == (
        "technical",
        "transaction_failure",
    )
    assert decide(row("基金赎回不了 一直报错", "transaction"))[0] == "technical"
    assert decide(row("定投扣款失败会怎么样", "transaction")) is None
    assert decide(row("提示超过单日限额怎么办", "transaction")) is None
    assert decide(row("怎么更换绑定的银行卡", "account")) == ("transaction", "card_binding")
    assert decide(row("绑定的手机号怎么换", "account")) is None
    assert decide(row("银行卡挂失以后怎么换卡", "account")) is None
    assert decide(row("赎回的钱什么时候到账", "transaction")) is None


def test_negative_threshold_comes_from_the_real_dev_set():
    """The artefact records where its negative threshold was chosen: the real dev sets."""
    meta = json.loads((MODEL_DIR / "nlu.json").read_text(encoding="utf-8"))["meta"]
    assert meta["negative_threshold_source"] == " + ".join(str(f) for f in CALIBRATION_FILES)
    assert not any("frozen" in str(f) for f in CALIBRATION_FILES)
    assert 0.2 <= meta["negative_threshold"] <= 0.8
