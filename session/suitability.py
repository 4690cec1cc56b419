"""Investor suitability (证券期货投资者适当性管理办法; the design document's 4.1): which products a
customer may be offered.

An investor's risk tolerance is C1 (conservative) to C5 (aggressive); a product's risk level is
R1 (low) to R5 (high). A Cn investor may be offered products up to Rn: C1 only R1, C2 up to R2,
and so on. A customer with no assessment, or one older than ASSESSMENT_VALID_DAYS, is offered
nothing and is pointed to the assessment. Validity: one year from the assessment date (the
practice of fund sales institutions under the suitability rules, and what the starter knowledge
base tells customers), counted in Beijing dates.

Pure; the bot (streams/bot) and the desk (GET /v1/customers/{id}/suitable-funds) share it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from schemas.vocabulary import RISK_LEVELS, RISK_TOLERANCES
from session.tradingdays import today_shanghai

ASSESSMENT_VALID_DAYS: Final = 365
RISK_NOTICE: Final = (
    "风险提示：基金有风险，投资需谨慎。以上产品风险等级不超过您的风险承受能力，"
    "仅供参考，不构成投资建议；过往业绩不代表未来表现，请阅读基金合同和招募说明书。"
)


def assessment_status(tolerance: str | None, assessed_at: str | None, now_ms: int) -> str:
    """valid | none (never assessed, or the record lacks a date) | expired."""
    if tolerance not in RISK_TOLERANCES or not assessed_at:
        return "none"
    try:
        day = dt.date.fromisoformat(assessed_at)
    except ValueError:
        return "none"
    age = (today_shanghai(now_ms) - day).days
    if age < 0:
        return "none"  # a date in the future is not an assessment we can rely on
    return "valid" if age <= ASSESSMENT_VALID_DAYS else "expired"


def may_hold(tolerance: str, risk: str) -> bool:
    """A Cn investor may be offered a product of risk Rm when m <= n."""
    if tolerance not in RISK_TOLERANCES or risk not in RISK_LEVELS:
        return False
    return RISK_LEVELS.index(risk) <= RISK_TOLERANCES.index(tolerance)


def suitable(
    customer: dict[str, Any], funds: list[dict[str, Any]], now_ms: int
) -> tuple[str, list[dict[str, Any]]]:
    """(assessment status, the funds the customer may be offered: none unless valid)."""
    status = assessment_status(
        customer.get("risk_tolerance"), customer.get("risk_assessed_at"), now_ms
    )
    if status != "valid":
        return status, []
    tol = str(customer["risk_tolerance"])
    return status, [f for f in funds if may_hold(tol, str(f.get("risk")))]
