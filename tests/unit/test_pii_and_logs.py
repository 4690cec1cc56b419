"""Personal data is found in text and never reaches a log line unmasked."""

from __future__ import annotations

import logging

import pytest
import structlog

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
