"""Knowledge search quality: recall@3 and MRR on a labelled query set.

    .venv/bin/python bench/knowledge.py

Queries (bench/data/kb_queries.jsonl) are written apart from the articles: none repeats an
article's title or sample questions (tests/unit/test_knowledge.py checks it). Each names the
one article that answers it. The index is session/kbsearch.py over the starter set that
`omnirouter dev` loads (streams/devkit/samples/knowledge.json).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchinfo import machine  # noqa: E402
from session.kbsearch import Index  # noqa: E402

QUERIES = ROOT / "bench" / "data" / "kb_queries.jsonl"
ARTICLES = ROOT / "streams" / "devkit" / "samples" / "knowledge.json"


def evaluate(index: Index, queries: list[dict[str, str]]) -> dict[str, float]:
    hit3 = 0
    rr = 0.0
    misses = []
    for q in queries:
        ids = [h.id for h in index.search(q["q"], 10)]
        if q["expected"] in ids[:3]:
            hit3 += 1
        else:
            misses.append((q["q"], q["expected"], ids[:3]))
        if q["expected"] in ids:
            rr += 1 / (ids.index(q["expected"]) + 1)
    n = len(queries)
    for m in misses:
        print("  miss:", *m)
    return {"queries": n, "recall@3": hit3 / n, "mrr": rr / n}


def main() -> None:
    articles = json.loads(ARTICLES.read_text(encoding="utf-8"))["articles"]
    queries = [json.loads(line) for line in QUERIES.read_text(encoding="utf-8").splitlines()]
    index = Index(articles)
    index.search("预热", 1)  # jieba's dictionary loads once
    result = evaluate(index, queries)
    t0 = time.perf_counter()
    for _ in range(5):
        for q in queries:
            index.search(q["q"], 5)
    per_query_ms = (time.perf_counter() - t0) * 1000 / (5 * len(queries))
    print(machine())
    print(
        f"articles {len(articles)}  queries {result['queries']}  "
        f"recall@3 {result['recall@3']:.3f}  MRR {result['mrr']:.3f}  "
        f"search {per_query_ms:.2f} ms/query"
    )


if __name__ == "__main__":
    main()
