"""The AsyncAPI document covers every topic and every event type."""

from __future__ import annotations

from schemas import asyncapi, events, topics
from schemas.vocabulary import CHANNELS


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


def test_every_event_type_has_a_typed_payload_in_the_document() -> None:
    doc = asyncapi.spec()
    schemas = doc["components"]["schemas"]
    for msg in doc["components"]["messages"].values():
        ref = msg["payload"]["properties"]["data"]["$ref"]
        assert ref.removeprefix("#/components/schemas/") in schemas, msg["name"]
    # A field a consumer requires is required in the document too.
    assert "text" in schemas["AgentReplied"]["required"]
    assert set(schemas["MessageReceived"]["properties"]["channel"]["enum"]) == set(CHANNELS)


def test_committed_document_is_the_generated_one() -> None:
    """A payload change that docs/asyncapi.json does not show fails here: regenerate it with
    `python -m schemas.asyncapi` and review the difference."""
    assert asyncapi.DOC.read_text(encoding="utf-8") == asyncapi.render()
