"""Real text the project may measure with but never ship (training/nlu/data/pools/), and the
second labelling of the real dev sets (training/nlu/data/agreement/)."""

from __future__ import annotations

import json
from pathlib import Path

from streams.nlu.model import MODEL_DIR
from training.nlu.evaluate import parse_category, parse_negative
from training.nlu.train import DATA_DIR, split_key
from training.nlu.trial import as_corpus_rows


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _keys(paths: list[Path]) -> set[str]:
    return {split_key(str(r["text"])) for p in paths for r in _rows(p)}


def test_pools_are_labelled_apart_from_the_eval_sets_and_never_in_the_shipped_model() -> None:
    pools = sorted((DATA_DIR / "pools").glob("*.jsonl"))
    assert [p.name for p in pools] == ["atec_pool.jsonl", "bq_pool.jsonl"]
    real = _keys(sorted((DATA_DIR / "real").glob("*.jsonl")))
    seen: set[str] = set()
    for pool in pools:
        rows = _rows(pool)
        assert all(parse_category(r["category"]) for r in rows)
        assert all(parse_negative(r["negative"]) is not None for r in rows)
        keys = {split_key(str(r["text"])) for r in rows}
        assert len(keys) == len(rows) and not keys & real and not keys & seen
        seen |= keys
    meta = json.loads((MODEL_DIR / "nlu.json").read_text(encoding="utf-8"))["meta"]
    assert all(name.startswith("corpus_") for name in meta["corpus"])


def test_a_pool_reads_as_training_rows_for_the_harness_with_a_fixed_shuffle() -> None:
    pool = DATA_DIR / "pools" / "bq_pool.jsonl"
    first, again = as_corpus_rows(pool, take=50), as_corpus_rows(pool, take=50)
    assert len(first) == 50 and first == again
    assert {r["category"] for r in as_corpus_rows(pool)} == {
        "product",
        "transaction",
        "account",
        "complaint",
        "technical",
    }


def test_the_second_labelling_pairs_line_by_line_with_its_dev_set() -> None:
    for second in sorted((DATA_DIR / "agreement").glob("*_b.jsonl")):
        first = DATA_DIR / "real" / second.name.replace("_b.jsonl", ".jsonl")
        a, b = _rows(first), _rows(second)
        assert [(r["id"], r["text"]) for r in a] == [(r["id"], r["text"]) for r in b]
        assert all(parse_category(r["category"]) for r in b)
        assert all(r["confidence"] in ("sure", "unsure") for r in b)


def test_runs_over_several_seeds_average_with_their_spread() -> None:
    from training.nlu.trial import averaged

    def run(macro: float, neg: float) -> dict[str, object]:
        return {
            "n_train": 10,
            "features": 5,
            "web_dev.jsonl": {
                "n": 4,
                "accuracy": 0.5,
                "macro_f1": macro,
                "negative_f1": {"0.2": neg},
            },
        }

    out = averaged([run(0.70, 0.5), run(0.80, 0.7)])
    assert out["seeds"] == 2
    assert out["web_dev.jsonl"]["macro_f1"] == 0.75
    assert out["web_dev.jsonl"]["macro_f1_spread"] == [0.70, 0.80]
    assert out["web_dev.jsonl"]["negative_f1"] == {"0.2": 0.6}
