"""Apply the design document's category lists literally to the training corpora (issue 14).

    .venv/bin/python -m training.nlu.relabel [--check]

The document lists 交易失败 under 技术故障类 and 账户绑定 under 交易操作类. Earlier corpora
disagreed with both in places (corpus_core had "申购失败了 钱退回来了吗" as transaction while
corpus_b had the same kind of line as technical; a few bank-card changes sat under account).
The rules are textual so anyone can rerun them and see every line they move; each boundary is
written down in docs/model-card.md. Idempotent: a second run changes nothing. ``--check``
exits 1 if a line would still move (tests/unit/test_nlu_fastpath.py runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from streams.nlu.boundaries import FAILED, HYPOTHETICAL

DATA_DIR = Path(__file__).resolve().parent / "data"

# A purchase, redemption, payment, debit, transfer, conversion or card binding that was
# attempted and failed or errored: 交易失败, technical (the same patterns the model's output is
# held to, streams/nlu/boundaries.py). "X不能Y" with a rule given ("提示超过限额") is not there: it
# names a rule, not a failure, and stays a transaction question.
_FAILED = FAILED
_HYPOTHETICAL = HYPOTHETICAL
# Binding, changing or unbinding the bank card used for trading: 账户绑定, transaction. Phone
# numbers and e-mail addresses are 信息更新 (account); the card itself as a bank account (挂失,
# 销卡, 激活, 开户行) stays account too.
_CARD_BINDING = re.compile(
    r"(绑定?|换绑|解绑|更换|换|变更|修改).{0,6}(银行卡|储蓄卡|借记卡|卡)(?!号码?位)"
)
_NOT_BINDING = re.compile(r"手机|号码|邮箱|开户(需要|要)|挂失|销卡|激活|开户行|密码")


def decide(row: dict[str, Any]) -> tuple[str, str] | None:
    """The (category, intent) the rules give a row, or None when they leave it alone."""
    text = str(row.get("text", ""))
    cat = row.get("category")
    if cat == "transaction" and _FAILED.search(text) and not _HYPOTHETICAL.search(text):
        return "technical", "transaction_failure"
    if (
        cat == "account"
        and _CARD_BINDING.search(text)
        and not _NOT_BINDING.search(text)
        and not _FAILED.search(text)
    ):
        return "transaction", "card_binding"
    return None


def relabel(data_dir: Path = DATA_DIR, write: bool = True) -> list[tuple[str, int, str, str]]:
    """Every moved line as (file, line number, old -> new, text); rewrites the files if asked."""
    moved: list[tuple[str, int, str, str]] = []
    for path in sorted(data_dir.glob("corpus_*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        out: list[str] = []
        changed = False
        for n, line in enumerate(lines, 1):
            if not line.strip():
                out.append(line)
                continue
            row = json.loads(line)
            new = decide(row)
            if new is None:
                out.append(line)
                continue
            moved.append((path.name, n, f"{row['category']} -> {new[0]}", str(row["text"])))
            row["category"], row["intent"] = new
            out.append(json.dumps(row, ensure_ascii=False))
            changed = True
        if write and changed:
            path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return moved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.nlu.relabel")
    p.add_argument("--check", action="store_true", help="report, change nothing, exit 1 if any")
    a = p.parse_args(argv)
    moved = relabel(write=not a.check)
    for name, n, change, text in moved:
        print(f"{name}:{n}\t{change}\t{text[:60]}")
    print(f"{len(moved)} lines {'would move' if a.check else 'moved'}", file=sys.stderr)
    return 1 if a.check and moved else 0


if __name__ == "__main__":
    sys.exit(main())
