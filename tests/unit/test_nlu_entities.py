"""Entities and personal data found in customer messages."""

from streams.nlu.entities import extract


def test_fund_name_code_and_share_class():
    e = extract("融通领先成长混合A今天净值多少？")
    assert e["funds"] == [{"code": "161606", "name": "融通领先成长混合A", "share_class": "A"}]
    c = extract("领先成长C类净值多少")
    assert [f["code"] for f in c["funds"]] == ["016264"]
    assert c["funds"][0]["share_class"] == "C"


def test_abbreviation_and_traditional_characters():
    assert [f["code"] for f in extract("領先成長今日淨值")["funds"]] == ["161606"]
    assert [f["code"] for f in extract("易支付七日年化多少")["funds"]] == ["161608"]


def test_six_digit_codes_amounts_dates_orders():
    e = extract("11月18日赎回了161606的2万份，订单号20241118000123，还想再买50000元")
    assert e["fund_codes"] == ["161606"]
    assert e["funds"][0]["code"] == "161606"
    assert "2万份" in e["amounts"] and "50000元" in e["amounts"]
    assert "11月18日" in e["dates"]
    assert e["order_ids"] == ["20241118000123"]


def test_unknown_code_is_kept_but_not_a_catalogue_fund():
    e = extract("帮我查下999999")
    assert e["fund_codes"] == ["999999"]
    assert e["funds"] == []


def test_pii_spans_for_masking():
    text = "我的手机13812345678，身份证110101199003071234，卡号6222021234567890123"
    e = extract(text)
    kinds = [p["kind"] for p in e["pii"]]
    assert kinds == ["phone", "id_card", "bank_card"]
    for p in e["pii"]:
        assert text[p["start"] : p["end"]].strip()
    # digits inside PII are not read as fund codes or amounts
    assert e["fund_codes"] == []
    assert e["amounts"] == []
