"""History for the heat map and the review report: an embedded analytical store (SQLite).

Redis holds what is live (window counts, baselines, figures, with expiry); this holds what
is looked back on: one row per classified message (when, channel, category, intent, fund),
one per survey answer, one per task and one per surge alert, kept 90 days.

Why SQLite (the standard library's, WAL mode) and not DuckDB: the worker writes and the
gateway reads at the same time from different processes. SQLite in WAL mode lets any number
of processes read while one writes (writers queue on a short lock, `busy_timeout`); DuckDB
allows one read-write process *or* several read-only ones on a file, so the gateway could
not read the heat map while a worker writes it. At our volume (a few thousand messages an
hour; 90 days is a few million rows) an indexed GROUP BY over an hour bucket answers in
milliseconds from an hourly rollup that
triggers keep (bench/analytics.py). Rows are inserted with their event id as the primary key,
so a redelivered batch adds nothing.

Production option (docs/analytics.md): ClickHouse fed from cs.messages.v1 / cs.feedback.v1
(Kafka table engine or a consumer doing the same inserts), a MergeTree ordered by (category,
at) with `TTL at + INTERVAL 90 DAY`; the queries below are plain SQL that ClickHouse runs as
they are once `at / bucket` is written `intDiv(at, bucket)`.

Settings: OMNIROUTER_ANALYTICS_DB (default `$XDG_STATE_HOME/omnirouter/analytics.sqlite`,
else `~/.local/state/omnirouter/analytics.sqlite`), OMNIROUTER_HISTORY_DAYS (90).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from schemas.env import number

DIMENSIONS: Final = ("category", "intent", "fund_code", "channel")
BUCKETS: Final = {"hour": 3_600_000, "day": 86_400_000}
DAY_MS: Final = 86_400_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
  event_id TEXT PRIMARY KEY,
  at INTEGER NOT NULL,
  channel TEXT NOT NULL,
  category TEXT NOT NULL,
  intent TEXT,
  fund_code TEXT,
  customer_id TEXT,
  conversation_id TEXT
);
CREATE INDEX IF NOT EXISTS contacts_at ON contacts (at);
-- Per hour and dimension, kept by triggers (a redelivered row is ignored above, so it fires
-- nothing): the heat map reads hours x values, not every message.
CREATE TABLE IF NOT EXISTS contacts_hourly (
  hour INTEGER NOT NULL, dim TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (dim, hour, value)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS contacts_rollup_in AFTER INSERT ON contacts BEGIN
  INSERT INTO contacts_hourly VALUES
    (NEW.at / 3600000, 'category', NEW.category, 1),
    (NEW.at / 3600000, 'intent', COALESCE(NEW.intent, '-'), 1),
    (NEW.at / 3600000, 'fund_code', COALESCE(NEW.fund_code, '-'), 1),
    (NEW.at / 3600000, 'channel', NEW.channel, 1)
  ON CONFLICT (dim, hour, value) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS contacts_rollup_out AFTER DELETE ON contacts BEGIN
  UPDATE contacts_hourly SET n = n - 1 WHERE hour = OLD.at / 3600000 AND (
    (dim = 'category' AND value = OLD.category) OR
    (dim = 'intent' AND value = COALESCE(OLD.intent, '-')) OR
    (dim = 'fund_code' AND value = COALESCE(OLD.fund_code, '-')) OR
    (dim = 'channel' AND value = OLD.channel));
END;
CREATE TABLE IF NOT EXISTS surveys (
  survey_id TEXT PRIMARY KEY,
  conversation_id TEXT,
  customer_id TEXT,
  agent_id TEXT,
  category TEXT,
  channel TEXT,
  score INTEGER NOT NULL,
  comment TEXT,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS surveys_at ON surveys (at);
CREATE TABLE IF NOT EXISTS tasks (
  task_id TEXT PRIMARY KEY,
  kind TEXT, conversation_id TEXT, customer_id TEXT, reason TEXT, state TEXT,
  agent_id TEXT, outcome TEXT, score INTEGER, due_at INTEGER, at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
  alert_id TEXT PRIMARY KEY,
  kind TEXT, category TEXT, intent TEXT, fund_code TEXT, count INTEGER, baseline REAL,
  at INTEGER NOT NULL, body TEXT
);
CREATE TABLE IF NOT EXISTS conversations (
  conversation_id TEXT PRIMARY KEY,
  customer_id TEXT, channel TEXT, category TEXT, agent_id TEXT,
  created_at INTEGER, assigned_at INTEGER, resolved_at INTEGER, bot_unanswered INTEGER DEFAULT 0,
  intent TEXT, preview TEXT
);
"""


def default_path() -> Path:
    explicit = os.environ.get("OMNIROUTER_ANALYTICS_DB")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "omnirouter" / "analytics.sqlite"


def history_days() -> int:
    return int(number("OMNIROUTER_HISTORY_DAYS", 90))


