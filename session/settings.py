"""Session-store configuration from environment variables with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| OMNIROUTER_REOPEN_WINDOW_H | 24 | a message within this many hours of resolve reopens the conversation |
| OMNIROUTER_HISTORY_CAP | 1000 | timeline entries kept per conversation (oldest dropped) |
| OMNIROUTER_SEEN_CAP | 10000 | event ids remembered per conversation (its seen-set); past it the ids no longer named by the timeline are forgotten (session/bounds.py) |
| OMNIROUTER_REFS_CAP | 10000 | keys listed per conversation for erasure (its refs); past it the listed keys that no longer exist are dropped |
| OMNIROUTER_CONVERSATION_TTL_D | 90 | days a conversation is kept after its last activity |
| OMNIROUTER_DEDUPE_TTL_H | 168 | hours a (channel, channel_message_id) is remembered for retries |
| OMNIROUTER_VISITOR_LINK_TTL_H | 12 | a web visitor cookie seen with a verified login identifies its customer this long |
| OMNIROUTER_SURVEY_WINDOW_H | 72 | a satisfaction survey may be answered this long after it was sent |
| OMNIROUTER_MERGE_LINK_TTL_H | 1 | events of an anonymous id still in flight when it was folded into a customer follow it this long |
| OMNIROUTER_ID_KEY | (none: required) | secret key of the HMAC that derives anonymous ids from phones, emails and visitor ids (and the customer digests of log lines); every gateway, worker and delivery of one deployment needs the same one. `omnirouter dev` makes one per run when unset (never printed). Changing it starts new anonymous conversations (docs/security.md) |
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from schemas.env import number


@dataclass(frozen=True)
class SessionSettings:
    reopen_window_ms: int = field(
        default_factory=lambda: int(number("OMNIROUTER_REOPEN_WINDOW_H", 24) * 3_600_000)
    )
    history_cap: int = field(default_factory=lambda: int(number("OMNIROUTER_HISTORY_CAP", 1000)))
    seen_cap: int = field(
        default_factory=lambda: max(100, int(number("OMNIROUTER_SEEN_CAP", 10_000)))
    )
    refs_cap: int = field(
        default_factory=lambda: max(100, int(number("OMNIROUTER_REFS_CAP", 10_000)))
    )
    conversation_ttl_s: int = field(
        default_factory=lambda: int(number("OMNIROUTER_CONVERSATION_TTL_D", 90) * 86_400)
    )
    dedupe_ttl_s: int = field(
        default_factory=lambda: int(number("OMNIROUTER_DEDUPE_TTL_H", 168) * 3600)
    )
    visitor_link_ttl_s: int = field(
        default_factory=lambda: max(1, int(number("OMNIROUTER_VISITOR_LINK_TTL_H", 12) * 3600))
    )
    merge_link_ttl_s: int = field(
        default_factory=lambda: max(1, int(number("OMNIROUTER_MERGE_LINK_TTL_H", 1) * 3600))
    )
    survey_window_ms: int = field(
        default_factory=lambda: int(number("OMNIROUTER_SURVEY_WINDOW_H", 72) * 3_600_000)
    )


class MissingIdKey(RuntimeError):
    """OMNIROUTER_ID_KEY is not set: anonymous ids cannot be derived."""


@functools.cache
def id_key() -> bytes:
    """The HMAC key anonymous ids are derived with (read once per process).

    Required, with no default: an unkeyed (or publicly known) key would let anyone who
    reads an id find the phone number behind it from a dictionary of numbers, and a key made
    up per process would give each process different ids for the same sender."""
    raw = os.environ.get("OMNIROUTER_ID_KEY", "")
    if len(raw) < 16:
        raise MissingIdKey(
            "OMNIROUTER_ID_KEY must be set to a secret of at least 16 characters, the same in "
            "every gateway, worker and delivery process (`omnirouter dev` makes one)"
        )
    return raw.encode()
