"""Personal data is found in text and never reaches a log line unmasked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import pii
from schemas.pii import find_pii, mask
from streams import logs


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        ("我的手机13812345678", "phone", "13812345678"),
        ("电话 +86 138 1234 5678 回电", "phone", "138 1234 5678"),
        ("身份证11010519491231002X", "id_card", "11010519491231002X"),
        ("卡号6222021234567890128", "bank_card", "6222021234567890128"),
        ("卡号 6222 0212 3456 7890 128", "bank_card", "6222 0212 3456 7890 128"),
        ("邮箱 li.lei@example.com", "email", "li.lei@example.com"),
    ],
)
def test_each_kind_is_found_and_masked(text: str, kind: str, secret: str) -> None:
    assert kind in {s.kind for s in find_pii(text)}
    masked = mask(text)
    assert secret not in masked
    assert secret.replace(" ", "") not in masked.replace(" ", "")


def test_fund_codes_amounts_and_dates_are_not_personal_data() -> None:
    text = "161606 买了5000元 2024-05-12 订单20240512000123"
    assert find_pii(text) == []
    assert mask(text) == text


def test_log_lines_are_masked_including_stdlib_loggers(capsys: pytest.CaptureFixture[str]) -> None:
    """Both structlog events and plain stdlib records (as aiokafka/faust emit) are masked."""
    logs.configure("json", "INFO")
    structlog.get_logger("t").info(
        "customer wrote", text="我手机13812345678", nested={"email": "li@example.com"}
    )
    logging.getLogger("third.party").warning("caller 13912345678 id 11010519491231002X")
    err = capsys.readouterr().err
    assert "13812345678" not in err and "li@example.com" not in err
    assert "13912345678" not in err and "11010519491231002X" not in err
    assert "138****5678" in err


@pytest.mark.parametrize(
    "number",
    [
        "+852 9123 4567",
        "+85291234567",
        "+853 6612 3456",
        "+886 912 345 678",
        "+886-2-2345-6789",
        "+1 (415) 555-0123",
        "+1 415 555 0123",
        "+44 20 7946 0958",
        "+44 7911 123456",
        "0085291234567",
        "0912-345-678",
        "(415) 555-0123",
        "415-555-0123",
        "07911 123456",
        "+86 138 1234 5678",
        "010-12345678",
    ],
)
def test_international_and_local_phone_formats_are_masked(number: str) -> None:
    """Numbers of Hong Kong, Macau, Taiwan, North America and the UK are phones too."""
    text = f"请回电 {number} 谢谢"
    assert [s.kind for s in find_pii(text)] == ["phone"]
    digits = re.sub(r"\D", "", number)
    out_digits = re.sub(r"\D", "", mask(text))
    assert digits not in out_digits
    assert len(out_digits) <= len(digits) - 4  # at least four digits never shown


def test_names_are_masked_where_the_text_or_the_field_says_it_is_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ "我叫李雷" in free text, and a log field named `name`, keep only the first character."""
    assert mask("您好，我叫李雷，想问定投") == "您好，我叫李*，想问定投"
    assert mask("姓名：欧阳娜娜") == "姓名：欧***"
    logs.configure("json", "INFO")
    structlog.get_logger("t").info("customer", name="王小明", nested={"customer_name": "李雷"})
    err = capsys.readouterr().err
    assert "王小明" not in err and "李雷" not in err
    assert "王**" in err


def _repeats(node: Any) -> Iterator[tuple[int, int]]:
    """Every (min, max) of every repeat inside a parsed regular expression."""
    if isinstance(node, (list, tuple)) or hasattr(node, "data"):
        items = node.data if hasattr(node, "data") else node
        for item in items:
            if (
                isinstance(item, tuple)
                and len(item) == 2
                and item[0] in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT)
            ):
                lo, hi, sub = item[1]
                yield lo, hi
                yield from _repeats(sub)
            else:
                yield from _repeats(item)


@pytest.mark.parametrize("name", ["_EMAIL", "_ID_CARD", "_BANK_CARD", "_PHONE", "_NAME"])
def test_every_pattern_is_bounded_so_masking_is_linear(name: str) -> None:
    """No unbounded repeat in any PII pattern: one match attempt does bounded work, so a scan
    is linear in the length of the text (the old email pattern was quadratic: 40,000
    characters took 2 s). Timings are in bench/pii.py; this is the proof by construction."""
    pattern = getattr(pii, name)
    repeats = list(_repeats(_parser.parse(pattern.pattern, pattern.flags)))
    assert repeats, "the walk found the pattern's repeats"
    unbounded = [r for r in repeats if r[1] == _c.MAXREPEAT]
    assert not unbounded, f"{name} has unbounded repeats: {unbounded}"


