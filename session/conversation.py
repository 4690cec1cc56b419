"""The conversation state machine: the only definition of its states and transitions.

A conversation lives in the Redis hash `conv:{id}` (session/keys.py). Its `state` field is
changed only inside Lua scripts, each one atomic, so two workers or gateways can never both
move one conversation; this module says which script may make which move, and a unit test
(tests/unit/test_conversation_states.py) reads every script and fails when one writes a state
this table does not give it. The shared moves ("put back in its queue", "give back the
agent's capacity") are written once, in session/lua/lib.lua, which the loaders prepend
(`with_lib`).

    open --(bot answers)--> bot --(hand-off: asked, unsure, complaint, two turns)--> open
    open --(offer claimed)--> offered --(accept)--> assigned --(resolve)--> resolved
      |                          |  (decline, expiry, agent offline)          |
      +--(nobody fits)--> waiting <-----------------+                         |
                           ^  |--(offer claimed)--> offered                   |
                           |  transfer to a queue / agent offline             |
                           +----------------- assigned                        |
    resolved --(message within the reopen window)--> open (last agent preferred)
    resolved --(message after the window)--> closed, and a new conversation opens
    open|waiting|offered --(the chat visitor left while waiting)--> closed (abandoned)
    any --(merge of two identities)--> merged (merged_into the surviving conversation)
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Final, NamedTuple


class State(StrEnum):
    OPEN = "open"  # created or reopened, not yet placed
    BOT = "bot"  # the bot owns it (streams/bot): not in any queue, no agent
    WAITING = "waiting"  # in a queue
    OFFERED = "offered"  # one agent holds an offer; nobody else may be offered it
    ASSIGNED = "assigned"  # one agent holds it
    RESOLVED = "resolved"  # done; a message within the reopen window reopens it
    CLOSED = "closed"  # done for good; the next message opens a new conversation
    MERGED = "merged"  # folded into another conversation when two identities joined


class Transition(NamedTuple):
    source: frozenset[State]  # states the move starts from (empty: a new conversation)
    target: State
    script: str  # the Lua script that makes it, package/lua/name
    why: str


_ANY_LIVE = frozenset(
    {State.OPEN, State.BOT, State.WAITING, State.OFFERED, State.ASSIGNED, State.RESOLVED}
)

TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition(frozenset(), State.OPEN, "session/ingest.lua", "a first message"),
    Transition(frozenset({State.RESOLVED}), State.OPEN, "session/ingest.lua", "reopened"),
    Transition(frozenset({State.RESOLVED}), State.CLOSED, "session/ingest.lua", "window passed"),
    Transition(_ANY_LIVE, State.MERGED, "session/ingest.lua", "two identities joined"),
    Transition(frozenset({State.OPEN, State.BOT}), State.BOT, "session/bot.lua", "bot answered"),
    # Once per conversation (handoff_at); routing then places it like any open conversation.
    Transition(frozenset({State.OPEN, State.BOT}), State.OPEN, "session/bot.lua", "handed off"),
    Transition(
        frozenset({State.OPEN, State.WAITING}), State.OFFERED, "router/offer.lua", "offer claimed"
    ),
    Transition(
        frozenset({State.OPEN, State.WAITING}), State.WAITING, "router/enqueue.lua", "nobody fits"
    ),
    Transition(frozenset({State.OFFERED}), State.ASSIGNED, "router/accept.lua", "accepted"),
    Transition(
        frozenset({State.OFFERED}), State.WAITING, "router/release.lua", "declined or expired"
    ),
    Transition(
        frozenset({State.OFFERED, State.ASSIGNED}),
        State.WAITING,
        "router/offline.lua",
        "agent went offline",
    ),
    Transition(frozenset({State.ASSIGNED}), State.RESOLVED, "router/resolve.lua", "resolved"),
    # To a named agent too: it waits pinned to that agent, and offer.lua offers it.
    Transition(frozenset({State.ASSIGNED}), State.WAITING, "router/transfer.lua", "transferred"),
    # A chat visitor gone past its grace (or who said it leaves) before an agent took it.
    Transition(
        frozenset({State.OPEN, State.WAITING, State.OFFERED}),
        State.CLOSED,
        "router/abandon.lua",
        "the customer left while waiting (abandoned)",
    ),
)

# Where a customer's next message goes, by the state of their open conversation.
HELD: Final = frozenset({State.OFFERED, State.ASSIGNED})  # an agent has it (or is offered it)
DONE: Final = frozenset({State.RESOLVED, State.CLOSED, State.MERGED})


def targets_of(script: str) -> set[State]:
    """The states `script` ("router/offer.lua") may write."""
    return {t.target for t in TRANSITIONS if t.script == script}


def can_move(source: State | None, target: State) -> bool:
    """Whether some script may move a conversation from `source` (None: new) to `target`."""
    return any(
        t.target == target and (source in t.source if source else not t.source) for t in TRANSITIONS
    )


@cache
def lua_lib() -> str:
    """The shared Lua fragments (give_back, requeue), prepended to every state script."""
    return resources.files("session").joinpath("lua", "lib.lua").read_text()


def with_lib(source: str) -> str:
    # One line per fragment line keeps error line numbers readable: the script's own lines
    # start right after the library, whose length is fixed.
    return f"{lua_lib()}\n{source}"
