"""session/conversation.py is the only definition of the conversation's states: every Lua
script that writes `state` writes exactly the targets the table gives it."""

from __future__ import annotations

import re
from pathlib import Path

from session.conversation import TRANSITIONS, State, can_move, lua_lib, targets_of, with_lib

ROOT = Path(__file__).resolve().parents[2]
# HSET <key>, 'state', '<literal>' (possibly among other fields).
_WRITE = re.compile(r"'state',\s*'([a-z_]+)'")


def _scripts() -> dict[str, str]:
    out = {}
    for pkg in ("session", "router"):
        for path in sorted((ROOT / pkg / "lua").glob("*.lua")):
            if path.name != "lib.lua":
                out[f"{pkg}/{path.name}"] = path.read_text()
    return out


def _written(source: str) -> set[str]:
    # HMGET reads name 'state' too; only HSET writes it.
    states = set()
    for line in source.splitlines():
        if "HSET" in line:
            states.update(_WRITE.findall(line))
    if re.search(r"\brequeue\(", source):
        states.add(State.WAITING.value)  # session/lua/lib.lua: requeue writes waiting
    return states


def test_every_script_writes_only_the_states_the_table_gives_it() -> None:
    scripts = _scripts()
    assert {t.script for t in TRANSITIONS} <= set(scripts), "the table names a missing script"
    for name, source in scripts.items():
        assert _written(source) <= {s.value for s in targets_of(name)}, name


def test_every_transition_in_the_table_is_made_by_its_script() -> None:
    scripts = _scripts()
    for t in TRANSITIONS:
        assert t.target.value in _written(scripts[t.script]), t


def test_every_state_is_reachable_and_checks_answer() -> None:
    assert {t.target for t in TRANSITIONS} == set(State)
    assert can_move(None, State.OPEN)
    assert can_move(State.OFFERED, State.ASSIGNED)
    assert not can_move(State.WAITING, State.ASSIGNED)  # only an accepted offer assigns
    assert not can_move(State.CLOSED, State.OPEN)  # closed is final


def test_shared_moves_are_written_once_and_prepended() -> None:
    lib = lua_lib()
    assert "local function give_back" in lib and "local function requeue" in lib
    for name, source in _scripts().items():
        assert "HINCRBY', lk" not in source or name == "router/offer.lua", name
        assert "local function give_back" not in source, name
    assert with_lib("return 1").startswith(lib)
