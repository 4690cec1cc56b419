"""Chat out: a frame on the visitor's Redis stream; whichever gateway holds the visitor's socket
pushes it (and records "delivered"); a widget that reconnects later gets it on resume."""

from __future__ import annotations

from typing import Any

from channels.chat.socket import append_visitor_frame
from channels.contract import DeliveryError, OutboundContext
from schemas.envelope import now_ms


class ChatSender:
    def __init__(self, ctx: OutboundContext):
        self.redis = ctx.redis

    async def send(self, d: dict[str, Any]) -> str:
        visitor = (d.get("to") or {}).get("visitor_id")
        if not visitor:
            raise DeliveryError("the customer has no chat visitor id", permanent=True)
        survey = d.get("survey")
        if survey:
            # The widget shows `scale` buttons and answers {"type": "survey_answer", ...} on
            # the socket (channels/chat/socket.py), never as a chat message.
            await append_visitor_frame(
                self.redis,
                visitor,
                {
                    "type": "survey",
                    "survey_id": survey["survey_id"],
                    "conversation_id": d.get("conversation_id"),
                    "scale": survey.get("scale", 5),
                    "expires_at": survey.get("expires_at"),
                    "reply_id": d["reply_id"],
                    "text": d["text"],
                    "at": now_ms(),
                },
            )
            return "sent"
        await append_visitor_frame(
            self.redis,
            visitor,
            {
                "type": "reply",
                "reply_id": d["reply_id"],
                "conversation_id": d.get("conversation_id"),
                "text": d["text"],
                "agent_id": d.get("agent_id"),
                "author": d.get("author", "agent"),
                "kind": d.get("kind", "answer"),
                "sources": d.get("sources") or [],
                "products": d.get("products") or [],
                "at": now_ms(),
            },
        )
        return "sent"
