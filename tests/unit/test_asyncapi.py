"""The AsyncAPI document covers every topic and every event type."""

from __future__ import annotations

from schemas import asyncapi, events, topics


def test_every_topic_and_event_type_is_documented() -> None:
    """A topic or event type added without an AsyncAPI entry fails here."""
    doc = asyncapi.spec()
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set(topics.ALL)
    documented = {m["name"] for m in doc["components"]["messages"].values()}
    declared = {
        v
        for k, v in vars(events).items()
        if k.isupper() and isinstance(v, str) and v.startswith("omnirouter.")
    }
    assert declared - documented == set()


def test_messages_are_cloudevents_envelopes_with_their_type() -> None:
    doc = asyncapi.spec()
    assert doc["asyncapi"].startswith("3.")
    msg = doc["components"]["messages"]["message_received_v1"]
    assert msg["payload"]["properties"]["specversion"] == {"const": "1.0"}
    assert msg["payload"]["properties"]["type"] == {"const": events.MESSAGE_RECEIVED}
