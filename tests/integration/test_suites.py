"""The short, deterministic forms of `make chaos` and `make fuzz` (docs/reliability.md).

Each runs the bench script as `make` would, on its own embedded broker and redis-server with
its own gateway, workers and delivery processes, and asserts the guarantees, never a time:
- chaos: 200 messages over the four channels, a worker and then redis-server SIGKILLed and
  restarted: nothing accepted is lost, nothing is in two conversations or offered again after
  an accept, no conversation is held by two agents, every acknowledged reply has its outcome;
- fuzz: schemathesis as every scope (fixed seed), poison records on every consumed topic and
  a hostile mail corpus: no 5xx, no response outside the document (every declared body
  checked), no schema-valid request refused, every poison record
  dead-lettered with a reason, the good message after them still offered, SMTP answered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *args: str, timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.timeout(600)
def test_chaos_short_form_loses_nothing_across_a_worker_and_a_redis_kill() -> None:
    """A worker SIGKILLed at message 67 and redis-server at 133 (restarted from its AOF):
    every accepted message reaches exactly one conversation that exactly one agent accepted,
    and every reply the gateway acknowledged ends delivered or dead-lettered."""
    f = run_bench(
        "chaos.py",
        *("--n", "200", "--rate", "20", "--kills", "worker,redis", "--agents", "8"),
        *("--partitions", "4", "--session-timeout-s", "6", "--seed", "13"),
        timeout=540,
    )
    assert f["accepted"] == 200 and f["post_failed"] == 0, f
    assert f["lost"] == 0, f
    assert f["duplicated"] == 0, f
    assert f["double_assigned"] == 0, f
    assert f["replies_unsettled"] == 0, f
    assert f["kills"] == ["worker-1", "redis"], f


@pytest.mark.timeout(900)
def test_fuzz_short_form_finds_no_server_error_and_dead_letters_every_poison_record() -> None:
    """Schemathesis (fixed seed, a few examples per operation) as each of the five scopes,
    30 poison records on each consumed topic and 26 hostile mails: no 5xx, no response
    outside the document and no schema-valid request refused; every poison record dead-lettered with a reason and the good
    message after them offered; every mail answered by SMTP."""
    f = run_bench(
        "fuzz.py",
        *("--examples", "2", "--phases", "fuzzing", "--poison", "30", "--mails", "26"),
        *("--seed", "13"),
        timeout=840,
    )
    for scope, api in f["api"].items():
        assert api["requests"] > 0, (scope, api)
        assert api["server_errors"] == 0, (scope, api)
        assert api["schema_violations"] == 0, (scope, api)
        assert api["valid_refused"] == 0, (scope, api)  # a schema-valid request refused
    poison = f["poison"]
    assert poison["records"] > 200, poison  # 30 a topic, less the tombstones of compacted ones
    assert poison["not_dead_lettered"] == 0, poison
    assert poison["letters_without_reason"] == 0, poison
    assert poison["good_message_offered_after_s"] is not None, poison
    mail = f["mail"]
    assert mail["mails"] == 26 and "-1" not in mail["smtp_codes"], mail
    assert mail["probes"] > 0 and mail["probes_failed"] == 0, mail