def test_mask_scans_at_most_the_cap_of_any_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1,000,000-character field (a hostile envelope id) costs the scan of MASK_SCAN_CHARS:
    the patterns never see more, and the log line says how much was cut."""
    seen: list[int] = []
    real = pii.find_pii

    def counting(text: str, **kw: Any) -> list[pii.PiiSpan]:
        seen.append(len(text))
        return real(text, **kw)

    monkeypatch.setattr(pii, "find_pii", counting)
    for hostile in ("a" * 1_000_000, "1" * 1_000_000, "字" * 1_000_000, "a@" * 500_000):
        out = mask(hostile)
        assert len(out) <= pii.MASK_SCAN_CHARS + 40
        assert out.endswith(" chars cut]")
    assert seen and max(seen) <= pii.MASK_SCAN_CHARS
    assert mask("短文本") == "短文本"


def test_the_cut_never_leaves_half_a_number_visible() -> None:
    """Wherever the cap falls inside a phone or card number, none of its digits stay."""
    number = "6222021234567890128"
    for offset in range(0, len(number) + 1):
        text = "字" * (pii.MASK_SCAN_CHARS - offset) + number + "尾" * 100
        shown = mask(text).rpartition("…[")[0]  # the note after it counts what was cut
        assert not re.search(r"\d", shown.replace("****0128", ""))


# -- property: whatever the surrounding text, a masked number never shows ----------------------

_filler = st.text(
    alphabet=st.sampled_from(list("的字融通基金赎回，。？！：:（） \n\t")), max_size=30
)


def _grouped(draw: st.DrawFn, digits: str) -> str:
    out, i = [], 0
    while i < len(digits):
        n = draw(st.integers(1, 4))
        out.append(digits[i : i + n])
        i += n
    seps = [draw(st.sampled_from(["", "", " ", "-"])) for _ in out]
    return "".join(
        part + (sep if k < len(out) - 1 else "")
        for k, (part, sep) in enumerate(zip(out, seps, strict=True))
    )


@st.composite
def _numbers(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["mobile", "intl", "id_card", "bank_card"]))
    d = st.text(alphabet="0123456789", min_size=1, max_size=1)
    if kind == "mobile":
        body = "1" + draw(st.sampled_from("3456789")) + "".join(draw(d) for _ in range(9))
        prefix = draw(st.sampled_from(["", "+86", "+86 ", "0086"]))
        return prefix + draw(st.sampled_from([body, f"{body[:3]} {body[3:7]} {body[7:]}"]))
    if kind == "intl":
        cc = draw(st.sampled_from(["852", "853", "886", "1", "44", "65", "81", "61"]))
        rest = "".join(draw(d) for _ in range(draw(st.integers(8, 15 - len(cc)))))
        return "+" + cc + draw(st.sampled_from(["", " "])) + _grouped(draw, rest)
    if kind == "id_card":
        area = draw(st.sampled_from(["110105", "310101", "440305"]))
        date = f"{draw(st.integers(1930, 2020))}{draw(st.integers(1, 12)):02d}"
        date += f"{draw(st.integers(1, 28)):02d}"
        tail = "".join(draw(d) for _ in range(3)) + draw(st.sampled_from("0123456789X"))
        return area + date + tail
    body = draw(st.sampled_from("3456")) + "".join(
        draw(d) for _ in range(draw(st.integers(15, 18)))
    )
    return draw(st.sampled_from([body, " ".join(body[i : i + 4] for i in range(0, len(body), 4))]))


@given(
    before=_filler,
    number=_numbers(),
    after=_filler,
    pad=st.one_of(st.just(0), st.integers(pii.MASK_SCAN_CHARS - 45, pii.MASK_SCAN_CHARS + 2)),
)
@settings(max_examples=400, deadline=None)
def test_masked_output_never_contains_the_raw_number(
    before: str, number: str, after: str, pad: int
) -> None:
    """Property: a phone (mainland or international), ID card or bank card number inside any
    text, anywhere (also across the scan cap), never appears in the masked output, and at
    least four of its digits are always hidden."""
    text = "字" * pad + before + number + after
    out = mask(text)
    digits = re.sub(r"\D", "", number)
    out_digits = re.sub(r"\D", "", out.rpartition("…[")[0] if "…[" in out else out)
    assert number not in out
    assert digits not in out_digits
    assert len(out_digits) <= len(digits) - 4


@given(
    local=st.from_regex(r"[a-z0-9][a-z0-9._]{0,20}", fullmatch=True),
    domain=st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}\.(com|cn|hk|net)", fullmatch=True),
    before=_filler,
    after=_filler,
)
@settings(max_examples=200, deadline=None)
def test_masked_output_never_contains_the_raw_email(
    local: str, domain: str, before: str, after: str
) -> None:
    """Property: an email address in any text is masked down to its first letter and domain."""
    address = f"{local}@{domain}"
    out = mask(before + address + after)
    assert address not in out
    assert f"{local[:1]}***@{domain}" in out