class History:
    """A thread-safe handle on the store; call its methods through `asyncio.to_thread`."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
        return db

    def _write(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.executemany(sql, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return cur.rowcount

    # -- writes (the analytics stage) -------------------------------------------------------------

    def add_contacts(self, rows: Iterable[dict[str, Any]]) -> int:
        return self._write(
            "INSERT OR IGNORE INTO contacts VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    r["event_id"],
                    r["at"],
                    r["channel"],
                    r["category"],
                    r.get("intent"),
                    r.get("fund_code"),
                    r.get("customer_id"),
                    r.get("conversation_id"),
                )
                for r in rows
            ],
        )

    def add_surveys(self, rows: Iterable[dict[str, Any]]) -> int:
        return self._write(
            "INSERT OR IGNORE INTO surveys VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    r["survey_id"],
                    r.get("conversation_id"),
                    r.get("customer_id"),
                    r.get("agent_id"),
                    r.get("category"),
                    r.get("channel"),
                    r["score"],
                    r.get("comment") or "",
                    r["answered_at"],
                )
                for r in rows
            ],
        )

    def put_tasks(self, rows: Iterable[dict[str, Any]]) -> int:
        return self._write(
            "INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r["id"],
                    r.get("kind"),
                    r.get("conversation_id"),
                    r.get("customer_id"),
                    r.get("reason"),
                    r.get("state"),
                    r.get("agent_id"),
                    r.get("outcome"),
                    r.get("score"),
                    r.get("due_at"),
                    r.get("created_at") or 0,
                )
                for r in rows
            ],
        )

    def add_alerts(self, rows: Iterable[dict[str, Any]]) -> int:
        import json

        return self._write(
            "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    r["id"],
                    r.get("type") or r.get("kind"),
                    r.get("category"),
                    r.get("intent"),
                    r.get("fund_code"),
                    r.get("count"),
                    r.get("baseline"),
                    r["at"],
                    json.dumps(r, ensure_ascii=False),
                )
                for r in rows
            ],
        )

    def put_conversations(self, rows: Iterable[dict[str, Any]]) -> int:
        """Upsert what is known of each conversation (the fields given, others kept)."""
        n = 0
        for r in rows:
            cols = [c for c in r if c != "conversation_id" and r[c] is not None]
            sets = ", ".join(f"{c}=excluded.{c}" for c in cols)
            names = ", ".join(["conversation_id", *cols])
            marks = ", ".join("?" for _ in range(len(cols) + 1))
            n += self._write(
                f"INSERT INTO conversations ({names}) VALUES ({marks}) "
                + (
                    f"ON CONFLICT(conversation_id) DO UPDATE SET {sets}"
                    if cols
                    else "ON CONFLICT DO NOTHING"
                ),
                [[r["conversation_id"], *[r[c] for c in cols]]],
            )
        return n

    def erase_customers(self, customer_ids: Sequence[str]) -> int:
        """Right to erasure downstream: every row of these customers (cs.audit.v1)."""
        if not customer_ids:
            return 0
        marks = ",".join("?" for _ in customer_ids)
        db = self._db()
        n = 0
        for table in ("contacts", "surveys", "tasks", "conversations"):
            n += db.execute(
                f"DELETE FROM {table} WHERE customer_id IN ({marks})", list(customer_ids)
            ).rowcount
        return n

    def prune(self, now_ms: int, days: int | None = None) -> int:
        cutoff = now_ms - (days or history_days()) * DAY_MS
        db = self._db()
        n = 0
        for table in ("contacts", "surveys", "tasks", "alerts"):
            n += db.execute(f"DELETE FROM {table} WHERE at < ?", (cutoff,)).rowcount
        n += db.execute("DELETE FROM conversations WHERE created_at < ?", (cutoff,)).rowcount
        db.execute("DELETE FROM contacts_hourly WHERE n <= 0 OR hour < ?", (cutoff // 3_600_000,))
        return n

    # -- reads (the gateway, the report) -----------------------------------------------------------

    def heatmap(
        self, by: str, bucket: str, since_ms: int, until_ms: int, top: int = 20
    ) -> dict[str, Any]:
        """{"bucket", "buckets": [start ms…], "series": {name: [counts]}} from since to until,
        every bucket present (zeros included); at most `top` series by total, the rest summed
        as "other"."""
        if by not in DIMENSIONS:
            raise ValueError(f"by must be one of {DIMENSIONS}")
        size = BUCKETS[bucket]
        start = since_ms - since_ms % size
        hours = size // 3_600_000
        rows = (
            self._db()
            .execute(
                "SELECT (hour / ?) * ? AS b, value, SUM(n) FROM contacts_hourly "
                "WHERE dim = ? AND hour >= ? AND hour < ? AND n > 0 GROUP BY b, value",
                (hours, size, by, start // 3_600_000, -(-until_ms // 3_600_000)),
            )
            .fetchall()
        )
        buckets = list(range(start, until_ms, size))
        index = {b: i for i, b in enumerate(buckets)}
        series: dict[str, list[int]] = {}
        for b, k, n in rows:
            if b in index:
                series.setdefault(str(k), [0] * len(buckets))[index[b]] += int(n)
        ranked = sorted(series, key=lambda k: -sum(series[k]))
        if len(ranked) > top:
            other = [sum(v) for v in zip(*(series[k] for k in ranked[top:]), strict=True)]
            series = {k: series[k] for k in ranked[:top]} | {"other": other}
        return {"bucket": bucket, "buckets": buckets, "series": series}

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db().execute(sql, args).fetchall())

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
