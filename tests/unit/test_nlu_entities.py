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


def _classes(text: str) -> list[tuple[str, str]]:
    return [(f["code"], f["share_class"]) for f in extract(text)["funds"]]


def test_a_class_letter_after_the_rest_of_a_full_name():
    # "融通新能源" is an alias of the A class; "汽车C" after it is the rest of the name and C.
    assert _classes("融通新能源汽车C单位净值多少") == [("015880", "C")]
    assert _classes("融通新能源车C净值多少") == [("015880", "C")]
    assert _classes("新能源汽车A最新净值是多少") == [("001152", "A")]
    assert _classes("产业趋势臻选股票A最新净值") == [("009350", "A")]


def test_full_width_letters_and_class_words():
    assert _classes("领先成长Ｃ现在净值多少") == [("016264", "C")]
    assert _classes("领先成长c类份额的单位净值") == [("016264", "C")]
    assert _classes("融通债券Ａ的单位净值") == [("161603", "A")]
    assert _classes("领先成长的C类净值") == [("016264", "C")]


def test_several_classes_of_one_fund_are_each_returned():
    assert _classes("领先成长A和C的净值各多少") == [("161606", "A"), ("016264", "C")]
    assert _classes("领先成长C和A哪个净值高") == [("016264", "C"), ("161606", "A")]
    assert _classes("新能源汽车A、C两个份额的净值") == [("001152", "A"), ("015880", "C")]
    assert _classes("融通债券A/C净值各是多少") == [("161603", "A"), ("161613", "C")]
    assert _classes("通瑞债券A跟C哪个净值高") == [("002208", "A"), ("002209", "C")]


def test_a_class_the_fund_does_not_have_is_not_its_other_class():
    e = extract("新蓝筹C类净值多少")
    assert e["funds"] == []
    assert e["unknown_share_classes"] == [{"name": "融通新蓝筹混合", "share_class": "C"}]
    assert extract("领先成长E类净值")["unknown_share_classes"][0]["share_class"] == "E"


def test_letters_that_are_not_share_classes():
    assert _classes("领先成长app怎么买") == [("161606", "A")]
    assert _classes("新蓝筹a股占比多少") == [("161601", "A")]
    assert _classes("融通AI指数净值") == [("161631", "A")]
    assert extract("领先成长净值多少")["unknown_share_classes"] == []


def test_every_traditional_form_of_a_fund_name_finds_the_fund():
    """車, 藍, 籌 were missing from the hand table as 鋒 was (bot_fresh6, bot_fresh7): the shipped
    table (streams/nlu/data/t2s.txt) holds every traditional form of every character in the
    catalogue's names and aliases, so each name written in traditional characters is found."""
    from streams.nlu.features import to_simplified

    assert to_simplified("融通新藍籌 新能源汽車 動力先鋒") == "融通新蓝筹 新能源汽车 动力先锋"
    assert [f["code"] for f in extract("新能源汽車A淨值")["funds"]] == ["001152"]
    assert [f["code"] for f in extract("融通新藍籌淨值")["funds"]] == ["161601"]
    # the hand table's pairs still hold
    assert to_simplified("開戶 帳號 裡面") == "开户 帐号 里面"


def test_fund_spans_cover_the_whole_name_and_its_classes():
    """What the bot's NAV whitelist takes out as the fund: the name with the rest of it, the
    part before the alias that still spells it, and the class letters."""
    from streams.nlu.entities import fund_spans

    def rest(text):
        for a, b in fund_spans(text):
            text = text[:a] + " " * (b - a) + text[b:]
        return text.strip()

    assert rest("融通蓝筹成长最新净值") == "最新净值"
    assert rest("融通稳健添瑞A的最新净值") == "的最新净值"
    assert rest("融通巨潮100单位净值") == "单位净值"
    assert rest("领先成长A和C类的净值") == "的净值"
    assert rest("领先成长累计净值") == "累计净值"
