"""The HTTP gateway, split by resource.

    core.py            Gateway: the shared parts (Redis, registry, broker, ingress, feeds) and
                       the aiohttp application that mounts every resource
    errors.py          the error shape (ApiError, {"error": {code, message, field}}), body reads
    inbound.py         POST /v1/inbound/{channel}
    agents.py          agents, their status and stream, offers (accept, reject)
    conversations.py   timelines, reply, resolve, transfer
    customers.py       the directory record, conversations, erasure
    ops.py             queues, alerts, health, readiness, metrics, the API documents

The channel adapters (SMTP, chat socket, app and telephony webhooks) mount their own routes
from channels/adapters.py.
"""

from channels.gateway.core import Gateway
from channels.gateway.errors import ApiError, error_response, ok, read_json

__all__ = ["ApiError", "Gateway", "error_response", "ok", "read_json"]
