"""The stages count their conversations' seen-sets and refs once every few batches, and
every conversation touched in between is counted then (session/bounds.py `Trimmer`)."""

from __future__ import annotations

from typing import Any

import pytest

from session import bounds


async def test_the_trimmer_counts_every_conversation_touched_once_every_few_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted: list[list[str]] = []

    async def fake_trim(redis: Any, convs: list[str], seen_cap: int, refs_cap: int) -> dict:
        counted.append(convs)
        return {"seen": 0, "refs": 0}

    monkeypatch.setattr(bounds, "trim", fake_trim)
    t = bounds.Trimmer(redis=None, seen_cap=10, refs_cap=10, every=3)  # type: ignore[arg-type]
    await t.after_batch(["c1", "c2"])
    await t.after_batch(["c2", ""])
    assert counted == []  # no round trip of its own for these batches
    await t.after_batch(["c3"])
    assert counted == [["c1", "c2", "c3"]]
    for _ in range(3):
        await t.after_batch(["c4"])
    assert counted == [["c1", "c2", "c3"], ["c4"]]
