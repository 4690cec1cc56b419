"""The one list of channels: each name, its inbound adapter and its outbound sender.

Adding a channel: its name in schemas/vocabulary.py, a package beside channels/chat with an
`adapter.py` and a `send.py` implementing channels/contract.py, and one line in each table
below. tests/unit/test_layout.py checks the tables cover the vocabulary exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from channels.app.adapter import AppAdapter
from channels.app.send import AppSender
from channels.chat.adapter import ChatAdapter
from channels.chat.send import ChatSender
from channels.contract import Adapter, InboundContext, OutboundContext, Sender
from channels.email.adapter import EmailAdapter
from channels.email.send import EmailSender
from channels.phone.adapter import PhoneAdapter
from channels.phone.send import PhoneSender

# Order is mount order: the app adapter's POST /v1/inbound/app comes before the gateway's
# generic POST /v1/inbound/{channel}.
ADAPTERS: Final[dict[str, Callable[[InboundContext], Adapter]]] = {
    "app": AppAdapter,
    "phone": PhoneAdapter,
    "chat": ChatAdapter,
    "email": EmailAdapter,
}
SENDERS: Final[dict[str, Callable[[OutboundContext], Sender]]] = {
    "email": EmailSender,
    "chat": ChatSender,
    "app": AppSender,
    "phone": PhoneSender,
}


def adapters(ctx: InboundContext) -> dict[str, Adapter]:
    return {name: make(ctx) for name, make in ADAPTERS.items()}


def senders(ctx: OutboundContext) -> dict[str, Sender]:
    return {name: make(ctx) for name, make in SENDERS.items()}
